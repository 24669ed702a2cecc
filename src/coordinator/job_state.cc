#include "coordinator/job_state.h"

#include <algorithm>
#include <utility>

#include "coordinator/job_view.h"

#include "protocol/image_chain.h"

namespace kappa::detail {

namespace {
constexpr uint64_t kRootTask = 1;

// Where a live task is; the counts in JobStats follow these.
enum State : int { kWaitingDeps, kReady, kRunning, kBlocked, kParked };
}  // namespace

struct JobState::Task {
  TaskDurable d;
  // Runtime bookkeeping.
  int state = kWaitingDeps;
  uint64_t worker = 0;  // running it (kRunning, kBlocked)
  unsigned deps_left = 0;
  std::vector<uint64_t> dependents;  // tasks whose arguments or awaits include this one
  // Tasks waiting (kWait) for this one, with the seqno of their wait call.
  std::vector<std::pair<uint64_t, uint64_t>> waiters;
  // Its own pending kWait: the futures, decoded once, and how many are open.
  std::vector<uint64_t> wait_ids;
  size_t wait_open = 0;
  uint64_t queue = 0;       // the queue its pending enqueue/dequeue waits on
  std::string start_error;  // why it cannot start (set at spawn)
  TimePoint park_at;        // kBlocked: when the grace period ends
  TimePoint parked_since;   // kParked: when it gave its worker up
  // Tracing only (options_.tracing), made at first use: no task pays for it
  // otherwise.
  struct Trace {
    bool relaunched = false;  // its next invocation resumes it after a park, a yield or a loss
    // The arrow its next invocation ends (from its spawn, or from the finish
    // that completed its wait).
    uint64_t arrow_from = 0;  // an invocation; 0: none
    TimePoint arrow_at;
    const char* arrow_kind = "spawn";
    bool queue_waiting = false;  // its open queue wait
    TimePoint queue_since;
  };
  std::unique_ptr<Trace> trace;
  Trace& traced() {
    if (!trace) trace = std::make_unique<Trace>();
    return *trace;
  }
};

// What a viewer shows of a task beyond its live state (options_.observe),
// kept after the task is resolved.
struct JobState::Observed {
  uint64_t parent = 0, fn = 0;
  std::string name;
  TaskPhase phase = TaskPhase::kWaiting;
  bool on_coordinator = false;
  std::string why;  // failed: the error; live: why its last worker was lost
  uint64_t invocations = 0;
  std::vector<InvocationView> history;  // at most TaskView::kHistory, oldest first
};

namespace {
constexpr size_t kEvents = 256;  // task events kept for views
}

struct JobState::Worker {
  bool on_coordinator = false;
  bool launched = false;  // by schedule(), rather than started by hand
  bool started = false;   // has asked for work at least once
  bool idle = false;      // waiting for a task (in idle_)
  TimePoint idle_until;
  uint64_t task = 0;
  bool heard = false;  // has sent a message: liveness applies
  TimePoint last_seen;
  std::optional<CrashReport> crash;
  TimePoint task_since;             // when it was handed `task`
  const char* span_kind = "start";  // of the open trace span (options_.tracing)
  uint64_t invocation = 0;          // its latest invocation's trace id (options_.tracing)
};

void Effects::clear() {
  answers.clear();
  launches.clear();
  started.clear();
  ended.clear();
  hung.clear();
  discarded.clear();
  commits.clear();
  spans.clear();
  marks.clear();
  changes.clear();
  job_done = false;
}

void Changes::clear() {
  tasks.clear();
  progress.clear();
  resolved.clear();
  queues.clear();
  counters = job = false;
}

JobStats JobState::stats() const {
  JobStats s = stats_;
  s.blocked_wait_ms =
      uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(blocked_wait_).count());
  return s;
}

uint64_t JobStats::total_deaths() const {
  uint64_t n = 0;
  for (uint64_t d : deaths) n += d;
  return n;
}

JobState::JobState(JobStateOptions options) : options_(options) {
  tasks_.emplace_back();  // ids start at 1
  futures_.emplace_back();
}

JobState::~JobState() = default;

JobState::Task* JobState::find(uint64_t id) {
  return id < tasks_.size() ? tasks_[id].get() : nullptr;
}

const TaskDurable* JobState::task(uint64_t id) const {
  return id < tasks_.size() && tasks_[id] ? &tasks_[id]->d : nullptr;
}

const FutureSlot* JobState::future(uint64_t id) const {
  return id > 0 && id < futures_.size() ? &futures_[id] : nullptr;
}

const QueueDurable* JobState::queue(uint64_t id) const {
  auto it = queues_.find(id);
  return it == queues_.end() ? nullptr : &it->second;
}

std::string JobState::describe(const Task& t) const {
  std::string s = "task " + std::to_string(t.d.id);
  if (!t.d.spec.name.empty()) s += " (" + t.d.spec.name + ")";
  return s;
}

uint64_t& JobState::live_count(int state) {
  switch (state) {
    case kWaitingDeps:
      return stats_.waiting;
    case kReady:
      return stats_.ready;
    case kRunning:
      return stats_.running;
    case kBlocked:
      return stats_.blocked;
    default:
      return stats_.parked;
  }
}

void JobState::set_state(Task& t, int state) {
  --live_count(t.state);
  ++live_count(state);
  t.state = state;
  if (Observed* o = observed(t.d.id)) o->phase = TaskPhase(state);
}

void JobState::mark(const Task& t, Effects& fx) { fx.changes.tasks.push_back(t.d.id); }

void JobState::mark_progress(const Task& t, Effects& fx) { fx.changes.progress.push_back(t.d.id); }

void JobState::answer(uint64_t worker, CallOutcome::Kind kind, Effects& fx) {
  fx.answers.push_back({worker, CallOutcome{kind, {}, {}}, Effects::Answer::Gate::kNow});
}

void JobState::answer_result(uint64_t worker, const TaskDurable::Call& c, Effects& fx) {
  // A checkpoint's or an enqueue's success tells the task nothing but "go
  // on": a restart that lost the call replays it to the same end. Any other
  // result (a future's value, an item, an id, an error) could differ.
  bool says_nothing = c.error.empty() && (c.op == Op::kCheckpoint || c.op == Op::kEnqueue);
  fx.answers.push_back(
      {worker, CallOutcome{CallOutcome::Kind::kResult, c.reply, c.error},
       says_nothing ? Effects::Answer::Gate::kNow : Effects::Answer::Gate::kDurable});
}

void JobState::answer(uint64_t worker, Assignment a, Effects& fx) {
  using Gate = Effects::Answer::Gate;
  Gate gate = a.kind == Assignment::Kind::kResume  ? Gate::kDurable
              : a.kind == Assignment::Kind::kStart ? Gate::kTasksDurable
                                                   : Gate::kNow;  // kIdle, kShutdown
  fx.answers.push_back({worker, std::move(a), gate});
}

