#include "coordinator/journal.h"

#include <algorithm>
#include <cstring>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

// Row bodies: kappa::encode (cereal) of these tuples (of references: the
// same bytes as tuples of values, without copying a task's arguments or
// image first). A row is decoded as the tuple of values.
auto task_row(const TaskDurable& t, const uint8_t& phase) {
  return std::tie(t.spec, t.args, phase);
}

auto progress_row(const TaskDurable& t) { return std::tie(t.call, t.failures, t.crashes); }

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

void RowJournal::Group::supersede(Table table, uint64_t id) {
  if (id >> 60) return;  // (no id comes near: kept apart from the key's table bits)
  auto [it, fresh] = latest_.try_emplace(id << 3 | uint64_t(table), ops.size());
  if (fresh) return;
  ops[it->second].superseded = true;
  ++superseded_;
  it->second = ops.size();
}

size_t RowJournal::Group::begin_put(Table table, uint64_t id) {
  supersede(table, id);
  const size_t head = bytes.size();
  char h[kPutHeader] = {};
  h[0] = char(uint8_t(table) << 1 | 1);
  std::memcpy(h + 1, &id, 8);
  bytes.append(h, sizeof h);
  ops.push_back({table, id, bytes.size(), 0, false});
  return head;
}

void RowJournal::Group::end_put(size_t head) {
  const size_t n = bytes.size() - head - kPutHeader;
  const uint32_t n32 = uint32_t(n);  // rows are far below 4 GiB (a log checks its records)
  std::memcpy(bytes.data() + head + 9, &n32, 4);
  ops.back().size = n;
}

void RowJournal::Group::put(Table table, uint64_t id, std::string_view body) {
  const size_t head = begin_put(table, id);
  bytes.append(body);
  end_put(head);
}

void RowJournal::Group::erase(Table table, uint64_t id) {
  supersede(table, id);
  char head[9];
  head[0] = char(uint8_t(table) << 1);
  std::memcpy(head + 1, &id, 8);
  bytes.append(head, sizeof head);
  ops.push_back({table, id, bytes.size() - sizeof head, 0, true});
}

void RowJournal::Group::clear() {
  bytes.clear();
  ops.clear();
  latest_.clear();
  superseded_ = 0;
}

void RowJournal::Group::compact() {
  if (superseded_ == 0) return;
  // In place: the kept ops move towards the start, in order.
  size_t to = 0, kept = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    Op op = ops[i];
    if (op.superseded) continue;
    // A written row's header is just before its body; an erased row's
    // offset is its header's.
    const size_t from = op.erased ? op.offset : op.offset - kPutHeader;
    const size_t end = op.erased ? op.offset + 9 : op.offset + op.size;
    if (from != to) std::memmove(bytes.data() + to, bytes.data() + from, end - from);
    op.offset = to + (op.offset - from);
    ops[kept++] = op;
    to += end - from;
  }
  bytes.resize(to);
  ops.resize(kept);
  latest_.clear();  // (the group is written next, not added to)
  superseded_ = 0;
}

std::vector<RowJournal::Group::Op> RowJournal::Group::parse(std::string_view bytes) {
  std::vector<Op> ops;
  for (size_t at = 0; at < bytes.size();) {
    if (bytes.size() - at < 9 || (uint8_t(bytes[at]) >> 1) >= kTableCount)
      throw Error("a group of rows does not parse");
    Op op{Table(uint8_t(bytes[at]) >> 1), 0, at, 0, !(bytes[at] & 1)};
    std::memcpy(&op.id, bytes.data() + at + 1, 8);
    at += 9;
    if (!op.erased) {
      uint32_t n;
      if (bytes.size() - at < 4) throw Error("a group of rows does not parse");
      std::memcpy(&n, bytes.data() + at, 4);
      at += 4;
      if (bytes.size() - at < n) throw Error("a group of rows does not parse");
      op.offset = at;
      op.size = n;
      at += n;
    }
    ops.push_back(op);
  }
  return ops;
}

void RowJournal::begin(const JobIdentity& job) {
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    staged_.put(Table::kMeta, kFormatRow, encode(kFormat));
    staged_.put(Table::kMeta, kIdentityRow, encode(job));
    ticket = ++staged_ticket_;
  }
  sync(ticket);
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

uint64_t RowJournal::stage(const JobState& state, const Changes& changes) {
  std::lock_guard lock(mu_);
  if (!failed_.empty()) throw Error(failed_);
  if (changes.empty()) return staged_ticket_;  // its effects wait for the events before it
  Group& g = staged_;
  for (uint64_t id : unique(scratch_, changes.resolved)) {
    g.erase(Table::kTasks, id);
    g.erase(Table::kProgress, id);
    g.put_value(Table::kFutures, id, *state.future(id));
  }
  for (uint64_t id : unique(scratch_, changes.tasks))
    if (const TaskDurable* t = state.task(id)) {
      const uint8_t phase = uint8_t(t->phase);
      g.put_value(Table::kTasks, id, task_row(*t, phase));
    }
  for (uint64_t id : unique(scratch_, changes.progress))
    if (const TaskDurable* t = state.task(id)) g.put_value(Table::kProgress, id, progress_row(*t));
  for (uint64_t id : unique(scratch_, changes.queues)) {
    if (const QueueDurable* q = state.queue(id))
      g.put_value(Table::kQueues, id, *q);
    else
      g.erase(Table::kQueues, id);
  }
  if (changes.counters)
    g.put(Table::kMeta, kCountersRow,
          encode(std::make_tuple(state.next_queue_id(), state.next_worker_id())));
  if (changes.job) g.put(Table::kMeta, kOutcomeRow, outcome_row(state.outcome()));
  return ++staged_ticket_;
}

void RowJournal::sync(uint64_t ticket) {
  std::unique_lock lock(mu_);
  while (durable_ticket_ < ticket) {
    if (!failed_.empty()) throw Error(failed_);
    if (writer_) {  // the group being written may hold this ticket; if not, the next will
      written_.wait(lock);
      continue;
    }
    // This thread writes every event staged so far, while later ones are
    // staged into the next group.
    writer_ = true;
    std::swap(staged_, writing_);
    uint64_t upto = staged_ticket_;
    lock.unlock();
    std::string error;
    try {
      writing_.compact();
      if (!writing_.empty()) write(writing_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    writing_.clear();
    lock.lock();
    writer_ = false;
    if (error.empty())
      durable_ticket_ = upto;
    else
      failed_ = error;
    written_.notify_all();
  }
}

}  // namespace kappa::detail
