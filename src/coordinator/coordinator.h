// Coordinator: the task table, futures, queues and scheduling of one job
// (DESIGN.md sections 1 and 4). Transport-free: the gRPC service and the
// tests call these methods directly.
//
// Invariants:
//   - A call is applied at most once per (task, seqno). Each task keeps its
//     latest call (seqno, checkpoint image, result); a worker restarted from
//     that image re-sends the same seqno and receives the recorded result.
//   - A task is run by at most one worker at a time; calls and finishes from
//     any other worker are answered ABANDON and ignored.
//   - A call that would block waits at most the grace period (less when other
//     work is waiting for a worker slot); then the worker is told to PARK and
//     the task is relaunched from the call's image once the result is ready.
//
// Thread safety: every public method may be called from any thread; one
// mutex guards the state. Blocking methods (next, call without a hook) wait
// on condition variables with that mutex released. A call with a ReplyHook
// never waits: its answer is sent, with no lock held, by the thread whose
// method completed it, or by the housekeeping thread when its grace period
// ends (that thread also removes images no longer needed from the store).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kappa/detail/calls.h"
#include "kappa/pause.h"
#include "stores/checkpoint_store.h"

namespace kappa::detail {

/// The platform that runs workers (local processes, Lambda, Slurm). The
/// coordinator asks it for workers and tells it when invocations start and
/// end; the backend reports worker deaths through Coordinator::worker_exited.
class Backend {
 public:
  virtual ~Backend() = default;
  /// Starts one more worker for the pool ("coordinator side" when
  /// on_coordinator: no time limit, no chaos). It later calls next().
  /// Returns false (with `error` set) if the worker could not be started.
  /// Called with the coordinator's lock held: must not call back into it.
  virtual bool launch_worker(uint64_t worker_id, bool on_coordinator, std::string* error) = 0;
  /// A task was handed to the worker: start its time limit (and chaos).
  virtual void invocation_started(uint64_t worker_id) = 0;
  /// The worker's invocation is over: it asked for new work, or died.
  virtual void invocation_ended(uint64_t worker_id) = 0;
  /// Time limit of one invocation in seconds (0: none), as told to workers.
  virtual double time_limit(bool on_coordinator) const = 0;
};

struct CoordinatorOptions {
  unsigned max_workers = 2;                   // concurrent workers (not counting on_coordinator)
  unsigned max_coordinator_workers = 64;      // concurrent on_coordinator workers
  std::chrono::milliseconds grace{50};        // how long a blocked call holds its worker
  std::chrono::milliseconds idle_poll{1000};  // how long next() waits before IDLE
  unsigned max_failures = 10;                 // consecutive worker deaths without progress
  unsigned max_start_failures = 5;            // workers in a row that die before asking for work
};

struct AssignmentInfo {
  enum class Kind { kIdle, kStart, kResume, kShutdown } kind = Kind::kIdle;
  uint64_t task_id = 0;
  uint64_t fn = 0, trampoline = 0;
  std::vector<std::string> args;
  std::string image_key;  // RESUME: the image in the store, or
  std::string image;      // RESUME: the image itself (small images travel inline)
  uint64_t seqno = 0;
  std::string reply, error;
  double time_left = 0;
  std::string name;
};

struct CallInfo {
  uint64_t worker_id = 0, task_id = 0, seqno = 0;
  std::string image_key;  // the checkpoint in the store, or
  std::string image;      // the checkpoint itself, kept by the coordinator
  Op op = Op::kCheckpoint;
  std::string request;
};

struct CallOutcome {
  enum class Kind {
    kResult,
    kPark,
    kAbandon,
    kPending,  // call() only: the answer will go through its ReplyHook
  } kind = Kind::kResult;
  std::string reply, error;
};

/// Answers a blocked call later, from another thread (see call()). Called
/// once, with no coordinator lock held.
using ReplyHook = std::function<void(CallOutcome)>;

struct JobOutcome {
  bool done = false, failed = false;
  std::string result;  // the root task's encoded value
  std::string error;   // which task failed and why
};

struct CoordinatorStats {
  uint64_t tasks = 0, finished = 0, failed = 0, running = 0, ready = 0, parked = 0;
  uint64_t calls = 0, duplicate_calls = 0, parks = 0, relaunches = 0, worker_deaths = 0;
  uint64_t workers_launched = 0;
};

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, CheckpointStore* store);
  ~Coordinator();

  /// Must be set before the first task is spawned.
  void set_backend(Backend* backend) { backend_ = backend; }

  /// Creates the job's root task (id 1).
  uint64_t spawn_root(SpawnSpec spec);

  /// A worker asks for work; waits up to idle_poll.
  AssignmentInfo next(uint64_t worker_id);
  /// A pause point. Without `hook`, a call that blocks waits here up to the
  /// grace period. With `hook`, call() never waits: a call that blocks
  /// returns kPending, and its answer goes through `hook` from the thread
  /// that completes the call (no hand-off to a waiting thread on the way to
  /// the worker), or a kPark from the coordinator's parking thread at the
  /// end of the grace period.
  CallOutcome call(CallInfo info, ReplyHook hook = {});
  /// The task returned (failed == false) or threw.
  void finish(uint64_t worker_id, uint64_t task_id, bool failed, std::string result,
              std::string error);
  /// The worker is gone: the backend saw its process end (crash, SIGKILL,
  /// time limit), or its session closed. Its task restarts elsewhere; the
  /// worker is never given work again. Idempotent.
  void worker_exited(uint64_t worker_id, const std::string& why);

  /// Waits until the root task has finished (or `timeout` passed).
  JobOutcome wait_job(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// Makes every later next() answer SHUTDOWN and wakes waiting workers.
  void shutdown();
  /// Waits until images no longer needed have left the store (they are
  /// removed on a thread of their own).
  void drain_store();

  CoordinatorStats stats() const;

  /// Writes the job's timeline as a Chrome/Perfetto trace (JSON): one span
  /// per invocation (a task on a worker, from hand-out to finish, park or
  /// death). Recording starts with set_tracing(true).
  void set_tracing(bool on);
  void write_trace(const std::string& path) const;

 private:
  struct Call {
    uint64_t seqno = 0;
    std::string image_key, image;
    Op op = Op::kCheckpoint;
    std::string request;
    bool done = false;
    std::string reply, error;
  };
  enum class State { kWaitingDeps, kReady, kRunning, kBlocked, kParked, kDone, kFailed };
  struct TaskRecord {
    uint64_t id = 0;
    SpawnSpec spec;
    std::vector<std::string> args;  // resolved argument bytes
    unsigned deps_left = 0;
    State state = State::kWaitingDeps;
    std::optional<Call> call;  // the latest call
    uint64_t worker = 0;
    unsigned failures = 0;
    // The future of this task.
    std::string result, error;
    std::vector<uint64_t> waiters;     // tasks whose pending kWait includes this one
    std::vector<uint64_t> dependents;  // tasks whose arguments or awaits include this one
    std::condition_variable cv;        // its blocked call completed or must give up
    ReplyHook hook;                    // of its blocked call, if it has one
    std::chrono::steady_clock::time_point park_at;  // the hooked call's grace ends
  };
  struct QueueRecord {
    uint64_t max_size = 0;
    std::deque<std::string> items;
    std::deque<uint64_t> enqueuers;  // blocked: their item is in their call's request
    std::deque<uint64_t> dequeuers;  // blocked
  };
  struct WorkerRecord {
    bool on_coordinator = false;
    bool started = false;  // has called next() at least once
    bool idle = false;     // waiting in next()
    uint64_t task = 0;
  };

  // All private methods expect mu_ held.
  std::string describe(const TaskRecord& t) const;
  uint64_t add_task(SpawnSpec spec);
  void make_ready(TaskRecord& t);
  void complete_call(TaskRecord& t, std::string reply, std::string error = {});
  void resolve(TaskRecord& t);
  void try_wait(TaskRecord& t, const std::vector<uint64_t>& ids);
  void apply(TaskRecord& t);
  void queue_progress(QueueRecord& q);
  void schedule();
  void push_ready(TaskRecord& t);
  bool ready_work_starved() const;
  bool must_park(const TaskRecord& t) const;
  void wake_blocked();
  void end_invocation(uint64_t worker_id, const char* outcome);
  void trace_end(uint64_t worker_id, const std::string& outcome);
  void lose_task(uint64_t worker_id, const std::string& why);
  void fail_task(TaskRecord& t, const std::string& why);
  void fail_job(const std::string& why);
  void park_call(TaskRecord& t);
  void park_hooked(TaskRecord& t);
  struct PoolCount {
    size_t live = 0, available = 0;
  };
  PoolCount count_workers(bool on_coordinator) const;
  void housekeeping();
  void discard_image(std::string key);
  // Runs the hooks of calls completed meanwhile; every public method that
  // can complete a call flushes on its way out (OutboxFlush), lock released.
  void flush_outbox();
  void flush_outbox(std::unique_lock<std::mutex>& lock);
  struct OutboxFlush {
    Coordinator* c;
    ~OutboxFlush() { c->flush_outbox(); }
  };

  CoordinatorOptions options_;
  CheckpointStore* store_;
  Backend* backend_ = nullptr;
  mutable std::mutex mu_;
  // Waiters are woken one by one, to spare the CPUs a herd of threads that
  // find nothing to do: next() waits on work_cv_ of its pool; a blocked call
  // on its task's cv.
  std::condition_variable work_cv_[2];                     // ready work appeared (or shutdown)
  std::set<uint64_t> blocked_;                             // tasks whose call() is waiting
  std::vector<std::pair<ReplyHook, CallOutcome>> outbox_;  // answers to send
  // Hooked blocked calls by the end of their grace period; images to remove
  // from the store. Both are the housekeeping thread's work.
  std::set<std::pair<std::chrono::steady_clock::time_point, uint64_t>> parking_;
  std::vector<std::string> doomed_;
  bool removing_ = false;
  std::condition_variable housekeeper_cv_;
  bool housekeeper_stop_ = false;
  std::condition_variable job_cv_;  // the root finished
  std::map<uint64_t, TaskRecord> tasks_;
  std::map<uint64_t, QueueRecord> queues_;
  std::map<uint64_t, WorkerRecord> workers_;
  std::set<uint64_t> dead_;        // workers reported dead or disconnected
  std::deque<uint64_t> ready_[2];  // [0]: normal, [1]: on_coordinator
  uint64_t next_task_ = 1, next_queue_ = 1, next_worker_ = 1;
  bool shutdown_ = false;
  // Tracing: open spans by worker, and finished spans.
  struct Span {
    uint64_t task = 0, worker = 0;
    bool on_coordinator = false;
    std::string name, kind, outcome;
    std::chrono::steady_clock::time_point start, end;
  };
  bool tracing_ = false;
  std::chrono::steady_clock::time_point trace_zero_ = std::chrono::steady_clock::now();
  std::map<uint64_t, Span> open_spans_;
  std::vector<Span> spans_;
  unsigned start_failures_ = 0;  // consecutive workers lost before their first next()
  JobOutcome job_;
  CoordinatorStats stats_;
  std::thread housekeeper_;  // the last member: it starts after the others
};

}  // namespace kappa::detail
