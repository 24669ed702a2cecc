// Internal: the payloads of the calls a task makes to the coordinator, and
// the typed awaitable that carries them. Shared by the public API (spawn.h),
// the worker and the coordinator; not part of the user-facing API.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kappa/pause.h"
#include "kappa/serialize.h"
#include "kappa/task.h"

namespace kappa::detail {

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

struct SpawnSpec {
  uint64_t fn = 0;          // the function's address (same binary, same layout)
  uint64_t trampoline = 0;  // a Trampoline for its signature
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

struct EnqueueRequest {
  uint64_t queue = 0;
  std::string item;
  template <class A>
  void serialize(A& a) {
    a(queue, item);
  }
};

/// A pause point carrying a typed call: `decode` turns the reply into R.
template <class R, class Decode>
struct CallAwaiter : PauseAwaiter {
  CallAwaiter(Op op, std::string request, Decode d, bool async = false) : decode(std::move(d)) {
    call.op = op;
    call.async = async;
    call.request = std::move(request);
  }
  R await_resume() {
    PauseAwaiter::await_resume();
    return decode(call.reply);
  }
  Decode decode;
};

template <class R, class Decode>
CallAwaiter<R, Decode> make_call(Op op, std::string request, Decode d, bool async = false) {
  return CallAwaiter<R, Decode>(op, std::move(request), std::move(d), async);
}

}  // namespace kappa::detail
