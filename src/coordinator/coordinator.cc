#include "coordinator/coordinator.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

namespace kappa::detail {

namespace {
constexpr uint64_t kRootTask = 1;
}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, CheckpointStore* store)
    : options_(options), store_(store), housekeeper_([this] { housekeeping(); }) {}

Coordinator::~Coordinator() {
  {
    std::lock_guard lock(mu_);
    housekeeper_stop_ = true;
  }
  housekeeper_cv_.notify_all();
  housekeeper_.join();
}

// The housekeeping thread: removes replaced images from the store (an
// unlink of a large image costs ~100 us, kept off the calls' answers) and
// parks hooked calls whose grace period is over.
void Coordinator::housekeeping() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!doomed_.empty()) {
      std::vector<std::string> batch;
      batch.swap(doomed_);
      removing_ = true;
      lock.unlock();
      for (const std::string& key : batch) store_->remove(key);
      lock.lock();
      removing_ = false;
      housekeeper_cv_.notify_all();  // drain_store() may be waiting
    }
    auto now = std::chrono::steady_clock::now();
    while (!parking_.empty() && parking_.begin()->first <= now) {
      auto [when, id] = *parking_.begin();
      parking_.erase(parking_.begin());
      TaskRecord& t = tasks_.at(id);
      if (t.hook && t.state == State::kBlocked && t.park_at == when) park_hooked(t);
    }
    flush_outbox(lock);
    if (!doomed_.empty()) continue;
    if (housekeeper_stop_) return;
    if (parking_.empty())
      housekeeper_cv_.wait(lock);
    else
      housekeeper_cv_.wait_until(lock, parking_.begin()->first);
  }
}

// An image nobody will restore from any more.
void Coordinator::discard_image(std::string key) {
  if (!store_ || key.empty()) return;
  doomed_.push_back(std::move(key));
  housekeeper_cv_.notify_all();
}

void Coordinator::drain_store() {
  std::unique_lock lock(mu_);
  housekeeper_cv_.wait(lock, [&] { return doomed_.empty() && !removing_; });
}

std::string Coordinator::describe(const TaskRecord& t) const {
  std::string s = "task " + std::to_string(t.id);
  if (!t.spec.name.empty()) s += " (" + t.spec.name + ")";
  return s;
}

// ---------------------------------------------------------------- tasks

uint64_t Coordinator::add_task(SpawnSpec spec) {
  uint64_t id = next_task_++;
  TaskRecord& t = tasks_[id];
  t.id = id;
  t.spec = std::move(spec);
  t.args.resize(t.spec.args.size());
  ++stats_.tasks;
  auto depend_on = [&](uint64_t fid) {
    auto it = tasks_.find(fid);
    if (it == tasks_.end() || fid == id) {
      // An unknown future is a programming error in the spawning task; the
      // child fails rather than waiting forever.
      t.error = "awaits unknown future " + std::to_string(fid);
      return;
    }
    if (it->second.state == State::kDone || it->second.state == State::kFailed) return;
    ++t.deps_left;
    it->second.dependents.push_back(id);
  };
  for (size_t i = 0; i < t.spec.args.size(); ++i) {
    if (t.spec.args[i].future)
      depend_on(t.spec.args[i].future);
    else
      t.args[i] = std::move(t.spec.args[i].bytes);
  }
  for (uint64_t f : t.spec.awaits) depend_on(f);
  if (!t.error.empty()) {
    fail_task(t, describe(t) + " " + t.error);
  } else if (t.deps_left == 0) {
    make_ready(t);
  }
  return id;
}

uint64_t Coordinator::spawn_root(SpawnSpec spec) {
  OutboxFlush flush{this};
  std::lock_guard lock(mu_);
  uint64_t id = add_task(std::move(spec));
  schedule();
  return id;
}

// Called when a task's dependencies have all resolved: fills future
// arguments in and queues the task, or fails it if a dependency failed.
void Coordinator::make_ready(TaskRecord& t) {
  for (size_t i = 0; i < t.spec.args.size(); ++i) {
    uint64_t f = t.spec.args[i].future;
    if (!f) continue;
    const TaskRecord& dep = tasks_.at(f);
    if (dep.state == State::kFailed) {
      fail_task(
          t, describe(t) + " not started: its argument " + describe(dep) + " failed: " + dep.error);
      return;
    }
    t.args[i] = dep.result;
  }
  push_ready(t);
}

