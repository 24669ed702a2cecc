#include "runtime/runtime.h"

#include <malloc.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>
#include <utility>

#include "kappa/pause.h"
#include "runtime/arena.h"
#include "runtime/layout.h"

namespace kappa::detail {

std::atomic<bool> g_checkpoint_due{false};

namespace {
// Set once by hand_over_now() (from a signal handler): lock-free, so that
// the handler may store it.
std::atomic<bool> g_handover{false};
static_assert(std::atomic<bool>::is_always_lock_free);
}  // namespace

bool track_heap_request(PendingCall* call) {
  Arena* arena = Arena::current();
  if (!arena || call->request.empty() || arena->contains(call->request.data())) return false;
  TaskState& t = arena->task();
  call->next_on_heap = static_cast<PendingCall*>(t.heap_requests);
  t.heap_requests = call;
  return true;
}

void untrack_heap_request(PendingCall* call) {
  Arena* arena = Arena::current();
  if (!arena) arena = Arena::of(call);  // the call lives in its task's frame
  auto* link = reinterpret_cast<PendingCall**>(&arena->task().heap_requests);
  for (; *link; link = &(*link)->next_on_heap) {
    if (*link == call) {
      *link = call->next_on_heap;
      call->next_on_heap = nullptr;
      return;
    }
  }
}

namespace {
// Moves the requests on the process heap of calls other than `current` into
// the arena (the task is about to be checkpointed while they wait to be
// awaited), and empties the list; `current`'s own is taken by the runtime.
void rehome_heap_requests(Arena* arena, PendingCall* current) {
  auto* p = static_cast<PendingCall*>(std::exchange(arena->task().heap_requests, nullptr));
  while (p) {
    PendingCall* next = std::exchange(p->next_on_heap, nullptr);
    if (p != current) {
      std::string in_arena(p->request);  // the arena is current: allocated there
      p->request.swap(in_arena);         // the heap copy is freed by address
    }
    p = next;
  }
}
}  // namespace

void pause(std::coroutine_handle<> h, PendingCall* call) {
  Arena* arena = Arena::current();
  if (!arena)
    throw Error(
        "a kappa pause point (checkpoint/maybe_checkpoint) was reached outside a kappa "
        "task");
  if (arena->task().heap_requests) rehome_heap_requests(arena, call);
  if (int n = arena->live_threads().load(std::memory_order_acquire); n > 0)
    throw Error(std::to_string(n) +
                " thread(s) started by this task are still running at a pause point; join them "
                "before pausing (their state cannot be checkpointed)");
  TaskState& t = arena->task();
  t.suspended_frame = h.address();
  t.pending = call;
  t.seqno = t.next_seqno++;
}

OutsideArena::OutsideArena() : saved_(Arena::current()) { Arena::set_current(nullptr); }
OutsideArena::~OutsideArena() { Arena::set_current(static_cast<Arena*>(saved_)); }

void runtime_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)build_id();
    (void)layout_fingerprint();
    tzset();
    // stdio allocates its buffers on first use; do it now, outside any arena.
    static char out_buf[BUFSIZ], err_buf[256];
    std::setvbuf(stdout, out_buf, _IOLBF, sizeof out_buf);
    std::setvbuf(stderr, err_buf, _IONBF, 0);
    // Large values (queue items, results, images) are allocated and freed
    // at every call. glibc would map each one afresh (blocks over 128 KiB)
    // or hand freed memory back at once, so each would be faulted in again,
    // page by page: keep blocks up to 32 MiB on the heap, and up to 128 MiB
    // of freed memory for reuse.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
  });
}

namespace {

struct ClockState {
  std::mutex mu;
  std::condition_variable cv;
  std::thread thread;
  bool stop = false;
  bool always = false;
  CheckpointClock::Clock::duration interval{};
  std::optional<CheckpointClock::Clock::time_point> deadline;
  CheckpointClock::Clock::duration margin{};
  CheckpointClock::MarginSource margin_source;
  CheckpointClock::Clock::time_point last = CheckpointClock::Clock::now();
  uint64_t generation = 0;  // bumped on every change, to restart the wait
  // How the thread waits: not at all (it runs), until `wake`, or until told.
  enum class Waiting { kNo, kUntil, kUntold } waiting = Waiting::kNo;
  CheckpointClock::Clock::time_point wake{};