void JobState::add_timer(TimePoint at, TimerKind kind, uint64_t id) {
  timers_.emplace(at, kind, id);
}

// A timer whose event no longer applies is dropped at once rather than left
// to fire: the shell's timer thread would wake for each (one per blocked
// call, 50 ms later), a thread switch per call on a small machine.
void JobState::unblock(Task& t) {
  if (blocked_.erase(t.d.id)) timers_.erase({t.park_at, TimerKind::kGrace, t.d.id});
}

std::optional<TimePoint> JobState::next_timer() const {
  if (timers_.empty()) return std::nullopt;
  return std::get<0>(*timers_.begin());
}

// ---------------------------------------------------------------- tasks

uint64_t JobState::add_task(SpawnSpec spec, uint64_t parent, TimePoint now, Effects& fx) {
  uint64_t id = tasks_.size();
  tasks_.push_back(std::make_unique<Task>());
  futures_.emplace_back();
  Task& t = *tasks_.back();
  t.d.id = id;
  t.d.spec = std::move(spec);
  if (options_.observe) {
    observed_.resize(id + 1);
    Observed& o = observed_[id];
    o.parent = parent;
    o.fn = t.d.spec.fn;
    o.name = t.d.spec.name;
    o.on_coordinator = t.d.spec.on_coordinator;
    note(id, now, parent ? "spawned by task " + std::to_string(parent) : "spawned");
  }
  t.d.args.resize(t.d.spec.args.size());
  ++stats_.tasks;
  ++stats_.waiting;
  mark(t, fx);
  auto depend_on = [&](uint64_t f) {
    if (f == 0 || f >= id) {
      // An unknown future is a programming error in the spawning task; the
      // child fails rather than waiting forever.
      t.start_error = "awaits unknown future " + std::to_string(f);
      return;
    }
    if (futures_[f].state != FutureSlot::State::kPending) return;
    ++t.deps_left;
    tasks_[f]->dependents.push_back(id);
  };
  for (size_t i = 0; i < t.d.spec.args.size(); ++i) {
    if (t.d.spec.args[i].future)
      depend_on(t.d.spec.args[i].future);
    else
      t.d.args[i] = std::move(t.d.spec.args[i].bytes);
  }
  for (uint64_t f : t.d.spec.awaits) depend_on(f);
  return id;
}

// A new task starts now if it depends on nothing open (or fails, if it
// cannot start at all); otherwise when its last dependency resolves.
void JobState::start_task(uint64_t id, TimePoint now, Effects& fx) {
  Task* t = find(id);
  if (!t) return;
  if (!t->start_error.empty())
    fail_task(*t, describe(*t) + " " + t->start_error, now, fx);
  else if (t->deps_left == 0)
    make_ready(*t, now, fx);
}

// Called once a new task's dependencies have all resolved: fills future
// arguments in and queues the task, or fails it if a dependency failed.
void JobState::make_ready(Task& t, TimePoint now, Effects& fx) {
  for (size_t i = 0; i < t.d.spec.args.size(); ++i) {
    uint64_t f = t.d.spec.args[i].future;
    if (!f) continue;
    const FutureSlot& dep = futures_[f];
    if (dep.state == FutureSlot::State::kFailed) {
      fail_task(t, describe(t) + " not started: its argument failed: " + dep.bytes, now, fx);
      return;
    }
    t.d.args[i] = dep.bytes;
  }
  t.d.phase = TaskDurable::Phase::kRunnable;
  mark(t, fx);  // its arguments resolved
  push_ready(t, now, fx);
}

// The task runs next on a free worker of its pool: one waiting now, or the
// next to ask.
void JobState::push_ready(Task& t, TimePoint now, Effects& fx) {
  bool pool = t.d.spec.on_coordinator;
  set_state(t, kReady);
  while (!idle_[pool].empty()) {
    uint64_t id = idle_[pool].front();
    idle_[pool].pop_front();
    auto it = workers_.find(id);
    if (it == workers_.end() || !it->second.idle) continue;
    it->second.idle = false;
    assign(it->second, id, t, now, fx);
    return;
  }
  ready_[pool].push_back(t.d.id);
  park_blocked_for_starved_work(now, fx);
}

void JobState::assign(Worker& w, uint64_t worker_id, Task& t, TimePoint now, Effects& fx) {
  set_state(t, kRunning);
  t.worker = worker_id;
  w.task = t.d.id;
  Assignment a;
  a.task_id = t.d.id;
  a.name = t.d.spec.name;
  if (t.d.call) {
    a.kind = Assignment::Kind::kResume;
    a.image_key = t.d.call->image_key;
    a.image = t.d.call->image;
    a.seqno = t.d.call->seqno;
    a.reply = t.d.call->reply.str();
    a.error = t.d.call->error;
  } else {
    a.kind = Assignment::Kind::kStart;
    a.fn = t.d.spec.fn;
    a.trampoline = t.d.spec.trampoline;
    a.args = t.d.args;
  }
  a.time_left = t.d.spec.on_coordinator ? 0 : options_.time_limit;
  if (Observed* o = observed(t.d.id)) {
    if (o->history.size() == TaskView::kHistory) o->history.erase(o->history.begin());
    InvocationView inv;
    inv.worker = worker_id;
    inv.resume = a.kind == Assignment::Kind::kResume;
    inv.start = since_start(now);
    o->history.push_back(std::move(inv));
    ++o->invocations;
    note(t.d.id, now,
         (a.kind == Assignment::Kind::kResume ? "resumed on worker " : "started on worker ") +
             std::to_string(worker_id));
  }
  w.task_since = now;
  if (!w.on_coordinator) {
    ++stats_.invocations;
    if (!a.image_key.empty())  // one store read per link of its chain
      stats_.image_reads += 1 + uint64_t(std::count(a.image_key.begin(), a.image_key.end(), '\n'));
  }
  if (options_.tracing) {
    w.span_kind = a.kind == Assignment::Kind::kStart ? "start" : "resume";
    w.invocation = next_invocation_++;
    trace_arrows(t, w.invocation, now, fx);
    if (t.trace) t.trace->relaunched = false;
  }
  fx.started.push_back(worker_id);
  answer(worker_id, std::move(a), fx);
}

// Parks the blocked calls at once, rather than after their grace period,
// when ready work waits for the worker slots they hold. on_coordinator tasks
// hold no such slot.
void JobState::park_blocked_for_starved_work(TimePoint now, Effects& fx) {
  if (blocked_.empty() || !ready_work_starved()) return;
  for (uint64_t id : std::vector<uint64_t>(blocked_.begin(), blocked_.end())) {
    Task& t = *find(id);
    if (t.d.spec.on_coordinator) continue;
    uint64_t worker = t.worker;
    park_call(t, now, fx);
    answer(worker, CallOutcome::Kind::kPark, fx);
  }
}