// Queues `t` for the next free worker of its pool.
void Coordinator::push_ready(TaskRecord& t) {
  t.state = State::kReady;
  ready_[t.spec.on_coordinator].push_back(t.id);
  work_cv_[t.spec.on_coordinator].notify_one();
  wake_blocked();  // a blocked call may now be holding a slot others need
}

// Parks the blocked calls if ready work waits for their slots, at once
// rather than after the grace period (a waiting call() is woken to do so).
// on_coordinator tasks hold no such slot.
void Coordinator::wake_blocked() {
  if (blocked_.empty() || !ready_work_starved()) return;
  for (uint64_t id : std::vector<uint64_t>(blocked_.begin(), blocked_.end())) {
    TaskRecord& t = tasks_.at(id);
    if (t.spec.on_coordinator) continue;
    if (t.hook)
      park_hooked(t);
    else
      t.cv.notify_one();
  }
}

void Coordinator::fail_task(TaskRecord& t, const std::string& why) {
  // A failed task takes no item and gives none.
  for (auto& [id, q] : queues_) {
    std::erase(q.enqueuers, t.id);
    std::erase(q.dequeuers, t.id);
  }
  t.state = State::kFailed;
  t.error = why;
  ++stats_.failed;
  resolve(t);
}

// The task's future is resolved (done or failed): wake waiters and dependents.
void Coordinator::resolve(TaskRecord& t) {
  for (uint64_t w : std::exchange(t.waiters, {})) {
    TaskRecord& waiter = tasks_.at(w);
    if (waiter.call && !waiter.call->done && waiter.call->op == Op::kWait)
      try_wait(waiter, decode<std::vector<uint64_t>>(waiter.call->request));
  }
  for (uint64_t d : std::exchange(t.dependents, {})) {
    TaskRecord& dep = tasks_.at(d);
    if (dep.state == State::kWaitingDeps && --dep.deps_left == 0) make_ready(dep);
  }
  if (t.id == kRootTask) {
    job_.done = true;
    job_.failed = t.state == State::kFailed;
    job_.result = t.result;
    job_.error = t.error;
    job_cv_.notify_all();
  }
}

// Completes `t`'s pending call. If its worker has given it up (parked), the
// task becomes ready to relaunch from the call's image.
void Coordinator::complete_call(TaskRecord& t, std::string reply, std::string error) {
  t.call->done = true;
  t.call->reply = std::move(reply);
  t.call->error = std::move(error);
  if (t.state == State::kParked) {
    ++stats_.relaunches;
    push_ready(t);
  } else if (t.state == State::kBlocked) {
    t.state = State::kRunning;
    blocked_.erase(t.id);
    if (t.hook)  // answered from this thread, once it has released the lock
      outbox_.emplace_back(std::exchange(t.hook, {}),
                           CallOutcome{CallOutcome::Kind::kResult, t.call->reply, t.call->error});
    else
      t.cv.notify_one();
  }
}

void Coordinator::try_wait(TaskRecord& t, const std::vector<uint64_t>& ids) {
  std::vector<WaitResult> results;
  results.reserve(ids.size());
  for (uint64_t id : ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      complete_call(t, {}, "wait on unknown future " + std::to_string(id));
      return;
    }
    TaskRecord& f = it->second;
    if (f.state == State::kDone) {
      results.push_back({false, f.result});
    } else if (f.state == State::kFailed) {
      results.push_back({true, f.error});
    } else {
      if (std::find(f.waiters.begin(), f.waiters.end(), t.id) == f.waiters.end())
        f.waiters.push_back(t.id);
      return;
    }
  }
  complete_call(t, encode(results));
}

