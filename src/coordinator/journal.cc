#include "coordinator/journal.h"

#include <algorithm>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

// Row bodies: kappa::encode (cereal) of these tuples.
std::string task_row(const TaskDurable& t) {
  return encode(std::make_tuple(t.spec, t.args, uint8_t(t.phase)));
}

std::string progress_row(const TaskDurable& t) {
  return encode(std::make_tuple(t.call, t.failures, t.crashes));
}

std::string outcome_row(const JobOutcome& o) {
  return encode(std::make_tuple(o.done, o.failed, o.result, o.error));
}

std::vector<uint64_t>& unique(std::vector<uint64_t>& ids, const std::vector<uint64_t>& from) {
  ids.assign(from.begin(), from.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace

std::optional<JobIdentity> RowJournal::identity() {
  std::optional<std::string> format = row(Table::kMeta, kFormatRow);
  if (!format) return std::nullopt;
  uint64_t version = 0;
  try {
    version = decode<uint64_t>(*format);
  } catch (const std::exception&) {
    throw Error(url() + " is not a Kappa journal, or is corrupt (unreadable format row)");
  }
  if (version > kFormat)
    throw Error(url() + " was written by a newer Kappa (journal format " + std::to_string(version) +
                ", this build reads up to " + std::to_string(kFormat) + ")");
  std::optional<std::string> id = row(Table::kMeta, kIdentityRow);
  if (!id) throw Error(url() + " is corrupt: it has a format but no job");
  try {
    return decode<JobIdentity>(*id);
  } catch (const std::exception& e) {
    throw Error(url() + " is corrupt: its job identity cannot be read (" + e.what() + ")");
  }
}

void RowJournal::begin(const JobIdentity& job) {
  begin_batch();
  put(Table::kMeta, kFormatRow, encode(kFormat));
  put(Table::kMeta, kIdentityRow, encode(job));
  commit_batch();
}

DurableJob RowJournal::load() {
  DurableJob job;
  try {
    std::vector<std::pair<uint64_t, std::string>> progress = rows(Table::kProgress);
    std::sort(progress.begin(), progress.end());
    for (auto& [id, body] : rows(Table::kTasks)) {
      TaskDurable t;
      t.id = id;
      uint8_t phase = 0;
      std::tie(t.spec, t.args, phase) =
          decode<std::tuple<SpawnSpec, std::vector<std::string>, uint8_t>>(body);
      t.phase = TaskDurable::Phase(phase);
      auto p =
          std::lower_bound(progress.begin(), progress.end(), std::make_pair(id, std::string()));
      if (p != progress.end() && p->first == id)
        std::tie(t.call, t.failures, t.crashes) =
            decode<std::tuple<std::optional<TaskDurable::Call>, unsigned, unsigned>>(p->second);
      job.tasks.push_back(std::move(t));
    }
    std::sort(job.tasks.begin(), job.tasks.end(),
              [](const TaskDurable& a, const TaskDurable& b) { return a.id < b.id; });
    for (auto& [id, body] : rows(Table::kFutures))
      job.futures.emplace_back(id, decode<FutureSlot>(body));
    for (auto& [id, body] : rows(Table::kQueues))
      job.queues.emplace_back(id, decode<QueueDurable>(body));
    if (std::optional<std::string> c = row(Table::kMeta, kCountersRow))
      std::tie(job.next_queue, job.next_worker) = decode<std::tuple<uint64_t, uint64_t>>(*c);
    if (std::optional<std::string> o = row(Table::kMeta, kOutcomeRow)) {
      JobOutcome& out = job.outcome;
      std::tie(out.done, out.failed, out.result, out.error) =
          decode<std::tuple<bool, bool, std::string, std::string>>(*o);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(url() + " is corrupt: " + e.what());
  }
  return job;
}

void RowJournal::record(const JobState& state, const Changes& changes) {
  begin_batch();
  for (uint64_t id : unique(scratch_, changes.resolved)) {
    erase(Table::kTasks, id);
    erase(Table::kProgress, id);
    put(Table::kFutures, id, encode(*state.future(id)));
  }
  for (uint64_t id : unique(scratch_, changes.tasks))
    if (const TaskDurable* t = state.task(id)) put(Table::kTasks, id, task_row(*t));
  for (uint64_t id : unique(scratch_, changes.progress))
    if (const TaskDurable* t = state.task(id)) put(Table::kProgress, id, progress_row(*t));
  for (uint64_t id : unique(scratch_, changes.queues)) {
    if (const QueueDurable* q = state.queue(id))
      put(Table::kQueues, id, encode(*q));
    else
      erase(Table::kQueues, id);
  }
  if (changes.counters)
    put(Table::kMeta, kCountersRow,
        encode(std::make_tuple(state.next_queue_id(), state.next_worker_id())));
  if (changes.job) put(Table::kMeta, kOutcomeRow, outcome_row(state.outcome()));
  commit_batch();
}

}  // namespace kappa::detail
