// Internal: the payloads of the calls a task makes to the coordinator, and
// the typed awaitable that carries them. Shared by the public API (spawn.h),
// the worker and the coordinator; not part of the user-facing API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kappa/pause.h"
#include "kappa/serialize.h"
#include "kappa/task.h"

namespace kappa::detail {

/// Slots of an array indexed by Op (its values are 1 to 9; slot 0 is unused).
inline constexpr size_t kOpSlots = 10;

/// The call's name for statistics, logs and traces ("checkpoint", "spawn",
/// ...); "unknown" for a value outside Op. A static string.
constexpr const char* op_name(Op op) {
  switch (op) {
    case Op::kCheckpoint:
      return "checkpoint";
    case Op::kSpawn:
      return "spawn";
    case Op::kWait:
      return "wait";
    case Op::kMakeQueue:
      return "make_queue";
    case Op::kEnqueue:
      return "enqueue";
    case Op::kDequeue:
      return "dequeue";
    case Op::kYield:
      return "yield";
    case Op::kPut:
      return "put";
    case Op::kGet:
      return "get";
  }
  return "unknown";
}

/// One argument of a spawned task: its encoded value, or the id of the
/// future whose value the coordinator substitutes before the task starts.
struct ArgSlot {
  uint64_t future = 0;
  std::string bytes;
  template <class A>
  void serialize(A& a) {
    a(future, bytes);
  }
};

/// Runs a spawned function: decodes its arguments, calls it, encodes its value.
using Trampoline = Task<std::string> (*)(uintptr_t fn, std::vector<std::string> args);

/// Code addresses cross processes as offsets from the program's load
/// address (code_offset), turned back into addresses where they run
/// (code_address): a Lambda worker, started through the loader its package
/// bundles, has the program at another address than the coordinator that
/// named the handler.
uint64_t code_offset(uint64_t address);
uint64_t code_address(uint64_t offset);

/// One task to spawn: kSpawn's request is a vector of them.
struct SpawnSpec {
  uint64_t fn = 0;          // the function, as a code_offset (same binary)
  uint64_t trampoline = 0;  // a Trampoline for its signature, as a code_offset
  std::vector<ArgSlot> args;
  std::string name;
  bool on_coordinator = false;
  std::vector<uint64_t> awaits;
  template <class A>
  void serialize(A& a) {
    a(fn, trampoline, args, name, on_coordinator, awaits);
  }
};

/// The outcome of one awaited future: its encoded value, or the error text.
struct WaitResult {
  bool failed = false;
  std::string bytes;
  template <class A>
  void serialize(A& a) {
    a(failed, bytes);
  }
};

/// Builds a call's request with `build()` on the process heap rather than in
/// the task's arena (OutsideArena): the runtime then moves it out of the task
/// instead of copying it, and it never takes arena space. An exception from
/// `build` (made on the heap too) is rethrown as a kappa::Error made in the
/// task, which may keep it across a checkpoint.
template <class Build>
std::string request_outside_arena(Build build) {
  std::string request, why;  // on this (native) stack; their bytes on the heap
  bool failed = false;
  {
    OutsideArena heap;
    try {
      request = build();
    } catch (const std::exception& e) {
      failed = true;
      why = e.what();
    } catch (...) {
      failed = true;
      why = "an unknown exception";
    }
  }
  if (failed) throw Error(why);
  return request;
}

/// kEnqueue's request: the item's bytes (kappa::encode), then the queue id
/// (8 bytes, host order). The coordinator takes the item by cutting the id
/// off, and hands it to a dequeuer as is: a large item is never copied to
/// reframe it.
template <class T>
std::string enqueue_request(uint64_t queue, const T& value) {
  return request_outside_arena([&] {
    std::string request;
    encode_append(request, value);
    request.append(reinterpret_cast<const char*>(&queue), sizeof queue);  // in the sink's slack
    return request;
  });
}

/// Splits an enqueue request: returns the queue id and leaves the item's
/// bytes in `request`. Throws kappa::Error if it is too short to hold an id.
inline uint64_t take_enqueue_queue(std::string& request) {
  uint64_t queue;
  if (request.size() < sizeof queue) throw Error("an enqueue request without a queue id");
  std::memcpy(&queue, request.data() + request.size() - sizeof queue, sizeof queue);
  request.resize(request.size() - sizeof queue);
  return queue;
}

/// A pause point carrying a typed call: `decode` turns the reply into R. An
/// awaiter may be created now and awaited later (after other pause points):
/// a request it holds on the process heap is then moved into the arena by
/// the first of those pause points, so that no checkpoint points outside it.
template <class R, class Decode>
struct CallAwaiter : PauseAwaiter {
  CallAwaiter(Op op, std::string request, Decode d, bool async = false) : decode(std::move(d)) {
    call.op = op;
    call.async = async;
    call.request = std::move(request);
    on_heap = track_heap_request(&call);
  }
  CallAwaiter(CallAwaiter&& other)
      : PauseAwaiter(std::move(other)), decode(std::move(other.decode)) {
    if (std::exchange(other.on_heap, false)) {
      untrack_heap_request(&other.call);
      call.next_on_heap = nullptr;
      on_heap = track_heap_request(&call);
    }
  }
  CallAwaiter(const CallAwaiter&) = delete;
  CallAwaiter& operator=(const CallAwaiter&) = delete;
  CallAwaiter& operator=(CallAwaiter&&) = delete;
  ~CallAwaiter() {
    if (on_heap) untrack_heap_request(&call);
  }
  R await_resume() {
    PauseAwaiter::await_resume();
    std::string_view reply = std::exchange(call.reply, {});  // not valid past this resumption
    return decode(reply);
  }
  Decode decode;
  bool on_heap = false;  // listed by track_heap_request
};

/// The awaitable for a call `op` whose reply `d` turns into an R.
template <class R, class Decode>
CallAwaiter<R, Decode> make_call(Op op, std::string request, Decode d, bool async = false) {
  return CallAwaiter<R, Decode>(op, std::move(request), std::move(d), async);
}

}  // namespace kappa::detail