// Hands items from enqueuers to the queue and from the queue to dequeuers,
// completing their calls, in FIFO order.
void Coordinator::queue_progress(QueueRecord& q) {
  for (;;) {
    // Blocked enqueuers move into free space.
    while (!q.enqueuers.empty() && q.items.size() < q.max_size) {
      TaskRecord& e = tasks_.at(q.enqueuers.front());
      q.enqueuers.pop_front();
      q.items.push_back(std::move(e.call->request));  // the item (apply() cut the id off)
      complete_call(e, {});
    }
    if (q.dequeuers.empty()) return;
    if (!q.items.empty()) {
      TaskRecord& d = tasks_.at(q.dequeuers.front());
      q.dequeuers.pop_front();
      complete_call(d, std::move(q.items.front()));
      q.items.pop_front();
      continue;
    }
    if (q.enqueuers.empty()) return;
    // Rendezvous: straight from a blocked enqueuer to a blocked dequeuer.
    TaskRecord& e = tasks_.at(q.enqueuers.front());
    TaskRecord& d = tasks_.at(q.dequeuers.front());
    q.enqueuers.pop_front();
    q.dequeuers.pop_front();
    complete_call(d, std::move(e.call->request));
    complete_call(e, {});
  }
}

// Applies t's new call (t.call, not yet done). Completes it now if it can.
void Coordinator::apply(TaskRecord& t) {
  Call& c = *t.call;
  try {
    switch (c.op) {
      case Op::kCheckpoint:
      case Op::kYield:
        complete_call(t, {});
        return;
      case Op::kSpawn: {
        std::vector<uint64_t> ids;
        for (SpawnSpec& s : decode<std::vector<SpawnSpec>>(c.request))
          ids.push_back(add_task(std::move(s)));
        complete_call(t, encode(ids));
        return;
      }
      case Op::kWait:
        try_wait(t, decode<std::vector<uint64_t>>(c.request));
        return;
      case Op::kMakeQueue: {
        uint64_t id = next_queue_++;
        queues_[id].max_size = decode<uint64_t>(c.request);
        complete_call(t, encode(id));
        return;
      }
      case Op::kEnqueue: {
        uint64_t queue = take_enqueue_queue(c.request);  // leaves the item in c.request
        auto it = queues_.find(queue);
        if (it == queues_.end())
          return complete_call(t, {}, "unknown queue " + std::to_string(queue));
        it->second.enqueuers.push_back(t.id);
        queue_progress(it->second);
        return;
      }
      case Op::kDequeue: {
        auto id = decode<uint64_t>(c.request);
        auto it = queues_.find(id);
        if (it == queues_.end()) return complete_call(t, {}, "unknown queue " + std::to_string(id));
        it->second.dequeuers.push_back(t.id);
        queue_progress(it->second);
        return;
      }
    }
    complete_call(t, {}, "unknown call " + std::to_string(uint32_t(c.op)));
  } catch (const std::exception& e) {
    complete_call(t, {}, std::string("malformed call: ") + e.what());
  }
}

// ---------------------------------------------------------------- scheduling

// A blocked call gives its worker up at once: the job is over, or ready work
// waits for the worker slot it holds.
bool Coordinator::must_park(const TaskRecord& t) const {
  return shutdown_ || (!t.spec.on_coordinator && ready_work_starved());
}

// Workers of a pool: alive, and among them available for ready work (idle in
// next(), or not started yet and about to ask).
Coordinator::PoolCount Coordinator::count_workers(bool on_coordinator) const {
  PoolCount n;
  for (auto& [id, w] : workers_) {
    if (w.on_coordinator != on_coordinator) continue;
    ++n.live;
    if (w.idle || !w.started) ++n.available;
  }
  return n;
}

bool Coordinator::ready_work_starved() const {
  if (ready_[0].empty()) return false;
  PoolCount n = count_workers(false);
  return n.available == 0 && n.live >= options_.max_workers;
}

// Launches workers for ready work that no idle or starting worker will take.
void Coordinator::schedule() {
  if (!backend_ || shutdown_) return;
  for (int pool = 0; pool < 2; ++pool) {
    auto [live, available] = count_workers(pool);
    size_t max = pool ? options_.max_coordinator_workers : options_.max_workers;
    while (ready_[pool].size() > available && live < max) {
      uint64_t id = next_worker_++;
      std::string error;
      if (!backend_->launch_worker(id, pool, &error)) {
        fail_job("cannot start a worker: " + error);
        return;
      }
      workers_[id].on_coordinator = pool;
      ++available;
      ++live;
      ++stats_.workers_launched;
    }
  }
}

