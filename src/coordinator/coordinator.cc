#include "coordinator/coordinator.h"

#include <algorithm>

#include "util/log.h"

namespace kappa::detail {

Coordinator::Coordinator(JobStateOptions options, CheckpointStore* store, Clock& clock,
                         Journal* journal)
    : state_(options),
      clock_(clock),
      store_(store),
      journal_(journal),
      trace_(clock.now()),
      timer_([this] { timer_loop(); }) {
  if (journal_) flusher_ = std::thread([this] { flush_loop(); });
}

Coordinator::~Coordinator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  flush_cv_.notify_all();
  timer_.join();
  if (flusher_.joinable()) flusher_.join();
  launcher_.discard_pending();
}

void Coordinator::set_backend(Backend* backend) {
  std::lock_guard lock(mu_);
  backend_ = backend;
  if (backend) state_.set_time_limit(backend->time_limit(false));
}

void Coordinator::set_data_store(CheckpointStore* data) {
  std::lock_guard lock(mu_);
  data_ = data;
}

template <class Event>
void Coordinator::handle(Event&& event) {
  std::unique_lock lock(mu_);
  fx_.clear();
  event(state_, clock_.now(), fx_);
  settle(lock);
}

void Coordinator::settle(std::unique_lock<std::mutex>& lock) {
  thread_local std::vector<Outgoing> spare;  // keeps its capacity between events
  std::vector<Outgoing> out;
  out.swap(spare);
  carry_out_now(fx_);
  uint64_t ticket = 0;
  try {
    if (journal_ && journal_error_.empty()) ticket = journal_->stage(state_, fx_.changes);
  } catch (const std::exception& e) {
    journal_failed(e.what());
  }
  if (ticket > durable_) {
    if (!fx_.changes.tasks.empty()) tasks_ticket_ = ticket;
    if (must_wait(fx_)) {
      // What is not durable must not be told: the effects wait, in event
      // order, for the journal, which this thread writes now (with the lock
      // released, so that other events are staged meanwhile and share the
      // write).
      held_.push_back({ticket, std::move(fx_)});
      fx_.clear();
      sync(ticket, lock);
      release_held(out);
    } else {
      // Nothing the event tells reveals what a restart could take back:
      // its answers go now, and the flusher writes it soon, with what
      // follows (woken only if idle: a wake-up per event costs more than
      // the write). The images it no longer needs wait for that.
      if (!fx_.discarded.empty()) {
        Effects later;
        later.discarded.swap(fx_.discarded);
        held_.push_back({ticket, std::move(later)});
      }
      release(fx_, out);
      flush_ticket_ = std::max(flush_ticket_, ticket);
      if (!flushing_) flush_cv_.notify_one();
    }
  } else {
    release_held(out);  // events before this one first
    release(fx_, out);
  }
  lock.unlock();
  send(out);
  out.clear();
  spare.swap(out);
}

bool Coordinator::must_wait(const Effects& fx) const {
  // New worker ids (a restart must not reuse them), puts made visible, the
  // job's end; and answers that reveal what a restart could take back
  // (Effects::Answer::Gate).
  if (!fx.launches.empty() || !fx.commits.empty() || fx.job_done) return true;
  return std::any_of(fx.answers.begin(), fx.answers.end(), [&](const Effects::Answer& a) {
    switch (a.gate) {
      case Effects::Answer::Gate::kNow:
        return false;
      case Effects::Answer::Gate::kTasksDurable:
        return tasks_ticket_ > durable_;
      case Effects::Answer::Gate::kDurable:
        return true;
    }
    return true;
  });
}

void Coordinator::flush_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (flush_ticket_ <= durable_ || !journal_error_.empty()) {
      flushing_ = false;
      flush_cv_.wait(lock);
      continue;
    }
    // Events that nobody waits for are written a little later, together
    // with what follows them, off the path of any answer: a restart after
    // a kill loses at most this much work, which it does again.
    flushing_ = true;
    flush_cv_.wait_for(lock, kFlushDelay, [&] { return stopping_; });
    // (Stopping: what is left is only acknowledgements, which a restart may
    // lose. A job that ended made its end durable, and everything before.)
    if (stopping_) break;
    if (flush_ticket_ <= durable_) continue;  // an event someone waited for wrote it
    sync(flush_ticket_, lock);
    std::vector<Outgoing> out;
    release_held(out);  // images no longer needed
    lock.unlock();
    send(out);
    lock.lock();
  }
}