void JobState::fail_task(Task& t, const std::string& why, TimePoint now, Effects& fx,
                         bool keep_image) {
  // A failed task takes no item and gives none.
  if (t.queue) {
    Queue& q = queues_.at(t.queue);
    std::erase(q.enqueuers, t.d.id);
    std::erase(q.dequeuers, t.d.id);
  }
  ++stats_.failed;
  last_failure_ = why;
  if (keep_image && t.d.call) t.d.call->image_key.clear();  // not discarded: left for inspection
  resolve(t, FutureSlot::State::kFailed, why, now, fx);
}

// The task's future is resolved: wakes waiters and dependents, and drops the
// task's record (its future stays). `t` is gone when this returns.
void JobState::resolve(Task& t, FutureSlot::State state, std::string bytes, TimePoint now,
                       Effects& fx) {
  uint64_t id = t.d.id;
  unblock(t);
  if (t.d.call)
    for (std::string& key : split_image_chain(t.d.call->image_key))
      fx.discarded.push_back(std::move(key));
  FutureSlot& f = futures_[id];
  f.state = state;
  f.bytes = std::move(bytes);
  if (Observed* o = observed(id)) {
    bool failed = state == FutureSlot::State::kFailed;
    o->phase = failed ? TaskPhase::kFailed : TaskPhase::kFinished;
    o->why = failed ? f.bytes.substr(0, 2000) : std::string();
    note(id, now, failed ? "failed: " + f.bytes.substr(0, 300) : std::string("finished"));
  }
  fx.changes.resolved.push_back(id);
  if (id == kRootTask) {
    job_.done = true;
    job_.failed = state == FutureSlot::State::kFailed;
    (job_.failed ? job_.error : job_.result) = f.bytes;
    fx.changes.job = true;
    fx.job_done = true;
  }
  std::vector<std::pair<uint64_t, uint64_t>> waiters = std::move(t.waiters);
  std::vector<uint64_t> dependents = std::move(t.dependents);
  --live_count(t.state);  // no longer live
  tasks_[id].reset();
  for (auto [w, seqno] : waiters) {
    Task* waiter = find(w);
    if (!waiter || !waiter->d.call || waiter->d.call->seqno != seqno || waiter->d.call->done)
      continue;  // it moved on (or failed)
    if (--waiter->wait_open == 0) {
      if (finishing_invocation_) {  // tracing: an arrow to where the waiter goes on
        Task::Trace& tr = waiter->traced();
        tr.arrow_from = finishing_invocation_;
        tr.arrow_at = now;
        tr.arrow_kind = "wake";
      }
      finish_wait(*waiter, now, fx);
    }
  }
  for (uint64_t d : dependents) {
    Task* dep = find(d);
    if (dep && dep->state == kWaitingDeps && --dep->deps_left == 0) make_ready(*dep, now, fx);
  }
}

// Completes `t`'s pending call. A task whose worker has given it up (parked)
// becomes ready to relaunch from the call's image; one blocked on its worker
// is answered there; one running is answered by call() itself.
void JobState::complete_call(Task& t, std::string reply, std::string error, TimePoint now,
                             Effects& fx) {
  TaskDurable::Call& c = *t.d.call;
  c.done = true;
  c.reply = std::move(reply);
  c.error = std::move(error);
  if (t.trace && t.trace->queue_waiting) {
    t.trace->queue_waiting = false;
    TraceMark m{.kind = TraceMark::Kind::kQueueWait, .task = t.d.id, .at = now, .op = c.op};
    m.queue = t.queue;
    m.since = t.trace->queue_since;
    fx.marks.push_back(m);
  }
  t.queue = 0;
  t.wait_ids.clear();
  mark_progress(t, fx);
  if (t.state == kParked) {
    if (c.op == Op::kWait || c.op == Op::kEnqueue || c.op == Op::kDequeue)
      blocked_wait_ += now - t.parked_since;
    ++stats_.relaunches;
    if (options_.tracing) t.traced().relaunched = true;
    push_ready(t, now, fx);
  } else if (t.state == kBlocked) {
    set_state(t, kRunning);
    unblock(t);
    if (options_.tracing) trace_arrows(t, invocation_of(t.worker), now, fx);
    answer_result(t.worker, c, fx);
  }
}

// A new kWait: the futures are decoded once and each open one counts down as
// it resolves, so waiting on n futures costs O(n) in all.
void JobState::start_wait(Task& t, TimePoint now, Effects& fx) {
  t.wait_ids = decode<std::vector<uint64_t>>(t.d.call->request);
  t.wait_open = 0;
  for (uint64_t id : t.wait_ids) {
    if (id == 0 || id >= futures_.size()) {
      t.wait_ids.clear();
      complete_call(t, {}, "wait on unknown future " + std::to_string(id), now, fx);
      return;
    }
  }
  for (uint64_t id : t.wait_ids) {
    if (futures_[id].state != FutureSlot::State::kPending) continue;
    ++t.wait_open;
    tasks_[id]->waiters.emplace_back(t.d.id, t.d.call->seqno);
  }
  if (t.wait_open == 0) finish_wait(t, now, fx);
}

void JobState::finish_wait(Task& t, TimePoint now, Effects& fx) {
  std::vector<WaitResult> results;
  results.reserve(t.wait_ids.size());
  for (uint64_t id : t.wait_ids) {
    const FutureSlot& f = futures_[id];
    results.push_back({f.state == FutureSlot::State::kFailed, f.bytes});
  }
  complete_call(t, encode(results), {}, now, fx);
}

// Hands items from enqueuers to the queue and from the queue to dequeuers,
// completing their calls, in FIFO order.
void JobState::queue_progress(Queue& q, TimePoint now, Effects& fx) {
  for (;;) {
    // Blocked enqueuers move into free space.
    while (!q.enqueuers.empty() && q.items.size() < q.max_size) {
      Task& e = *find(q.enqueuers.front());
      q.enqueuers.pop_front();
      q.items.push_back(std::move(e.d.call->request));  // the item (apply() cut the id off)
      complete_call(e, {}, {}, now, fx);
    }
    if (q.dequeuers.empty()) return;
    if (!q.items.empty()) {
      Task& d = *find(q.dequeuers.front());
      q.dequeuers.pop_front();
      std::string item = std::move(q.items.front());
      q.items.pop_front();
      complete_call(d, std::move(item), {}, now, fx);
      continue;
    }
    if (q.enqueuers.empty()) return;
    // Rendezvous: straight from a blocked enqueuer to a blocked dequeuer.
    Task& e = *find(q.enqueuers.front());
    Task& d = *find(q.dequeuers.front());
    q.enqueuers.pop_front();
    q.dequeuers.pop_front();
    complete_call(d, std::move(e.d.call->request), {}, now, fx);
    complete_call(e, {}, {}, now, fx);
  }
}