// The worker's task is over as far as the coordinator is concerned. The
// backend's time limit keeps running until the worker asks for new work (a
// worker parked by an asynchronous call may still be computing).
void Coordinator::end_invocation(uint64_t worker_id, const char* outcome) {
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.task = 0;
  trace_end(worker_id, outcome);
}

void Coordinator::trace_end(uint64_t worker_id, const std::string& outcome) {
  if (!tracing_) return;
  auto it = open_spans_.find(worker_id);
  if (it == open_spans_.end()) return;
  it->second.end = std::chrono::steady_clock::now();
  it->second.outcome = outcome;
  spans_.push_back(std::move(it->second));
  open_spans_.erase(it);
}

void Coordinator::set_tracing(bool on) {
  std::lock_guard lock(mu_);
  tracing_ = on;
}

void Coordinator::write_trace(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto us = [&](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::micro>(t - trace_zero_).count();
  };
  nlohmann::json events = nlohmann::json::array();
  for (const Span& s : spans_) {
    events.push_back({{"name", s.name.empty() ? "task " + std::to_string(s.task) : s.name},
                      {"cat", s.kind},
                      {"ph", "X"},
                      {"ts", us(s.start)},
                      {"dur", us(s.end) - us(s.start)},
                      {"pid", s.on_coordinator ? 2 : 1},
                      {"tid", s.worker},
                      {"args", {{"task", s.task}, {"outcome", s.outcome}}}});
  }
  for (int pid : {1, 2})
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"args", {{"name", pid == 1 ? "workers" : "on_coordinator workers"}}}});
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
  if (!out) throw Error("cannot write the trace to " + path);
}

