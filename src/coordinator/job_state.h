// JobState: the coordinator's decisions for one job, as a single-threaded
// state machine (DESIGN.md sections 1 and 4).
//
// Events go in (a worker asks for work, a call, a finish, a worker exits, a
// timer fires), each with the time it happens at; effects come out (answers
// to send, workers to launch or kill, invocations that started or ended,
// images to discard, records to make durable, trace spans). JobState has no
// mutex, no thread and no clock: Coordinator (coordinator.h) is the thin
// concurrent shell that feeds it and carries its effects out, and tests drive
// it directly, with made-up times.
//
// Invariants:
//   - A call is applied at most once per (task, seqno). Each task keeps its
//     latest call (seqno, checkpoint image, result); a worker restarted from
//     that image re-sends the same seqno and receives the recorded result.
//   - A task is run by at most one worker at a time; calls and finishes from
//     any other worker are answered kAbandon (or ignored) and change nothing.
//   - Every request gets exactly one answer, now or later.
//   - A call that would block keeps its worker at most the grace period, and
//     not at all while other work waits for a worker slot; then the worker is
//     told to park and the task is relaunched from the call's image once the
//     result is ready.
//   - An idle worker of a pool and a ready task of the same pool never
//     coexist: the task is handed out at once.
//   - Memory grows with live tasks: a finished task leaves only its result
//     (its future), a few dozen bytes for small values.
//
// Durable and runtime state: TaskDurable is what a restarted coordinator
// needs to continue a task (what the journal records); TaskRuntime is the
// bookkeeping of this process (which worker runs it, who waits for it,
// timers), rebuilt rather than recorded.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "backends/backend.h"
#include "kappa/detail/calls.h"
#include "protocol/messages.h"