  CheckpointClock::Clock::time_point next_due() const {
    auto due = last + interval;
    auto m = margin_source
                 ? std::chrono::duration_cast<CheckpointClock::Clock::duration>(margin_source())
                 : margin;
    if (deadline && *deadline - m < due) due = *deadline - m;
    return due;
  }

  void run() {
    std::unique_lock lock(mu);
    while (!stop) {
      if (always) {
        g_checkpoint_due.store(true, std::memory_order_relaxed);
        waiting = Waiting::kUntold;
        cv.wait(lock);
        waiting = Waiting::kNo;
        continue;
      }
      uint64_t gen = generation;
      auto due = next_due();
      // A margin that changes as the task runs is asked again every poll.
      bool polling = margin_source && deadline;
      auto wake = polling
                      ? std::min(due, CheckpointClock::Clock::now() + CheckpointClock::kMarginPoll)
                      : due;
      waiting = Waiting::kUntil;
      this->wake = wake;
      bool changed = cv.wait_until(lock, wake, [&] { return stop || generation != gen; });
      waiting = Waiting::kNo;
      if (changed) continue;
      if (polling && CheckpointClock::Clock::now() < next_due()) continue;
      g_checkpoint_due.store(true, std::memory_order_relaxed);
      waiting = Waiting::kUntold;
      cv.wait(lock, [&] { return stop || generation != gen; });
      waiting = Waiting::kNo;
    }
  }

  // After a change (mu held): whether the thread must be woken to see it.
  // Not if it already waits until no later than the new due moment: it
  // then reads the change as it wakes (the generation moved). Every task a
  // worker runs, and every checkpoint, changes the clock; waking the thread
  // each time cost a thread switch per call on a small machine.
  bool must_wake() const {
    if (stop || always || waiting != Waiting::kUntil) return true;
    return next_due() < wake;
  }
};

ClockState& clock_state() {
  static ClockState* s = new ClockState;  // never destroyed: the thread may outlive statics
  return *s;
}

}  // namespace

void CheckpointClock::configure(std::chrono::duration<double> interval,
                                std::optional<Clock::time_point> deadline,
                                std::chrono::duration<double> margin, MarginSource margin_source) {
  ClockState& s = clock_state();
  {
    std::lock_guard lock(s.mu);
    s.margin_source = std::move(margin_source);
    s.always = interval.count() <= 0;
    s.interval = std::chrono::duration_cast<Clock::duration>(interval);
    s.deadline = deadline;
    s.margin = std::chrono::duration_cast<Clock::duration>(margin);
    s.last = Clock::now();
    s.stop = false;
    ++s.generation;
    g_checkpoint_due.store(s.always || g_handover.load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
    if (!s.thread.joinable()) {
      s.thread = std::thread([&s] { s.run(); });
      return;
    }
    if (!s.must_wake()) return;
  }
  s.cv.notify_all();
}

void CheckpointClock::checkpoint_taken() {
  ClockState& s = clock_state();
  {
    std::lock_guard lock(s.mu);
    if (s.always) return;
    // A hand-over requested before this checkpoint was taken stays due.
    g_checkpoint_due.store(g_handover.load(std::memory_order_relaxed), std::memory_order_relaxed);
    s.last = Clock::now();
    ++s.generation;
    if (!s.must_wake()) return;
  }
  s.cv.notify_all();
}

void CheckpointClock::hand_over_now() {
  // Only atomic stores: no lock, no allocation (a signal handler calls it).
  g_handover.store(true, std::memory_order_relaxed);
  g_checkpoint_due.store(true, std::memory_order_relaxed);
}

bool CheckpointClock::handover_requested() { return g_handover.load(std::memory_order_relaxed); }

void CheckpointClock::stop() {
  ClockState& s = clock_state();
  {
    std::lock_guard lock(s.mu);
    s.stop = true;
    s.margin_source = {};
  }
  s.cv.notify_all();
  if (s.thread.joinable()) s.thread.join();
  g_checkpoint_due.store(false, std::memory_order_relaxed);
}

}  // namespace kappa::detail