AssignmentInfo Coordinator::next(uint64_t worker_id) {
  OutboxFlush flush{this};  // lose_task may complete calls
  std::unique_lock lock(mu_);
  AssignmentInfo a;
  if (dead_.count(worker_id)) {  // already reported dead: never hand it work
    a.kind = AssignmentInfo::Kind::kShutdown;
    return a;
  }
  WorkerRecord& w = workers_[worker_id];
  const bool pool = w.on_coordinator;
  w.started = true;
  start_failures_ = 0;
  if (backend_) backend_->invocation_ended(worker_id);
  if (w.task) lose_task(worker_id, "the worker asked for new work while running a task");
  auto deadline = std::chrono::steady_clock::now() + options_.idle_poll;
  std::deque<uint64_t>& ready = ready_[pool];
  w.idle = true;
  flush_outbox(lock);  // answer the calls lose_task completed before waiting
  while (!shutdown_ && ready.empty()) {
    if (work_cv_[pool].wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  if (dead_.count(worker_id)) {                       // died (or its session closed) while waiting
    if (!ready.empty()) work_cv_[pool].notify_one();  // the wake-up was meant for work
    a.kind = AssignmentInfo::Kind::kShutdown;
    return a;
  }
  w.idle = false;
  if (shutdown_) {
    a.kind = AssignmentInfo::Kind::kShutdown;
    return a;
  }
  if (ready.empty()) return a;  // kIdle
  TaskRecord& t = tasks_.at(ready.front());
  ready.pop_front();
  t.state = State::kRunning;
  t.worker = worker_id;
  w.task = t.id;
  a.task_id = t.id;
  a.name = t.spec.name;
  if (t.call) {
    a.kind = AssignmentInfo::Kind::kResume;
    a.image_key = t.call->image_key;
    a.image = t.call->image;
    a.seqno = t.call->seqno;
    a.reply = t.call->reply;
    a.error = t.call->error;
  } else {
    a.kind = AssignmentInfo::Kind::kStart;
    a.fn = t.spec.fn;
    a.trampoline = t.spec.trampoline;
    a.args = t.args;
  }
  if (backend_) {
    a.time_left = backend_->time_limit(t.spec.on_coordinator);
    backend_->invocation_started(worker_id);
  }
  if (tracing_)
    open_spans_[worker_id] = Span{t.id,
                                  worker_id,
                                  t.spec.on_coordinator,
                                  t.spec.name,
                                  a.kind == AssignmentInfo::Kind::kStart ? "start" : "resume",
                                  {},
                                  std::chrono::steady_clock::now(),
                                  {}};
  return a;
}

// The same, from a method holding the lock (released meanwhile).
void Coordinator::flush_outbox(std::unique_lock<std::mutex>& lock) {
  if (outbox_.empty()) return;
  lock.unlock();
  flush_outbox();
  lock.lock();
}

void Coordinator::flush_outbox() {
  std::vector<std::pair<ReplyHook, CallOutcome>> out;
  {
    std::lock_guard lock(mu_);
    if (outbox_.empty()) return;
    out.swap(outbox_);
  }
  for (auto& [hook, outcome] : out) {
    try {
      hook(std::move(outcome));
    } catch (const std::exception& e) {  // a transport's hook ends the session instead
      std::fprintf(stderr, "kappa coordinator: an answer was lost: %s\n", e.what());
    }
  }
}

CallOutcome Coordinator::call(CallInfo info, ReplyHook hook) {
  OutboxFlush flush{this};  // answers for calls this one completed
  std::unique_lock lock(mu_);
  ++stats_.calls;
  auto it = tasks_.find(info.task_id);
  if (it == tasks_.end() || it->second.worker != info.worker_id ||
      (it->second.state != State::kRunning && it->second.state != State::kBlocked))
    return {CallOutcome::Kind::kAbandon, {}, {}};
  TaskRecord& t = it->second;
  if (t.call && info.seqno < t.call->seqno)  // stale: ignore it, change nothing
    return {CallOutcome::Kind::kAbandon, {}, {}};
  if (t.call && info.seqno == t.call->seqno) {
    ++stats_.duplicate_calls;  // a restarted task repeats its latest call
  } else {
    if (t.call && t.call->image_key != info.image_key) discard_image(std::move(t.call->image_key));
    t.call = Call{info.seqno,
                  std::move(info.image_key),
                  std::move(info.image),
                  info.op,
                  std::move(info.request),
                  false,
                  {},
                  {}};
    t.failures = 0;  // progress
    apply(t);
    schedule();  // a spawn may have made work ready
  }
  if (!t.call->done && !must_park(t)) {
    t.state = State::kBlocked;
    blocked_.insert(t.id);
    auto deadline = std::chrono::steady_clock::now() + options_.grace;
    if (hook) {  // answered later, from another thread
      t.hook = std::move(hook);
      t.park_at = deadline;
      parking_.emplace(deadline, t.id);
      if (parking_.begin()->second == t.id) housekeeper_cv_.notify_all();
      return {CallOutcome::Kind::kPending, {}, {}};
    }
    flush_outbox(lock);  // answer the calls this one completed before waiting
    while (!t.call->done && t.state == State::kBlocked && !must_park(t)) {
      if (t.cv.wait_until(lock, deadline) == std::cv_status::timeout) break;
    }
  }
  if (t.worker != info.worker_id) return {CallOutcome::Kind::kAbandon, {}, {}};
  if (t.call->done && t.call->op != Op::kYield) {
    t.state = State::kRunning;
    return {CallOutcome::Kind::kResult, t.call->reply, t.call->error};
  }
  park_call(t);
  return {CallOutcome::Kind::kPark, {}, {}};
}

// Parks a hooked blocked call, telling its worker through the hook.
void Coordinator::park_hooked(TaskRecord& t) {
  outbox_.emplace_back(std::exchange(t.hook, {}), CallOutcome{CallOutcome::Kind::kPark, {}, {}});
  park_call(t);
}

// The task's worker drops it (it is told PARK); it is relaunched from the
// call's image once the call completes (a yield: at once, elsewhere).
void Coordinator::park_call(TaskRecord& t) {
  blocked_.erase(t.id);
  uint64_t worker = std::exchange(t.worker, 0);
  ++stats_.parks;
  if (t.call->done) {
    ++stats_.relaunches;
    push_ready(t);
  } else {
    t.state = State::kParked;
  }
  end_invocation(worker, t.call->done ? "yield" : "park");
  schedule();
}

void Coordinator::finish(uint64_t worker_id, uint64_t task_id, bool failed, std::string result,
                         std::string error) {
  OutboxFlush flush{this};
  std::lock_guard lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.worker != worker_id || it->second.state != State::kRunning)
    return;  // stale
  TaskRecord& t = it->second;
  t.worker = 0;
  if (t.call) {  // its last call (image, request, reply) is of no use any more
    discard_image(std::move(t.call->image_key));
    t.call.reset();
  }
  end_invocation(worker_id, failed ? "failed" : "finished");
  if (failed) {
    fail_task(t, describe(t) + " failed: " + error);
  } else {
    t.state = State::kDone;
    t.result = std::move(result);
    ++stats_.finished;
    resolve(t);
  }
  schedule();
}

void Coordinator::lose_task(uint64_t worker_id, const std::string& why) {
  auto wit = workers_.find(worker_id);
  if (wit == workers_.end() || !wit->second.task) return;
  uint64_t task_id = std::exchange(wit->second.task, 0);
  ++stats_.worker_deaths;
  trace_end(worker_id, "worker lost: " + why);
  TaskRecord& t = tasks_.at(task_id);
  if (t.worker == worker_id) {
    t.worker = 0;
    if (++t.failures > options_.max_failures) {
      fail_task(t, describe(t) + " failed: its worker died " + std::to_string(t.failures) +
                       " times in a row without progress (last: " + why + ")");
    } else if (t.call && !t.call->done) {
      t.state = State::kParked;  // relaunched when its call completes
    } else {
      ++stats_.relaunches;
      push_ready(t);  // from its last checkpoint, or from the start
    }
    t.hook = {};  // nobody to answer
    blocked_.erase(t.id);
    t.cv.notify_one();  // its call() gives up
  }
  if (backend_) backend_->invocation_ended(worker_id);
}

void Coordinator::worker_exited(uint64_t worker_id, const std::string& why) {
  OutboxFlush flush{this};
  std::lock_guard lock(mu_);
  if (!dead_.insert(worker_id).second) return;  // reported already
  auto it = workers_.find(worker_id);
  bool started = it != workers_.end() && it->second.started;
  lose_task(worker_id, why);
  workers_.erase(worker_id);
  // Workers that die before they ask for work cannot run anything: after a
  // few in a row the job fails, instead of relaunching them forever.
  if (!started && ++start_failures_ >= options_.max_start_failures) {
    fail_job(std::to_string(start_failures_) +
             " workers in a row died before asking for work (last: " + why + ")");
    return;
  }
  schedule();
  for (auto& cv : work_cv_) cv.notify_all();  // a next() of this worker may be waiting
}

void Coordinator::fail_job(const std::string& why) {
  if (job_.done) return;
  job_.done = true;
  job_.failed = true;
  job_.error = why;
  job_cv_.notify_all();
}

JobOutcome Coordinator::wait_job(std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mu_);
  if (timeout)
    job_cv_.wait_for(lock, *timeout, [&] { return job_.done; });
  else
    job_cv_.wait(lock, [&] { return job_.done; });
  return job_;
}

void Coordinator::shutdown() {
  OutboxFlush flush{this};
  std::lock_guard lock(mu_);
  shutdown_ = true;
  for (auto& cv : work_cv_) cv.notify_all();
  for (uint64_t id : std::vector<uint64_t>(blocked_.begin(), blocked_.end())) {
    TaskRecord& t = tasks_.at(id);
    if (t.hook)  // the worker asks for work next, and is told to shut down
      park_hooked(t);
    else
      t.cv.notify_one();
  }
}

CoordinatorStats Coordinator::stats() const {
  std::lock_guard lock(mu_);
  CoordinatorStats s = stats_;
  for (auto& [id, t] : tasks_) {
    if (t.state == State::kRunning || t.state == State::kBlocked) ++s.running;
    if (t.state == State::kReady) ++s.ready;
    if (t.state == State::kParked) ++s.parked;
  }
  return s;
}

}  // namespace kappa::detail