namespace kappa::detail {

using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

struct JobStateOptions {
  unsigned max_workers = 2;               // concurrent workers (not counting on_coordinator)
  unsigned max_coordinator_workers = 64;  // concurrent on_coordinator workers
  Duration grace = std::chrono::milliseconds(50);  // how long a blocked call holds its worker
  Duration idle_poll = std::chrono::seconds(1);    // an idle worker is answered kIdle after it
  unsigned max_failures = 10;       // worker deaths in a row without progress before a task fails
  unsigned max_crash_retries = 2;   // restarts after a deterministic crash (SIGSEGV, ...)
  unsigned max_start_failures = 5;  // workers in a row lost before asking for work
  // A worker that has sent a message (it then sends heartbeats) and falls
  // silent this long is killed and its task restarted (zero: never).
  Duration liveness_timeout = std::chrono::seconds(5);
  double time_limit = 0;  // seconds per invocation told to workers (on_coordinator: none)
  bool tracing = false;   // emit a trace span per invocation
  // Keep what a viewer shows (job_view.h): every task's name, parent, phase
  // and latest invocations, and recent task events. Off by default: a job
  // run without a viewer pays nothing for it.
  bool observe = false;
};

/// The durable part of a task, in two parts that change at different rates:
/// what it is (spec, arguments, phase: written when it is created and when
/// its arguments resolve) and how far it got (its latest call and its
/// failure counts: written at every call).
struct TaskCall {
  uint64_t seqno = 0;
  std::string image_key, image;  // the checkpoint: its chain in the store, or inline
  Op op = Op::kCheckpoint;
  std::string request;
  bool done = false;
  SharedString reply;  // shared with the answer that carries it
  std::string error;
  template <class A>
  void serialize(A& a) {
    a(seqno, image_key, image, op, request, done, reply, error);
  }
};

struct TaskDurable {
  using Call =
      TaskCall;  // a task's latest call (a top-level type: std::optional needs it complete)
  enum class Phase : uint8_t { kWaitingDeps, kRunnable };
  uint64_t id = 0;
  SpawnSpec spec;
  std::vector<std::string> args;  // resolved argument bytes
  Phase phase = Phase::kWaitingDeps;
  // Progress.
  std::optional<Call> call;  // the latest call
  unsigned failures = 0;     // worker deaths since the last progress
  unsigned crashes = 0;      // deterministic crashes since the last progress
};

/// A resolved or pending future (one per task id).
struct FutureSlot {
  enum class State : uint8_t { kPending, kDone, kFailed } state = State::kPending;
  std::string bytes;  // kDone: the encoded value; kFailed: the error
  template <class A>
  void serialize(A& a) {
    a(state, bytes);
  }
};

/// The durable part of a queue.
struct QueueDurable {
  uint64_t max_size = 0;
  std::deque<std::string> items;
  std::deque<uint64_t> enqueuers;  // blocked, in order: their item is in their call's request
  std::deque<uint64_t> dequeuers;  // blocked, in order
  template <class A>
  void serialize(A& a) {
    a(max_size, items, enqueuers, dequeuers);
  }
};

struct JobOutcome {
  bool done = false, failed = false;
  std::string result;  // the root task's encoded value
  std::string error;   // which task failed and why
};

/// What changed in durable state at one event: what the journal records,
/// reading the values from the state as the event left it (so the order of
/// the ids says nothing, and they may repeat).
struct Changes {
  std::vector<uint64_t> tasks;  // created, or their arguments resolved (TaskDurable's first part)
  std::vector<uint64_t> progress;  // their call or failure counts changed (its second part)
  std::vector<uint64_t> resolved;  // finished or failed: gone, their future set
  std::vector<uint64_t> queues;    // created, or their items or waiting lines changed
  bool counters = false;           // the next queue or worker id
  bool job = false;                // the outcome
  bool empty() const {
    return tasks.empty() && progress.empty() && resolved.empty() && queues.empty() && !counters &&
           !job;
  }
  void clear();
};

/// Everything durable about a job, as a journal gives it back at restart.
struct DurableJob {
  std::vector<TaskDurable> tasks;                        // the live ones, by id
  std::vector<std::pair<uint64_t, FutureSlot>> futures;  // the resolved ones
  std::vector<std::pair<uint64_t, QueueDurable>> queues;
  uint64_t next_queue = 1, next_worker = 1;
  JobOutcome outcome;
};

/// One task invocation on a worker, for traces.
struct TraceSpan {
  uint64_t task = 0, worker = 0;
  uint64_t invocation = 0;  // this invocation's id, which TraceMarks name
  bool on_coordinator = false;
  std::string name;
  const char* kind = "start";  // or "resume"
  std::string outcome;         // finished, failed, park, yield, worker lost: ...
  TimePoint start, end;
};

/// Something else a trace shows (options_.tracing), tied to invocations by
/// their ids (TraceSpan::invocation); TraceRecorder places it.
struct TraceMark {
  enum class Kind : uint8_t {
    kCheckpoint,  // a call's checkpoint: taken, then written, just before `at` (its arrival)
    kPark,        // the task gave its worker up at `at`, its call blocked
    kRelaunch,    // the invocation starting at `at` resumes a task that parked or moved
    kQueueWait,   // a blocked enqueue or dequeue, from `since` to `at`
    kFlow,        // an arrow from invocation `from` at `since` to `invocation` at `at`
  } kind = Kind::kCheckpoint;
  uint64_t task = 0;
  uint64_t invocation = 0;  // where it happens (kQueueWait: none, tasks may move meanwhile)
  TimePoint at;
  Op op = Op::kCheckpoint;  // kCheckpoint, kPark, kQueueWait: the call
  // kCheckpoint: what the worker reported (CallInfo).
  uint64_t bytes = 0;
  uint32_t capture_us = 0, write_us = 0;
  bool stored = false;         // written to the store (else inline)
  uint64_t queue = 0;          // kQueueWait
  TimePoint since;             // kQueueWait, kFlow
  uint64_t from = 0;           // kFlow: the invocation it starts from
  const char* flow = "spawn";  // kFlow: "spawn" (to the child's first invocation) or "wake"
};

struct Effects {
  struct Finished {};
  struct Answer {
    /// When an answer may be sent while its event is not durable yet (with
    /// a journal): an answer must not reveal what a restart could take back,
    /// since the task would then go on from something that never happened.
    enum class Gate : uint8_t {
      kDurable,       // once the event is durable: a call's result, a resume with one
      kTasksDurable,  // once every task's creation and arguments are: a task's start
      kNow,           // at once: it reveals nothing (an acknowledgement, a park, "no
                      // work"). A worker told it drops nothing a restart needs: the
                      // task runs again from its last durable checkpoint, replaying
                      // the calls recorded with it.
    };
    uint64_t worker = 0;
    std::variant<Assignment, CallOutcome, Finished> body;
    Gate gate = Gate::kDurable;
  };
  struct Launch {
    uint64_t worker = 0;
    bool on_coordinator = false;
  };
  /// A put to make visible: move `staged` to `key` in the data store, then
  /// report it with JobState::commit_done. Idempotent.
  struct Commit {
    uint64_t task = 0, seqno = 0;
    std::string staged, key;
  };
  std::vector<Answer> answers;
  std::vector<Launch> launches;
  std::vector<uint64_t> started;       // invocations that started (backend: time limit, chaos)
  std::vector<uint64_t> ended;         // invocations that ended
  std::vector<uint64_t> hung;          // workers to kill: they stopped sending heartbeats
  std::vector<std::string> discarded;  // image keys nobody will restore from
  std::vector<Commit> commits;
  std::vector<TraceSpan> spans;
  std::vector<TraceMark> marks;
  Changes changes;
  bool job_done = false;  // the job's outcome is known (now)