void Coordinator::sync(uint64_t ticket, std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  std::string error;
  try {
    journal_->sync(ticket);
  } catch (const std::exception& e) {
    error = e.what();
  }
  lock.lock();
  if (error.empty())
    durable_ = std::max(durable_, ticket);
  else
    journal_failed(error);
}

void Coordinator::journal_failed(const std::string& why) {
  if (!journal_error_.empty()) return;
  // The job stops here, and a restart continues from the last event the
  // journal kept.
  journal_error_ = "the journal failed: " + why;
  spdlog::error("{}", journal_error_);
  job_cv_.notify_all();
}

void Coordinator::release_held(std::vector<Outgoing>& out) {
  while (!held_.empty() && (held_.front().ticket <= durable_ || !journal_error_.empty())) {
    release(held_.front().fx, out);
    held_.pop_front();
  }
}

void Coordinator::carry_out_now(Effects& fx) {
  if (backend_) {
    for (uint64_t w : fx.ended) backend_->invocation_ended(w);
    for (uint64_t w : fx.started) backend_->invocation_started(w);
    for (uint64_t w : fx.hung) backend_->kill_worker(w, WorkerExit::Cause::kHung);
  }
  for (uint64_t w : fx.hung) spdlog::warn("worker {} stopped sending heartbeats: killed", w);
  for (TraceSpan& s : fx.spans) trace_.add(std::move(s));
  for (const TraceMark& m : fx.marks) trace_.add(m);
  std::optional<TimePoint> next = state_.next_timer();
  if (next && (!armed_ || *next < *armed_)) timer_cv_.notify_all();
}

void Coordinator::release(Effects& fx, std::vector<Outgoing>& out) {
  if (!journal_error_.empty()) return;  // nothing more is told
  if (backend_ && !stopping_)
    for (const Effects::Launch& l : fx.launches) launcher_.post([this, l] { launch(l); });
  if (store_)
    for (std::string& key : fx.discarded)
      if (!key.empty())
        remover_.post([store = store_, key = std::move(key)] {
          try {
            store->remove(key);
          } catch (const std::exception& e) {
            spdlog::warn("{}", e.what());
          }
        });
  for (Effects::Commit& c : fx.commits) committer_.post([this, c = std::move(c)] { commit(c); });
  if (fx.job_done && !done_told_) {
    done_told_ = true;
    ended_at_ = clock_.now();
    job_cv_.notify_all();
  }
  for (Effects::Answer& a : fx.answers) {
    auto it = links_.find(a.worker);
    if (it != links_.end()) out.push_back({it->second, std::move(a)});
  }
}

void Coordinator::send(std::vector<Outgoing>& out) {
  for (Outgoing& o : out) {
    try {
      std::visit(
          [&](auto&& body) {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, Effects::Finished>)
              o.link->send_finished();
            else
              o.link->send(std::move(body));
          },
          o.answer.body);
    } catch (const std::exception& e) {  // the transport ends that session
      spdlog::warn("an answer to worker {} was lost: {}", o.answer.worker, e.what());
    }
  }
}

void Coordinator::launch(Effects::Launch l) {
  try {
    Backend* backend;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || state_.outcome().done) return;
      backend = backend_;
    }
    backend->launch_worker(l.worker, l.on_coordinator);
  } catch (const std::exception& e) {
    std::string why = e.what();
    spdlog::warn("cannot start worker {}: {}", l.worker, why);
    handle(
        [&](JobState& s, TimePoint now, Effects& fx) { s.launch_failed(l.worker, why, now, fx); });
  }
}

void Coordinator::commit(const Effects::Commit& c) {
  std::string error;
  try {
    CheckpointStore* data;
    {
      std::lock_guard lock(mu_);
      data = data_;
    }
    if (!data) throw Error("this job has no data store");
    data->move(c.staged, c.key);
  } catch (const std::exception& e) {
    error = e.what();
  }
  handle([&](JobState& s, TimePoint now, Effects& fx) {
    s.commit_done(c.task, c.seqno, error, now, fx);
  });
}