namespace {
// A key of the data store that a put may write: a plain relative path,
// outside the job's own staging area.
std::string bad_data_key(const std::string& key) {
  if (key.empty()) return "an empty key";
  if (key.front() == '/') return "an absolute path";
  if (key.rfind(".kappa", 0) == 0) return "a name Kappa keeps for itself (.kappa...)";
  for (size_t i = 0; i <= key.size();) {
    size_t slash = std::min(key.find('/', i), key.size());
    std::string_view part(key.data() + i, slash - i);
    if (part == ".." || part == ".") return "a '" + std::string(part) + "' in its path";
    if (part.empty() && slash != key.size()) return "an empty folder name";
    i = slash + 1;
  }
  return {};
}
}  // namespace

// t's put: its bytes are staged; the shell makes them visible under the key,
// and then its call completes (commit_done).
void JobState::start_commit(Task& t, Effects& fx) {
  auto [key, staged] = decode<std::pair<std::string, std::string>>(t.d.call->request);
  if (std::string why = bad_data_key(key); !why.empty())
    throw Error("put key '" + key + "' is " + why);
  fx.commits.push_back({t.d.id, t.d.call->seqno, std::move(staged), std::move(key)});
  ++commits_open_;
}

void JobState::commit_done(uint64_t task, uint64_t seqno, const std::string& error, TimePoint now,
                           Effects& fx) {
  if (commits_open_) --commits_open_;  // the shell reports each commit it was given once
  Task* t = find(task);
  if (t && t->d.call && t->d.call->seqno == seqno && !t->d.call->done && t->d.call->op == Op::kPut)
    complete_call(*t, {}, error.empty() ? std::string() : "the put failed: " + error, now, fx);
  // else: answered already (a commit repeated after a restart)
  check_stalled(fx);
}

// t's call waits in line at `queue`, and the line moves.
void JobState::join_queue(Task& t, uint64_t queue, bool enqueue, TimePoint now, Effects& fx) {
  auto it = queues_.find(queue);
  if (it == queues_.end())
    return complete_call(t, {}, "unknown queue " + std::to_string(queue), now, fx);
  t.queue = queue;
  (enqueue ? it->second.enqueuers : it->second.dequeuers).push_back(t.d.id);
  fx.changes.queues.push_back(queue);
  queue_progress(it->second, now, fx);
  if (options_.tracing && !t.d.call->done) {  // it waits in line
    t.traced().queue_waiting = true;
    t.traced().queue_since = now;
  }
}

// Applies t's new call (t.d.call, not yet done). Completes it now if it can.
void JobState::apply(Task& t, TimePoint now, Effects& fx) {
  TaskDurable::Call& c = *t.d.call;
  try {
    switch (c.op) {
      case Op::kCheckpoint:
      case Op::kYield:
        complete_call(t, {}, {}, now, fx);
        return;
      case Op::kSpawn: {
        std::vector<uint64_t> ids;
        auto specs = decode<std::vector<SpawnSpec>>(c.request);
        ids.reserve(specs.size());
        for (SpawnSpec& s : specs) ids.push_back(add_task(std::move(s), t.d.id, now, fx));
        if (options_.tracing) {  // arrows to the children's first invocations
          uint64_t from = invocation_of(t.worker);
          for (uint64_t id : ids) {
            Task::Trace& child = tasks_[id]->traced();
            child.arrow_from = from;
            child.arrow_at = now;
            child.arrow_kind = "spawn";
          }
        }
        complete_call(t, encode(ids), {}, now, fx);
        for (uint64_t id : ids) start_task(id, now, fx);  // once the spawn is recorded
        return;
      }
      case Op::kWait:
        start_wait(t, now, fx);
        return;
      case Op::kMakeQueue: {
        uint64_t id = next_queue_++;
        queues_[id].max_size = decode<uint64_t>(c.request);
        fx.changes.queues.push_back(id);
        fx.changes.counters = true;
        complete_call(t, encode(id), {}, now, fx);
        return;
      }
      case Op::kPut:
        start_commit(t, fx);
        return;
      case Op::kGet:  // served by the worker, never sent here
        break;
      case Op::kEnqueue:  // take_enqueue_queue leaves the item in c.request
        return join_queue(t, take_enqueue_queue(c.request), /*enqueue=*/true, now, fx);
      case Op::kDequeue:
        return join_queue(t, decode<uint64_t>(c.request), /*enqueue=*/false, now, fx);
    }
    complete_call(t, {}, "unknown call " + std::to_string(uint32_t(c.op)), now, fx);
  } catch (const std::exception& e) {
    if (!c.done) complete_call(t, {}, std::string("malformed call: ") + e.what(), now, fx);
  }
}

uint64_t JobState::spawn_root(SpawnSpec spec, TimePoint now, Effects& fx) {
  if (!start_) start_ = now;
  uint64_t id = add_task(std::move(spec), 0, now, fx);
  start_task(id, now, fx);
  schedule(fx);
  return id;
}

void JobState::restore(DurableJob job, TimePoint now, Effects& fx) {
  uint64_t last = 0;
  for (const TaskDurable& d : job.tasks) last = std::max(last, d.id);
  for (const auto& [id, f] : job.futures) last = std::max(last, id);
  tasks_.resize(last + 1);
  futures_.resize(last + 1);
  stats_.tasks = last;
  if (!start_) start_ = now;
  if (options_.observe) observed_.resize(last + 1);
  for (auto& [id, f] : job.futures) {
    ++(f.state == FutureSlot::State::kDone ? stats_.finished : stats_.failed);
    if (Observed* o = observed(id)) {
      bool failed = f.state == FutureSlot::State::kFailed;
      o->phase = failed ? TaskPhase::kFailed : TaskPhase::kFinished;
      if (failed) o->why = f.bytes.substr(0, 2000);
    }
    futures_[id] = std::move(f);
  }
  for (TaskDurable& d : job.tasks) {
    if (Observed* o = observed(d.id)) {
      o->fn = d.spec.fn;
      o->name = d.spec.name;
      o->on_coordinator = d.spec.on_coordinator;
    }
    auto t = std::make_unique<Task>();
    uint64_t id = d.id;
    t->d = std::move(d);
    ++stats_.waiting;
    tasks_[id] = std::move(t);
  }
  for (auto& [id, q] : job.queues) {
    for (uint64_t e : q.enqueuers) tasks_.at(e)->queue = id;
    for (uint64_t d : q.dequeuers) tasks_.at(d)->queue = id;
    queues_[id] = std::move(q);
  }
  next_queue_ = job.next_queue;
  next_worker_ = job.next_worker;
  job_ = std::move(job.outcome);
  if (job_.done) return;
  // The links between tasks are bookkeeping: rebuilt, in id order.
  for (uint64_t id = 1; id <= last; ++id) {
    Task* t = find(id);
    if (!t || t->d.phase != TaskDurable::Phase::kWaitingDeps) continue;
    auto depend_on = [&](uint64_t f) {
      if (f == 0 || f >= futures_.size() || futures_[f].state != FutureSlot::State::kPending)
        return;
      ++t->deps_left;
      tasks_.at(f)->dependents.push_back(id);
    };
    for (const ArgSlot& a : t->d.spec.args)
      if (a.future) depend_on(a.future);
    for (uint64_t f : t->d.spec.awaits) depend_on(f);
  }
  for (uint64_t id = 1; id <= last; ++id) {
    Task* t = find(id);
    if (!t) continue;
    if (t->d.phase == TaskDurable::Phase::kWaitingDeps) {
      if (t->deps_left == 0) make_ready(*t, now, fx);
      continue;
    }
    const std::optional<TaskDurable::Call>& c = t->d.call;
    if (!c || c->done) {  // from its start, or its latest call with the result
      push_ready(*t, now, fx);
      continue;
    }
    // Its call waits: the previous coordinator had parked it (or its worker
    // is gone with that coordinator).
    set_parked(*t, now);
    if (c->op == Op::kWait) start_wait(*t, now, fx);  // may complete at once
    if (c->op == Op::kPut) start_commit(*t, fx);      // once more: commits are idempotent
    // An enqueue or dequeue waits in its queue's line, restored above.
  }
  for (auto& [id, q] : queues_) queue_progress(q, now, fx);
  schedule(fx);
  check_stalled(fx);
}

