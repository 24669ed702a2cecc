// Pause points: the places where a task's state is checkpointed.
//
//   co_await kappa::checkpoint();        // always persists a checkpoint
//   co_await kappa::maybe_checkpoint();  // only when one is due
//
// At a pause point the task's coroutine suspends, the runtime snapshots the
// task's arena (every frame and heap object of the task), persists it, applies
// the pending call, and resumes the coroutine, possibly in another process
// after a crash. Code between pause points runs once per attempt; work done
// after the last checkpoint is redone if the worker dies.
//
// maybe_checkpoint() is due when the checkpoint interval has elapsed since the
// last checkpoint, or when the worker's deadline is near; when it is not due
// it costs one relaxed atomic load (no suspension), so it can sit in hot loops.
//
// Rules (DESIGN.md section 2): at a pause point, threads the task started must
// have finished; file descriptors, sockets, mutexes and pointers to globals or
// thread_locals are not part of the checkpoint.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kappa/error.h"

namespace kappa {

namespace detail {

/// Operations a pause point can carry to the runtime (and, through it, to the
/// coordinator). The numbering is part of the checkpoint format.
enum class Op : uint32_t {
  kCheckpoint = 1,  // request: empty                 reply: empty
  kSpawn = 2,       // request: vector<SpawnSpec>     reply: vector<uint64_t> future ids
  kWait = 3,        // request: vector<uint64_t> ids  reply: vector<WaitResult>
  kMakeQueue = 4,   // request: uint64_t max_size     reply: uint64_t queue id
  kEnqueue = 5,     // request: enqueue_request()     reply: empty (once accepted)
  kDequeue = 6,     // request: uint64_t queue id     reply: the item's bytes
  kYield = 7,       // request: empty; the worker's deadline is near: relaunch elsewhere
  kPut = 8,         // request: pair<key, bytes> (to the coordinator: pair<key, staged key>)
  kGet = 9,         // request: the key          reply: the object's bytes (served by the worker)
};

/// The call a suspended task waits on. It lives in the suspended coroutine's
/// frame, hence in the task arena and in every checkpoint. The runtime reads
/// `op`/`request`, applies the call, and sets `reply` or `error` (with the
/// task's arena current) before resuming.
struct PendingCall {
  Op op = Op::kCheckpoint;
  bool async = false;   // the task continues without waiting for the reply
  std::string request;  // serialized arguments (kappa::encode)
  // The serialized result, in the runtime's memory: valid only until the task
  // next suspends, so it is read as the task resumes and never checkpointed
  // (a task restored from an earlier image is sent the result again). A
  // large queue item is thus not copied into the arena before decoding.
  std::string_view reply;
  std::string error;  // non-empty: the call failed with this message
  // The task's calls whose request lies on the process heap (see
  // request_outside_arena) form a list, so that a pause point elsewhere moves
  // them into the arena before its checkpoint.
  PendingCall* next_on_heap = nullptr;
};

/// Lists `call` as holding a request built on the process heap, if it does
/// and a task is running; returns whether it did.
bool track_heap_request(PendingCall* call);
/// Takes `call` off that list (wherever it is).
void untrack_heap_request(PendingCall* call);

/// While alive, the calling thread's allocations go to the process heap
/// instead of its task's arena. For a call's request only: the runtime takes
/// such a request out of the task without copying it, before the checkpoint.
class OutsideArena {
 public:
  OutsideArena();
  ~OutsideArena();
  OutsideArena(const OutsideArena&) = delete;
  OutsideArena& operator=(const OutsideArena&) = delete;

 private:
  void* saved_;
};

/// Set by the runtime when a checkpoint is due; read by maybe_checkpoint().
extern std::atomic<bool> g_checkpoint_due;

/// Records that the calling task is suspended at `h` waiting on `call`.
/// Throws kappa::Error when called outside a task or while threads the task
/// started are still running.
void pause(std::coroutine_handle<> h, PendingCall* call);

/// Awaitable for one pause point carrying one call.
struct PauseAwaiter {
  PendingCall call;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { pause(h, &call); }
  void await_resume() const {
    if (!call.error.empty()) throw Error(call.error);
  }
};

/// Like PauseAwaiter, but the call (three strings) is only created when a
/// checkpoint is due, in the task's arena: the common, not-due path is one
/// relaxed load and a null pointer, with nothing to construct or destroy.
struct MaybeCheckpointAwaiter {
  std::unique_ptr<PauseAwaiter> due;
  bool await_ready() const noexcept { return !g_checkpoint_due.load(std::memory_order_relaxed); }
  void await_suspend(std::coroutine_handle<> h) {
    due = std::make_unique<PauseAwaiter>();
    due->await_suspend(h);
  }
  void await_resume() const {
    if (due) due->await_resume();
  }
};

}  // namespace detail

/// A pause point that always persists a checkpoint: `co_await
/// kappa::checkpoint();`. Under `run` the task waits only while its arena is
/// captured (a large image is also written out then); the image is stored and
/// reported in the background as the task goes on. Near the worker's deadline
/// the task hands over instead, and resumes in a fresh worker. Under `solo`
/// the image is written before the task resumes.
/// Call it inside a task, on the task's own thread, once the threads the task
/// started have finished. Throws kappa::Error at the co_await, with no
/// checkpoint taken, outside a task or while such a thread still runs. An
/// image that cannot be stored fails the task itself (at a later pause point),
/// rather than throwing here.
inline detail::PauseAwaiter checkpoint() { return {}; }

/// A pause point that persists a checkpoint only when one is due: when
/// --checkpoint-interval seconds (default 1; 0: at every call) have passed
/// since the last one, or the worker's deadline (--time-limit) is near, where
/// the task hands over to a fresh worker. Not due, it costs one relaxed atomic
/// load, does not suspend and cannot throw, not even outside a task. Due, it
/// is checkpoint(), with the same preconditions and exceptions.
inline detail::MaybeCheckpointAwaiter maybe_checkpoint() { return {}; }

}  // namespace kappa