void Coordinator::timer_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    armed_ = state_.next_timer();
    TimePoint now = clock_.now();
    if (armed_ && *armed_ <= now) {
      fx_.clear();
      state_.fire_timers(now, fx_);
      settle(lock);
      lock.lock();
      continue;
    }
    if (armed_)
      clock_.wait_until(timer_cv_, lock, *armed_);
    else
      timer_cv_.wait(lock);
  }
}

uint64_t Coordinator::spawn_root(SpawnSpec spec) {
  uint64_t id = 0;
  handle([&](JobState& s, TimePoint now, Effects& fx) {
    id = s.spawn_root(std::move(spec), now, fx);
  });
  return id;
}

void Coordinator::restore(DurableJob job) {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.restore(std::move(job), now, fx); });
}

void Coordinator::connect(uint64_t worker, std::shared_ptr<WorkerLink> link) {
  std::lock_guard lock(mu_);
  links_[worker] = std::move(link);
}

void Coordinator::disconnect(uint64_t worker, bool lost) {
  Backend* backend;
  {
    std::lock_guard lock(mu_);
    links_.erase(worker);
    backend = backend_;
  }
  // A backend that sees its workers only through their sessions (aws) says
  // what the close means: the end of an invocation, a crash, a timeout.
  std::optional<WorkerExit> exit;
  if (backend) exit = backend->session_closed(worker);
  if (!exit && lost) exit = WorkerExit{WorkerExit::Cause::kLost};
  if (exit) worker_exited(worker, *exit);
}

void Coordinator::next(uint64_t worker) {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.next(worker, now, fx); });
}

void Coordinator::call(CallInfo info) {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.call(std::move(info), now, fx); });
}

void Coordinator::finish(FinishInfo info) {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.finish(std::move(info), now, fx); });
}

void Coordinator::heartbeat(uint64_t worker) {
  handle([&](JobState& s, TimePoint now, Effects&) { s.heartbeat(worker, now); });
}

void Coordinator::crash_report(CrashReport report) {
  spdlog::warn("worker {} crashed with signal {} while running task {}", report.worker_id,
               report.signal, report.task_id);
  handle([&](JobState& s, TimePoint, Effects&) { s.crash_report(std::move(report)); });
}

void Coordinator::worker_exited(uint64_t worker, WorkerExit exit) {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.worker_exited(worker, exit, now, fx); });
}

JobOutcome Coordinator::wait_job(std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mu_);
  auto done = [&] { return done_told_ || !journal_error_.empty(); };
  if (timeout)
    job_cv_.wait_for(lock, *timeout, done);
  else
    job_cv_.wait(lock, done);
  if (journal_error_.empty()) return done_told_ ? state_.outcome() : JobOutcome{};
  JobOutcome broken;
  broken.done = broken.failed = true;
  broken.error = journal_error_ + " (the job can be continued from the journal once it works)";
  return broken;
}

void Coordinator::shutdown() {
  handle([&](JobState& s, TimePoint now, Effects& fx) { s.shutdown(now, fx); });
  launcher_.discard_pending();
}

void Coordinator::drain_store() { remover_.drain(); }

JobStats Coordinator::stats() const {
  std::lock_guard lock(mu_);
  return state_.stats();
}

JobView Coordinator::job_view(size_t recent) const {
  std::lock_guard lock(mu_);
  JobView v = state_.view(done_told_ ? ended_at_ : clock_.now(), recent);
  if (!journal_error_.empty()) {
    v.state = JobView::State::kFailed;
    v.error = journal_error_;
  } else if (!done_told_) {
    v.state = JobView::State::kRunning;  // not durable yet: not told
  }
  return v;
}

TaskPage Coordinator::task_page(const TaskQuery& query) const {
  std::lock_guard lock(mu_);
  return state_.task_page(query);
}

std::optional<TaskView> Coordinator::task_view(uint64_t id) const {
  std::lock_guard lock(mu_);
  return state_.task_view(id);
}

std::vector<QueueView> Coordinator::queue_views() const {
  std::lock_guard lock(mu_);
  return state_.queue_views();
}

void Coordinator::write_trace(const std::string& path) const {
  std::lock_guard lock(mu_);
  trace_.write(path);
}

}  // namespace kappa::detail