// ---------------------------------------------------------------- scheduling

// Ready work waits for a worker slot: there is more of it than the starting
// workers will take, and no slot left to launch another.
bool JobState::ready_work_starved() const {
  return ready_[0].size() > pools_[0].starting && pools_[0].live >= options_.max_workers;
}

// A blocked call gives its worker up at once: the job is over, or ready work
// waits for the worker slot it holds.
bool JobState::must_park(const Task& t) const {
  return shutdown_ || (!t.d.spec.on_coordinator && ready_work_starved());
}

// Launches workers for ready work that no starting worker will take (an idle
// worker would have taken it already).
void JobState::schedule(Effects& fx) {
  if (shutdown_ || job_.done) return;
  for (int pool = 0; pool < 2; ++pool) {
    PoolCount& n = pools_[pool];
    size_t max = pool ? options_.max_coordinator_workers : options_.max_workers;
    while (ready_[pool].size() > n.starting && n.live < max) {
      uint64_t id = next_worker_++;
      Worker& w = workers_[id];
      w.on_coordinator = pool;
      w.launched = true;
      ++n.starting;
      ++n.live;
      ++stats_.workers_launched;
      ++stats_.workers_live;
      fx.launches.push_back({id, bool(pool)});
      fx.changes.counters = true;
    }
  }
}

// The worker's task is over as far as the coordinator is concerned. The
// backend's time limit keeps running until the worker asks for new work (a
// worker parked by an asynchronous call may still be computing).
void JobState::end_invocation(uint64_t worker_id, const std::string& outcome, TimePoint now,
                              Effects& fx) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || !it->second.task) return;
  Worker& w = it->second;
  if (Observed* o = observed(w.task); o && !o->history.empty() && o->history.back().end < 0 &&
                                      o->history.back().worker == worker_id) {
    o->history.back().end = since_start(now);
    o->history.back().outcome = outcome;
    if (outcome == "park") {
      const Task* t = find(w.task);
      note(w.task, now, "parked: " + (t ? describe_wait(*t) : std::string("waits")));
    } else if (outcome == "yield") {
      note(w.task, now, "yielded its worker");
    } else if (outcome.rfind("worker lost", 0) == 0) {
      note(w.task, now, "worker " + std::to_string(worker_id) + " " + outcome.substr(7));
    }
  }
  if (!w.on_coordinator) {  // Lambda bills each invocation by the millisecond, rounded up
    using std::chrono::milliseconds;
    auto ms = std::chrono::ceil<milliseconds>(now - w.task_since).count();
    stats_.billed_ms += uint64_t(std::max<decltype(ms)>(ms, 0));
  }
  if (options_.tracing) {
    const Task* t = find(w.task);
    fx.spans.push_back(TraceSpan{w.task, worker_id, w.invocation, w.on_coordinator,
                                 t ? t->d.spec.name : std::string(), w.span_kind, outcome,
                                 w.task_since, now});
  }
  w.task = 0;
}

void JobState::next(uint64_t worker_id, TimePoint now, Effects& fx) {
  if (dead_.count(worker_id)) {  // already reported gone: never hand it work
    answer(worker_id, Assignment{.kind = Assignment::Kind::kShutdown}, fx);
    return;
  }
  Worker& w = workers_[worker_id];
  bool pool = w.on_coordinator;
  seen(w, now);
  if (!w.started) {
    w.started = true;
    start_failures_ = 0;
    if (w.launched) {
      --pools_[pool].starting;
    } else {  // a worker nobody launched (started by hand for a standalone coordinator)
      ++pools_[pool].live;
      ++stats_.workers_live;
    }
  }
  fx.ended.push_back(worker_id);
  if (w.task)
    lose_task(worker_id, WorkerExit{WorkerExit::Cause::kLost},
              "the worker asked for new work while running a task", now, fx);
  if (w.idle) remove_idle(worker_id, w);  // asked twice: the new request replaces the old
  if (shutdown_) {
    answer(worker_id, Assignment{.kind = Assignment::Kind::kShutdown}, fx);
    return;
  }
  while (!ready_[pool].empty()) {
    // Newest first, as fork-join schedulers do: a task's children run
    // before its siblings, so a job keeps few tasks parked at a time (and
    // few images in memory), where oldest first would park every level of a
    // recursive job before any of it finished.
    Task* t = find(ready_[pool].back());
    ready_[pool].pop_back();
    if (!t || t->state != kReady) continue;
    assign(w, worker_id, *t, now, fx);
    return;
  }
  w.idle = true;
  w.idle_until = now + options_.idle_poll;
  idle_[pool].push_back(worker_id);
  add_timer(w.idle_until, TimerKind::kIdle, worker_id);
}

void JobState::remove_idle(uint64_t worker_id, Worker& w) {
  w.idle = false;
  timers_.erase({w.idle_until, TimerKind::kIdle, worker_id});
  std::erase(idle_[w.on_coordinator], worker_id);
}

// Statistics of a call as it arrives, from any worker: its checkpoint was
// taken and written whether or not the call is applied.
void JobState::count_call(const CallInfo& info) {
  ++stats_.calls;
  ++stats_.calls_by_op[size_t(info.op) < kOpSlots ? size_t(info.op) : 0];
  uint64_t bytes = info.image_bytes ? info.image_bytes : info.image.size();
  if (bytes || !info.image_key.empty()) {
    ++stats_.checkpoints;
    stats_.checkpoint_bytes += bytes;
    if (info.image.empty()) ++stats_.stored_checkpoints;
  }
}