  void clear();
};

/// What a job did so far: counts for the summary line, the live view and the
/// cost estimate (cost.h). Times are the events' times (JobState has no
/// clock). Invocations run by on_coordinator workers are in no count of
/// invocations or billed time: they run beside the coordinator, not on the
/// platform.
struct JobStats {
  static constexpr size_t kCauses = 6;  // WorkerExit::Cause values
  uint64_t tasks = 0, finished = 0, failed = 0;
  uint64_t waiting = 0, ready = 0, running = 0, blocked = 0, parked = 0;  // live tasks now
  uint64_t calls = 0, duplicate_calls = 0, parks = 0, relaunches = 0;
  std::array<uint64_t, kOpSlots> calls_by_op{};  // calls received, by Op (op_name)
  uint64_t workers_launched = 0, workers_live = 0;
  std::array<uint64_t, kCauses> deaths{};      // workers lost with a task, by cause
  std::array<uint64_t, kCauses> idle_exits{};  // workers lost between tasks, by cause
  // Checkpoints the coordinator was told of (calls carrying an image), and
  // their bytes (written to the store, or inline).
  uint64_t checkpoints = 0, checkpoint_bytes = 0;
  // Of them, those written to the checkpoint store (an S3 PUT each on
  // Lambda); the others travelled inline. Image links read back from the
  // store by resumed tasks (a GET each, at least).
  uint64_t stored_checkpoints = 0, image_reads = 0;
  // Task invocations handed to platform workers, and the sum over those
  // that ended of their duration rounded up to a whole millisecond (as
  // Lambda bills).
  uint64_t invocations = 0, billed_ms = 0;
  // Time tasks waited for a future or a queue while parked, holding no
  // worker: what a platform without parking would have billed on top of
  // billed_ms (the grace period a blocked call keeps its worker is in
  // billed_ms already).
  uint64_t blocked_wait_ms = 0;
  uint64_t total_deaths() const;
};

struct JobView;
struct TaskView;
struct TaskPage;
struct TaskQuery;
struct QueueView;
struct TaskEvent;

class JobState {
 public:
  explicit JobState(JobStateOptions options);
  ~JobState();
  JobState(const JobState&) = delete;
  JobState& operator=(const JobState&) = delete;

