// Journal: the durability seam of the coordinator. After every event, and
// before any of its answers leaves, the coordinator hands the journal what
// changed in the job's durable state (JobState's Changes: the tasks, queues,
// counters and outcome touched); a journal writes exactly that, so that a
// coordinator killed at any moment can be started again and continue the
// job (DESIGN.md section 9). Without a journal the job lives in memory, as
// the reference implementation's does.
//
// RowJournal does the common part: it turns Changes into writes of rows
// (one per task, per task's progress, per resolved future, per queue, and a
// few job-wide ones) in one batch per event, and rows back into a DurableJob.
// An implementation (journals/: SQLite, Redis) stores rows atomically by
// batch.
//
// Thread safety: the coordinator calls a journal with its lock held, one
// call at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/job_state.h"

namespace kappa::detail {

/// Which job a journal holds: a restarted `run` must be the same job, of the
/// same binary, with the same input.
struct JobIdentity {
  std::string job;       // the job's id (its scope in the store)
  std::string build_id;  // the application binary's
  std::string event;     // the handler's input, as JSON text
  std::string store;     // the checkpoint store's URL
  std::string data;      // the data store's URL (put, get)
  template <class A>
  void serialize(A& a) {
    a(job, build_id, event, store, data);
  }
};

class Journal {
 public:
  virtual ~Journal() = default;
  /// The job this journal holds, if any. Throws kappa::Error for a journal
  /// that is corrupt or of a newer format.
  virtual std::optional<JobIdentity> identity() = 0;
  /// Starts `job` in an empty journal.
  virtual void begin(const JobIdentity& job) = 0;
  /// Everything durable about the job it holds.
  virtual DurableJob load() = 0;
  /// Makes `changes` durable, reading their values from `state`, before the
  /// event's answers leave: nothing a worker is told may be lost by a
  /// restart. Throws kappa::Error if it cannot.
  virtual void record(const JobState& state, const Changes& changes) = 0;
  /// A description for messages ("sqlite:///var/kappa/job.db").
  virtual std::string url() const = 0;
};

class RowJournal : public Journal {
 public:
  std::optional<JobIdentity> identity() final;
  void begin(const JobIdentity& job) final;
  DurableJob load() final;
  void record(const JobState& state, const Changes& changes) final;

  /// The rows' format; a journal written by a newer one is refused.
  static constexpr uint64_t kFormat = 1;

 protected:
  enum class Table { kTasks, kProgress, kFutures, kQueues, kMeta };
  static constexpr Table kTables[] = {Table::kTasks, Table::kProgress, Table::kFutures,
                                      Table::kQueues, Table::kMeta};
  /// Rows of kMeta.
  enum MetaRow : uint64_t { kFormatRow = 0, kIdentityRow = 1, kCountersRow = 2, kOutcomeRow = 3 };

  // A batch: every write between begin_batch() and commit_batch() becomes
  // durable together, or not at all.
  virtual void begin_batch() = 0;
  virtual void put(Table table, uint64_t id, std::string_view bytes) = 0;
  virtual void erase(Table table, uint64_t id) = 0;
  virtual void commit_batch() = 0;
  /// Every row of `table` (outside any batch).
  virtual std::vector<std::pair<uint64_t, std::string>> rows(Table table) = 0;
  /// One row, if present (outside any batch).
  virtual std::optional<std::string> row(Table table, uint64_t id) = 0;

 private:
  std::vector<uint64_t> scratch_;  // ids, deduplicated
};

}  // namespace kappa::detail