// A checkpoint span of the invocation that sent the call (none for a stale
// call: its worker runs no longer that task).
void JobState::trace_call(const CallInfo& info, TimePoint now, Effects& fx) {
  auto w = workers_.find(info.worker_id);
  if (w == workers_.end() || w->second.task != info.task_id) return;
  uint64_t bytes = info.image_bytes ? info.image_bytes : info.image.size();
  if (!bytes && info.image_key.empty()) return;
  TraceMark m{.kind = TraceMark::Kind::kCheckpoint,
              .task = info.task_id,
              .invocation = w->second.invocation,
              .at = now,
              .op = info.op,
              .bytes = bytes,
              .capture_us = info.capture_us,
              .write_us = info.write_us,
              .stored = info.image.empty()};
  fx.marks.push_back(m);
}

// The arrow t's invocation `invocation` ends (if one waits), and whether
// it relaunches t.
void JobState::trace_arrows(Task& t, uint64_t invocation, TimePoint now, Effects& fx) {
  if (!invocation || !t.trace) return;
  Task::Trace& tr = *t.trace;
  if (tr.arrow_from) {
    TraceMark m{
        .kind = TraceMark::Kind::kFlow, .task = t.d.id, .invocation = invocation, .at = now};
    m.since = tr.arrow_at;
    m.from = tr.arrow_from;
    m.flow = tr.arrow_kind;
    fx.marks.push_back(m);
    tr.arrow_from = 0;
  }
  if (tr.relaunched)
    fx.marks.push_back(TraceMark{
        .kind = TraceMark::Kind::kRelaunch, .task = t.d.id, .invocation = invocation, .at = now});
}

uint64_t JobState::invocation_of(uint64_t worker) const {
  auto it = workers_.find(worker);
  return it == workers_.end() ? 0 : it->second.invocation;
}

void JobState::call(CallInfo info, TimePoint now, Effects& fx) {
  count_call(info);
  if (options_.tracing) trace_call(info, now, fx);
  if (auto w = workers_.find(info.worker_id); w != workers_.end()) seen(w->second, now);
  Task* found = find(info.task_id);
  if (!found || found->worker != info.worker_id ||
      (found->state != kRunning && found->state != kBlocked)) {
    answer(info.worker_id, CallOutcome::Kind::kAbandon, fx);
    return;
  }
  Task& t = *found;
  if (t.d.call && info.seqno < t.d.call->seqno) {  // stale: ignore it, change nothing
    answer(info.worker_id, CallOutcome::Kind::kAbandon, fx);
    return;
  }
  if (t.d.call && info.seqno == t.d.call->seqno) {
    ++stats_.duplicate_calls;  // a restarted task repeats its latest call
  } else {
    if (t.d.call)
      for (std::string& key : superseded_images(t.d.call->image_key, info.image_key))
        fx.discarded.push_back(std::move(key));
    // As count_call counts them, for the invocation this call belongs to.
    uint64_t image_bytes = info.image_bytes ? info.image_bytes : info.image.size();
    if (Observed* o = observed(t.d.id);
        o && !o->history.empty() && (image_bytes || !info.image_key.empty())) {
      InvocationView& inv = o->history.back();
      ++inv.checkpoints;
      inv.checkpoint_bytes += image_bytes;
    }
    t.d.call = TaskDurable::Call{info.seqno,
                                 std::move(info.image_key),
                                 std::move(info.image),
                                 info.op,
                                 std::move(info.request),
                                 false,
                                 {},
                                 {}};
    t.d.failures = 0;  // progress
    t.d.crashes = 0;
    t.queue = 0;
    mark_progress(t, fx);
    apply(t, now, fx);
    schedule(fx);  // a spawn may have made work ready
  }
  TaskDurable::Call& c = *t.d.call;
  if (!c.done && !must_park(t)) {
    if (t.state != kBlocked) {
      set_state(t, kBlocked);
      blocked_.insert(t.d.id);
      t.park_at = now + options_.grace;
      add_timer(t.park_at, TimerKind::kGrace, t.d.id);
    }
    check_stalled(fx);
    return;  // answered when the call completes, or at the end of the grace period
  }
  if (c.done && c.op != Op::kYield) {
    set_state(t, kRunning);
    unblock(t);
    answer_result(info.worker_id, c, fx);
    return;
  }
  park_call(t, now, fx);
  answer(info.worker_id, CallOutcome::Kind::kPark, fx);
  check_stalled(fx);
}

// The task's worker drops it (the caller tells it kPark); it is relaunched
// from the call's image once the call completes (a yield: at once, elsewhere).
void JobState::park_call(Task& t, TimePoint now, Effects& fx) {
  unblock(t);
  uint64_t worker = std::exchange(t.worker, 0);
  ++stats_.parks;
  bool done = t.d.call->done;
  if (options_.tracing && !done)
    fx.marks.push_back(TraceMark{.kind = TraceMark::Kind::kPark,
                                 .task = t.d.id,
                                 .invocation = invocation_of(worker),
                                 .at = now,
                                 .op = t.d.call->op});
  end_invocation(worker, done ? "yield" : "park", now, fx);
  if (done) {
    ++stats_.relaunches;
    if (options_.tracing) t.traced().relaunched = true;
    push_ready(t, now, fx);
  } else {
    set_parked(t, now);
  }
  schedule(fx);
}

void JobState::set_parked(Task& t, TimePoint now) {
  set_state(t, kParked);
  t.parked_since = now;
}

void JobState::finish(FinishInfo info, TimePoint now, Effects& fx) {
  if (auto w = workers_.find(info.worker_id); w != workers_.end()) seen(w->second, now);
  Task* found = find(info.task_id);
  // A stale finish (another worker runs the task, or this attempt is behind
  // the task's recorded calls) changes nothing.
  bool current = found && found->worker == info.worker_id && found->state == kRunning &&
                 (!found->d.call || info.seqno > found->d.call->seqno);
  if (current) {
    Task& t = *found;
    t.worker = 0;
    end_invocation(info.worker_id, info.failed ? "failed" : "finished", now, fx);
    if (options_.tracing) finishing_invocation_ = invocation_of(info.worker_id);
    if (info.failed) {
      fail_task(t, describe(t) + " failed: " + info.error, now, fx);
    } else {
      ++stats_.finished;
      resolve(t, FutureSlot::State::kDone, std::move(info.result), now, fx);
    }
    finishing_invocation_ = 0;
    schedule(fx);
  }
  if (info.and_next) {
    next(info.worker_id, now, fx);
  } else {
    // The worker wants nothing more (its platform invocation ends): its
    // invocation is over for the backend too.
    fx.ended.push_back(info.worker_id);
    fx.answers.push_back({info.worker_id, Effects::Finished{}, Effects::Answer::Gate::kNow});
  }
  check_stalled(fx);
}

void JobState::heartbeat(uint64_t worker, TimePoint now) {
  auto it = workers_.find(worker);
  if (it != workers_.end()) seen(it->second, now);
}

// Any message is a sign of life; from the first one on, the worker must
// keep sending them (its heartbeats) or count as hung.
void JobState::seen(Worker& w, TimePoint now) {
  w.heard = true;
  w.last_seen = now;
  if (!liveness_timer_ && options_.liveness_timeout > Duration::zero()) {
    liveness_timer_ = true;
    add_timer(now + options_.liveness_timeout / 4, TimerKind::kLiveness, 0);
  }
}

