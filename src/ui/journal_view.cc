#include "ui/journal_view.h"

#include <algorithm>

namespace kappa::detail {
namespace {

// Where a journaled live task waits, from its latest call (the queue's id
// is in the request of a dequeue; an enqueue's queue is in its queue's line).
std::string call_wait(const TaskDurable::Call& c) {
  switch (c.op) {
    case Op::kWait:
      return "awaits futures";
    case Op::kEnqueue:
      return "enqueues to a full queue";
    case Op::kDequeue:
      try {
        return "dequeues from empty queue " + std::to_string(decode<uint64_t>(c.request));
      } catch (const std::exception&) {
        return "dequeues from an empty queue";
      }
    case Op::kPut:
      return "its put is being committed";
    default:
      return "waits for its call to complete";
  }
}

}  // namespace

JournalView::JournalView(const DurableJob& job) {
  JobStats& s = job_.stats;
  for (const auto& [id, f] : job.futures) {
    TaskView t;
    t.id = id;
    t.phase = f.state == FutureSlot::State::kFailed ? TaskPhase::kFailed : TaskPhase::kFinished;
    if (t.phase == TaskPhase::kFailed) {
      t.why = f.bytes.substr(0, 2000);
      ++s.failed;
    } else {
      ++s.finished;
    }
    if (id == 1) t.name = "handler";
    tasks_.push_back(std::move(t));
  }
  std::vector<uint64_t> resolved;
  for (const auto& [id, f] : job.futures) resolved.push_back(id);
  std::sort(resolved.begin(), resolved.end());
  for (const TaskDurable& d : job.tasks) {
    // Read while the job moved on (a reader of a running job): resolved since.
    if (std::binary_search(resolved.begin(), resolved.end(), d.id)) continue;
    TaskView t;
    t.id = d.id;
    t.name = d.spec.name;
    t.fn = d.spec.fn;
    t.on_coordinator = d.spec.on_coordinator;
    t.failures = d.failures;
    if (d.phase == TaskDurable::Phase::kWaitingDeps) {
      t.phase = TaskPhase::kWaiting;
      t.why = "waits for the futures it was spawned with";
      ++s.waiting;
    } else if (d.call && !d.call->done) {
      t.phase = TaskPhase::kParked;
      t.why = call_wait(*d.call);
      ++s.parked;
    } else {
      // Running, or ready to: a journal does not say which.
      t.phase = TaskPhase::kReady;
      ++s.ready;
    }
    tasks_.push_back(std::move(t));
  }
  std::sort(tasks_.begin(), tasks_.end(),
            [](const TaskView& a, const TaskView& b) { return a.id < b.id; });
  s.tasks = tasks_.empty() ? 0 : tasks_.back().id;
  for (const auto& [id, q] : job.queues) {
    QueueView v;
    v.id = id;
    v.max_size = q.max_size;
    v.depth = q.items.size();
    v.enqueuers.assign(q.enqueuers.begin(), q.enqueuers.end());
    v.dequeuers.assign(q.dequeuers.begin(), q.dequeuers.end());
    v.enqueuers_total = q.enqueuers.size();
    v.dequeuers_total = q.dequeuers.size();
    queues_.push_back(std::move(v));
  }
  std::sort(queues_.begin(), queues_.end(),
            [](const QueueView& a, const QueueView& b) { return a.id < b.id; });
  job_.state = !job.outcome.done    ? JobView::State::kRunning
               : job.outcome.failed ? JobView::State::kFailed
                                    : JobView::State::kDone;
  job_.error = job.outcome.error;
  job_.observed = true;
  job_.activity = false;
}

JobView JournalView::job_view(size_t) const { return job_; }

TaskPage JournalView::task_page(const TaskQuery& q) const {
  TaskPage page;
  for (const TaskView& t : tasks_) {
    if (q.phase && t.phase != *q.phase) continue;
    if (q.retrying &&
        (t.failures == 0 || t.phase == TaskPhase::kFinished || t.phase == TaskPhase::kFailed))
      continue;
    if (page.total >= q.offset && page.tasks.size() < q.limit) page.tasks.push_back(t);
    ++page.total;
  }
  return page;
}

std::optional<TaskView> JournalView::task_view(uint64_t id) const {
  auto it = std::lower_bound(tasks_.begin(), tasks_.end(), id,
                             [](const TaskView& t, uint64_t i) { return t.id < i; });
  if (it == tasks_.end() || it->id != id) return std::nullopt;
  return *it;
}

std::vector<QueueView> JournalView::queue_views() const { return queues_; }

std::string JournalView::summary() const {
  const JobStats& s = job_.stats;
  std::string out;
  switch (job_.state) {
    case JobView::State::kDone:
      out = "The job finished";
      break;
    case JobView::State::kFailed:
      out = "The job failed";
      break;
    case JobView::State::kRunning:
      out = "The job has not finished";
      break;
  }
  out += ": " + std::to_string(s.tasks) + (s.tasks == 1 ? " task" : " tasks") + ", " +
         std::to_string(s.finished) + " finished, " + std::to_string(s.failed) + " failed, " +
         std::to_string(s.ready) + " running or ready, " + std::to_string(s.parked) + " parked, " +
         std::to_string(s.waiting) + " waiting for their arguments";
  if (!queues_.empty()) {
    uint64_t items = 0;
    for (const QueueView& q : queues_) items += q.depth;
    out += "; " + std::to_string(queues_.size()) + (queues_.size() == 1 ? " queue" : " queues") +
           " holding " + std::to_string(items) + (items == 1 ? " item" : " items");
  }
  out += ".";
  if (job_.state == JobView::State::kFailed) out += " Why: " + job_.error;
  return out;
}

}  // namespace kappa::detail