  // ---- events ----
  /// Creates the job's root task (id 1).
  uint64_t spawn_root(SpawnSpec spec, TimePoint now, Effects& fx);
  /// Continues a job from what a journal kept (instead of spawn_root): every
  /// live task is ready to run from its latest call, or waits where it
  /// waited (a future, a queue). Workers of the previous coordinator are
  /// gone; new ones get fresh ids.
  void restore(DurableJob job, TimePoint now, Effects& fx);
  void next(uint64_t worker, TimePoint now, Effects& fx);
  void call(CallInfo info, TimePoint now, Effects& fx);
  void finish(FinishInfo info, TimePoint now, Effects& fx);
  void heartbeat(uint64_t worker, TimePoint now);
  void crash_report(CrashReport report);
  /// The worker is gone; idempotent. Its task restarts elsewhere.
  void worker_exited(uint64_t worker, const WorkerExit& exit, TimePoint now, Effects& fx);
  /// A commit asked for in Effects::commits is done (`error` empty) or failed.
  void commit_done(uint64_t task, uint64_t seqno, const std::string& error, TimePoint now,
                   Effects& fx);
  /// The backend could not start a worker asked for in Effects::launches.
  void launch_failed(uint64_t worker, const std::string& error, TimePoint now, Effects& fx);
  /// Fires every timer due at `now` (grace periods, idle polls, liveness).
  void fire_timers(TimePoint now, Effects& fx);
  /// Ends the job: idle workers are told to shut down, blocked calls to
  /// park, and every later request for work is answered kShutdown.
  void shutdown(TimePoint now, Effects& fx);

  /// Seconds an invocation may run, as told to workers (the backend's).
  void set_time_limit(double seconds) { options_.time_limit = seconds; }

  // ---- queries ----
  /// When fire_timers() next has something to do.
  std::optional<TimePoint> next_timer() const;
  const JobOutcome& outcome() const { return job_; }
  JobStats stats() const;
  /// Durable state, for the journal: a live task (null once resolved), a
  /// task's future, a queue's items.
  const TaskDurable* task(uint64_t id) const;
  const FutureSlot* future(uint64_t id) const;
  const QueueDurable* queue(uint64_t id) const;
  uint64_t next_queue_id() const { return next_queue_; }
  uint64_t next_worker_id() const { return next_worker_; }

  // ---- views (job_view.h; tasks and events only with options.observe) ----
  /// The job at `now` (its elapsed time counts from the first event), with
  /// the latest `recent` task events.
  JobView view(TimePoint now, size_t recent) const;
  TaskPage task_page(const TaskQuery& query) const;
  std::optional<TaskView> task_view(uint64_t id) const;
  std::vector<QueueView> queue_views() const;

 private:
  struct Task;
  struct Observed;
  using Queue = QueueDurable;
  struct Worker;
  enum class TimerKind : uint8_t { kGrace, kIdle, kLiveness };