void JobState::crash_report(CrashReport report) {
  auto it = workers_.find(report.worker_id);
  if (it != workers_.end()) it->second.crash = std::move(report);
}

void JobState::lose_task(uint64_t worker_id, const WorkerExit& exit, const std::string& why,
                         TimePoint now, Effects& fx) {
  auto wit = workers_.find(worker_id);
  if (wit == workers_.end() || !wit->second.task) return;
  Worker& w = wit->second;
  Task* found = find(w.task);
  end_invocation(worker_id, "worker lost: " + why, now, fx);
  if (!found || found->worker != worker_id) return;
  Task& t = *found;
  t.worker = 0;
  unblock(t);
  mark_progress(t, fx);
  if (Observed* o = observed(t.d.id)) o->why = why;
  bool crash = exit.deterministic_crash() || (w.crash && w.crash->signal != 0);
  if (crash && ++t.d.crashes > options_.max_crash_retries) {
    std::string msg = describe(t) + " crashed " + std::to_string(t.d.crashes) +
                      " times in a row (last: " + why + ")";
    if (w.crash && !w.crash->backtrace.empty()) msg += "; backtrace:\n" + w.crash->backtrace;
    fail_task(t, msg, now, fx, /*keep_image=*/true);
    return;
  }
  if (++t.d.failures > options_.max_failures) {
    fail_task(t,
              describe(t) + " failed: its worker died " + std::to_string(t.d.failures) +
                  " times in a row without progress (last: " + why + ")",
              now, fx, /*keep_image=*/true);
  } else if (t.d.call && !t.d.call->done) {
    set_parked(t, now);  // relaunched when its call completes
  } else {
    ++stats_.relaunches;
    if (options_.tracing) t.traced().relaunched = true;
    push_ready(t, now, fx);  // from its last checkpoint, or from the start
  }
}

void JobState::worker_exited(uint64_t worker_id, const WorkerExit& exit, TimePoint now,
                             Effects& fx) {
  if (!dead_.insert(worker_id).second) return;  // reported already
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  bool started = w.started;
  WorkerExit e = exit;
  if (w.crash && w.crash->signal &&
      (e.cause == WorkerExit::Cause::kLost || e.signal == 0 || e.signal == w.crash->signal)) {
    e.cause = WorkerExit::Cause::kCrashed;  // the worker said so before dying
    e.signal = w.crash->signal;
  }
  auto cause = size_t(e.cause);
  (w.task ? stats_.deaths : stats_.idle_exits)[cause]++;
  std::string why = e.describe();
  lose_task(worker_id, e, why, now, fx);
  if (w.idle) remove_idle(worker_id, w);
  PoolCount& n = pools_[w.on_coordinator];
  if (!started && w.launched) --n.starting;
  if (n.live) --n.live;
  if (stats_.workers_live) --stats_.workers_live;
  workers_.erase(it);
  // Workers that die before they ask for work cannot run anything: after a
  // few in a row the job fails, instead of relaunching them forever.
  if (!started && ++start_failures_ >= options_.max_start_failures) {
    fail_job(std::to_string(start_failures_) +
                 " workers in a row died before asking for work (last: " + why + ")",
             fx);
    return;
  }
  schedule(fx);
  check_stalled(fx);
}

void JobState::launch_failed(uint64_t worker_id, const std::string& error, TimePoint now,
                             Effects& fx) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.started) return;
  dead_.insert(worker_id);
  PoolCount& n = pools_[it->second.on_coordinator];
  if (n.starting) --n.starting;
  if (n.live) --n.live;
  if (stats_.workers_live) --stats_.workers_live;
  workers_.erase(it);
  if (++start_failures_ >= options_.max_start_failures) {
    fail_job("cannot start a worker (" + std::to_string(start_failures_) +
                 " attempts in a row failed; last: " + error + ")",
             fx);
    return;
  }
  (void)now;
  schedule(fx);
  check_stalled(fx);
}

void JobState::fire_timers(TimePoint now, Effects& fx) {
  while (!timers_.empty() && std::get<0>(*timers_.begin()) <= now) {
    auto [when, kind, id] = *timers_.begin();
    timers_.erase(timers_.begin());
    switch (kind) {
      case TimerKind::kGrace: {
        Task* t = find(id);
        if (!t || t->state != kBlocked || t->park_at != when) break;  // answered meanwhile
        uint64_t worker = t->worker;
        park_call(*t, now, fx);
        answer(worker, CallOutcome::Kind::kPark, fx);
        break;
      }
      case TimerKind::kIdle: {
        auto it = workers_.find(id);
        if (it == workers_.end() || !it->second.idle || it->second.idle_until != when) break;
        remove_idle(id, it->second);
        answer(id, Assignment{.kind = Assignment::Kind::kIdle}, fx);
        break;
      }
      case TimerKind::kLiveness: {
        liveness_timer_ = false;
        // Once the job is shut down its workers are leaving: none is hung
        // (a coordinator kept alive after the job, for its live view, would
        // otherwise count them all as dead).
        if (shutdown_) break;
        std::vector<uint64_t> silent;
        for (auto& [wid, w] : workers_)
          if (w.heard && now - w.last_seen > options_.liveness_timeout) silent.push_back(wid);
        for (uint64_t wid : silent) {
          fx.hung.push_back(wid);
          worker_exited(wid, WorkerExit{WorkerExit::Cause::kHung}, now, fx);
        }
        for (auto& [wid, w] : workers_) {
          if (!w.heard) continue;
          liveness_timer_ = true;  // checked again while anyone sends heartbeats
          add_timer(now + options_.liveness_timeout / 4, TimerKind::kLiveness, 0);
          break;
        }
        break;
      }
    }
  }
  check_stalled(fx);
}

void JobState::shutdown(TimePoint now, Effects& fx) {
  shutdown_ = true;
  for (auto& idle : idle_) {
    for (uint64_t id : idle) {
      auto it = workers_.find(id);
      if (it == workers_.end() || !it->second.idle) continue;
      it->second.idle = false;
      answer(id, Assignment{.kind = Assignment::Kind::kShutdown}, fx);
    }
    idle.clear();
  }
  for (uint64_t id : std::vector<uint64_t>(blocked_.begin(), blocked_.end())) {
    Task& t = *find(id);
    uint64_t worker = t.worker;
    park_call(t, now, fx);
    answer(worker, CallOutcome::Kind::kPark, fx);
  }
}

// No task runs or can be given to a worker, and no put is being committed:
// every live task waits for another one, which nothing will change. The job
// fails, saying what each waits for (a few of them) and the latest failure.
void JobState::check_stalled(Effects& fx) {
  if (job_.done || shutdown_ || stats_.ready || stats_.running || commits_open_) return;
  uint64_t live = stats_.waiting + stats_.blocked + stats_.parked;
  if (live == 0) return;
  constexpr size_t kShown = 5;
  std::string msg = "the job cannot go on: no task can run, and " + std::to_string(live) +
                    (live == 1 ? " task waits" : " tasks wait") +
                    " for something no task will do (";
  size_t shown = 0;
  for (const auto& t : tasks_) {
    if (!t) continue;
    if (shown == kShown) {
      msg += "; ...";
      break;
    }
    msg += (shown++ ? "; " : "") + describe(*t) + " " + describe_wait(*t);
  }
  msg += ")";
  if (!last_failure_.empty()) msg += "; the latest failure: " + last_failure_;
  fail_job(msg, fx);
}

std::string JobState::describe_wait(const Task& t) const {
  if (t.state == kWaitingDeps) return "waits for the futures it was spawned with";
  if (!t.d.call) return "waits";
  if (t.queue) {
    bool enqueue = t.d.call->op == Op::kEnqueue;
    return (enqueue ? "enqueues to full queue " : "dequeues from empty queue ") +
           std::to_string(t.queue);
  }
  if (t.d.call->op == Op::kWait) {
    std::string s = "awaits";
    size_t n = 0;
    for (uint64_t id : t.wait_ids) {
      if (futures_[id].state != FutureSlot::State::kPending) continue;
      if (n++ == 3) {
        s += " ...";
        break;
      }
      s += " task " + std::to_string(id);
    }
    return s;
  }
  return "waits for its call to complete";
}

void JobState::fail_job(const std::string& why, Effects& fx) {
  if (job_.done) return;
  job_.done = true;
  job_.failed = true;
  job_.error = why;
  fx.changes.job = true;
  fx.job_done = true;
}

}  // namespace kappa::detail

namespace kappa::detail {

// ---------------------------------------------------------------- views

namespace {
const char* const kPhaseNames[kTaskPhases] = {"waiting", "ready",    "running", "blocked",
                                              "parked",  "finished", "failed"};
}  // namespace

const char* phase_name(TaskPhase p) { return kPhaseNames[size_t(p)]; }

std::optional<TaskPhase> parse_phase(const std::string& name) {
  for (size_t i = 0; i < kTaskPhases; ++i)
    if (name == kPhaseNames[i]) return TaskPhase(i);
  return std::nullopt;
}

JobState::Observed* JobState::observed(uint64_t id) {
  return options_.observe && id < observed_.size() ? &observed_[id] : nullptr;
}

double JobState::since_start(TimePoint t) const {
  return start_ ? std::chrono::duration<double>(t - *start_).count() : 0;
}

void JobState::note(uint64_t task, TimePoint now, std::string what) {
  const Observed& o = observed_[task];
  TaskEvent e{since_start(now), task, o.name, o.fn, std::move(what)};
  if (events_.size() < kEvents) {
    events_.push_back(std::move(e));
  } else {
    events_[events_next_] = std::move(e);
    events_next_ = (events_next_ + 1) % kEvents;
  }
}

TaskView JobState::view_of(uint64_t id, bool history) const {
  const Observed& o = observed_[id];
  TaskView v;
  v.id = id;
  v.parent = o.parent;
  v.name = o.name;
  v.fn = o.fn;
  v.on_coordinator = o.on_coordinator;
  v.phase = o.phase;
  v.invocations = o.invocations;
  if (history) v.history = o.history;
  const Task* t = id < tasks_.size() ? tasks_[id].get() : nullptr;
  if (!t) {  // resolved
    v.why = o.why;
    return v;
  }
  v.failures = t->d.failures;
  switch (t->state) {
    case kWaitingDeps:
    case kBlocked:
    case kParked:
      v.why = describe_wait(*t);
      break;
    default:
      break;
  }
  if (t->d.failures && !o.why.empty())
    v.why += (v.why.empty() ? "" : "; ") + std::string("retrying after worker deaths (") +
             std::to_string(t->d.failures) + ", last: " + o.why + ")";
  return v;
}

JobView JobState::view(TimePoint now, size_t recent) const {
  JobView v;
  v.state = !job_.done    ? JobView::State::kRunning
            : job_.failed ? JobView::State::kFailed
                          : JobView::State::kDone;
  v.error = job_.error;
  v.stats = stats_;
  for (const auto& [id, w] : workers_)
    if (w.task) ++v.workers_busy;
  v.workers_idle = stats_.workers_live > v.workers_busy ? stats_.workers_live - v.workers_busy : 0;
  v.elapsed = since_start(now);
  v.observed = options_.observe;
  size_t n = std::min(recent, events_.size());
  v.recent.reserve(n);
  // Oldest first in the ring: from events_next_ on once it is full.
  for (size_t i = events_.size() - n; i < events_.size(); ++i)
    v.recent.push_back(events_[(events_next_ + i) % events_.size()]);
  return v;
}

TaskPage JobState::task_page(const TaskQuery& q) const {
  TaskPage page;
  if (!options_.observe) return page;
  auto selected = [&](uint64_t id) {
    const Observed& o = observed_[id];
    if (q.phase && o.phase != *q.phase) return false;
    if (q.retrying) {
      const Task* t = id < tasks_.size() ? tasks_[id].get() : nullptr;
      if (!t || t->d.failures == 0) return false;
    }
    return true;
  };
  bool all = !q.phase && !q.retrying;
  uint64_t last = observed_.empty() ? 0 : observed_.size() - 1;
  if (all) {
    page.total = last;
    for (uint64_t id = q.offset + 1; id <= last && page.tasks.size() < q.limit; ++id)
      page.tasks.push_back(view_of(id, false));
    return page;
  }
  for (uint64_t id = 1; id <= last; ++id) {
    if (!selected(id)) continue;
    if (page.total >= q.offset && page.tasks.size() < q.limit)
      page.tasks.push_back(view_of(id, false));
    ++page.total;
  }
  return page;
}

std::optional<TaskView> JobState::task_view(uint64_t id) const {
  if (!options_.observe || id == 0 || id >= observed_.size()) return std::nullopt;
  return view_of(id, true);
}

std::vector<QueueView> JobState::queue_views() const {
  constexpr size_t kShown = 20;
  std::vector<QueueView> out;
  out.reserve(queues_.size());
  for (const auto& [id, q] : queues_) {
    QueueView v;
    v.id = id;
    v.max_size = q.max_size;
    v.depth = q.items.size();
    v.enqueuers_total = q.enqueuers.size();
    v.dequeuers_total = q.dequeuers.size();
    for (size_t i = 0; i < q.enqueuers.size() && i < kShown; ++i)
      v.enqueuers.push_back(q.enqueuers[i]);
    for (size_t i = 0; i < q.dequeuers.size() && i < kShown; ++i)
      v.dequeuers.push_back(q.dequeuers[i]);
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(),
            [](const QueueView& a, const QueueView& b) { return a.id < b.id; });
  return out;
}

}  // namespace kappa::detail