  Task* find(uint64_t id);
  std::string describe(const Task& t) const;
  uint64_t& live_count(int state);
  void set_state(Task& t, int state);
  void mark(const Task& t, Effects& fx);
  void mark_progress(const Task& t, Effects& fx);
  uint64_t add_task(SpawnSpec spec, uint64_t parent, TimePoint now, Effects& fx);
  void start_task(uint64_t id, TimePoint now, Effects& fx);
  void make_ready(Task& t, TimePoint now, Effects& fx);
  void push_ready(Task& t, TimePoint now, Effects& fx);
  void assign(Worker& w, uint64_t worker_id, Task& t, TimePoint now, Effects& fx);
  void complete_call(Task& t, std::string reply, std::string error, TimePoint now, Effects& fx);
  void resolve(Task& t, FutureSlot::State state, std::string bytes, TimePoint now, Effects& fx);
  // `keep_image`: the task's last image stays in the store (a task that
  // kept dying may be inspected); otherwise it is discarded.
  void fail_task(Task& t, const std::string& why, TimePoint now, Effects& fx,
                 bool keep_image = false);
  void start_wait(Task& t, TimePoint now, Effects& fx);
  void start_commit(Task& t, Effects& fx);
  void finish_wait(Task& t, TimePoint now, Effects& fx);
  void apply(Task& t, TimePoint now, Effects& fx);
  void join_queue(Task& t, uint64_t queue, bool enqueue, TimePoint now, Effects& fx);
  void queue_progress(Queue& q, TimePoint now, Effects& fx);
  void schedule(Effects& fx);
  bool ready_work_starved() const;
  bool must_park(const Task& t) const;
  void park_blocked_for_starved_work(TimePoint now, Effects& fx);
  void park_call(Task& t, TimePoint now, Effects& fx);
  void set_parked(Task& t, TimePoint now);
  void count_call(const CallInfo& info);
  // Tracing (options_.tracing) only.
  void trace_call(const CallInfo& info, TimePoint now, Effects& fx);
  void trace_arrows(Task& t, uint64_t invocation, TimePoint now, Effects& fx);
  uint64_t invocation_of(uint64_t worker) const;
  void end_invocation(uint64_t worker_id, const std::string& outcome, TimePoint now, Effects& fx);
  void lose_task(uint64_t worker_id, const WorkerExit& exit, const std::string& why, TimePoint now,
                 Effects& fx);
  void remove_idle(uint64_t worker_id, Worker& w);
  void unblock(Task& t);  // no longer blocked on its worker (if it was)
  void seen(Worker& w, TimePoint now);
  void fail_job(const std::string& why, Effects& fx);
  void check_stalled(Effects& fx);
  std::string describe_wait(const Task& t) const;
  void add_timer(TimePoint at, TimerKind kind, uint64_t id);
  void answer(uint64_t worker, CallOutcome::Kind kind, Effects& fx);  // kPark, kAbandon
  void answer_result(uint64_t worker, const TaskDurable::Call& c, Effects& fx);
  void answer(uint64_t worker, Assignment a, Effects& fx);
  // Views (options_.observe): records a task event; fills a task's view.
  void note(uint64_t task, TimePoint now, std::string what);
  double since_start(TimePoint t) const;
  TaskView view_of(uint64_t id, bool history) const;
  Observed* observed(uint64_t id);

  JobStateOptions options_;
  // Tasks by id (index); null once resolved. futures_ likewise, kept.
  std::vector<std::unique_ptr<Task>> tasks_;
  std::vector<FutureSlot> futures_;
  std::unordered_map<uint64_t, Queue> queues_;
  std::unordered_map<uint64_t, Worker> workers_;
  std::set<uint64_t> dead_;        // workers reported gone: never given work again
  std::deque<uint64_t> ready_[2];  // [pool]: tasks waiting for a worker
  std::deque<uint64_t> idle_[2];   // [pool]: workers waiting for a task
  std::set<uint64_t> blocked_;     // tasks whose call waits for its result on its worker
  struct PoolCount {
    size_t live = 0;      // launched and not gone
    size_t starting = 0;  // launched, not yet asked for work
  } pools_[2];
  std::set<std::tuple<TimePoint, TimerKind, uint64_t>> timers_;
  bool liveness_timer_ = false;
  uint64_t next_queue_ = 1, next_worker_ = 1;
  unsigned start_failures_ = 0;  // workers in a row lost before their first request
  size_t commits_open_ = 0;      // puts handed to the shell, not yet done
  std::string last_failure_;     // the latest task failure, for a stalled job's message
  bool shutdown_ = false;
  JobOutcome job_;
  JobStats stats_;
  Duration blocked_wait_{};            // JobStats::blocked_wait_ms, unrounded
  uint64_t next_invocation_ = 1;       // trace ids of invocations
  uint64_t finishing_invocation_ = 0;  // tracing: the invocation whose finish resolves a task now
  // Views (options_.observe): by task id, kept once the task is resolved.
  std::vector<Observed> observed_;
  std::vector<TaskEvent> events_;   // a ring of the latest kEvents
  size_t events_next_ = 0;          // where the next one goes once the ring is full
  std::optional<TimePoint> start_;  // the job's first event here
};

}  // namespace kappa::detail
