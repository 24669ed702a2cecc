// Journal: the durability seam of the coordinator. After every event, and
// before any of its effects leaves the coordinator (answers to workers,
// launches, commits of puts, removals of images), the coordinator hands the
// journal what changed in the job's durable state (JobState's Changes: the
// tasks, queues, counters and outcome touched); a journal writes exactly
// that, so that a coordinator killed at any moment can be started again and
// continue the job (DESIGN.md section 9). Without a journal the job lives in
// memory, as the reference implementation's does.
//
// Group commit: recording is two steps. stage() takes an event's changes
// under the coordinator's lock (quick: it encodes rows); sync() then waits,
// without that lock, until they are durable. The first thread to sync
// writes every event staged so far in one write (one SQLite log record, one
// Redis script), while others stage the next group: with many workers,
// events share the journal's round trips instead of queueing behind them.
// Groups are written in order, so what is durable is always a prefix of the
// job's events.
//
// RowJournal does the common part: it turns Changes into writes of rows
// (one per task, per task's progress, per resolved future, per queue, and a
// few job-wide ones), groups them, and turns rows back into a DurableJob.
// An implementation (journals/: SQLite, Redis) stores a group atomically.
//
// Thread safety: stage() is called under the coordinator's lock, one call
// at a time; sync() from any thread; identity(), begin() and load() before
// the job starts.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coordinator/job_state.h"
#include "kappa/serialize.h"

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
  /// Takes `changes` (their values read from `state` now) into the group
  /// being staged. Returns the event's ticket: every event staged so far,
  /// this one included, is durable once sync(ticket) returns. Throws
  /// kappa::Error once the journal has failed.
  virtual uint64_t stage(const JobState& state, const Changes& changes) = 0;
  /// Returns once the events up to `ticket` are durable: nothing a worker
  /// is told before may be lost by a restart. Throws kappa::Error if they
  /// cannot be made durable (the journal has then failed for good).
  virtual void sync(uint64_t ticket) = 0;
  /// stage() then sync().
  void record(const JobState& state, const Changes& changes) { sync(stage(state, changes)); }
  /// A description for messages ("sqlite:///var/kappa/job.db").
  virtual std::string url() const = 0;
};

class RowJournal : public Journal {
 public:
  std::optional<JobIdentity> identity() final;
  void begin(const JobIdentity& job) final;
  DurableJob load() final;
  uint64_t stage(const JobState& state, const Changes& changes) final;
  void sync(uint64_t ticket) final;

  /// The rows' format; a journal written by a newer one is refused.
  static constexpr uint64_t kFormat = 1;

 protected:
  enum class Table : uint8_t { kTasks, kProgress, kFutures, kQueues, kMeta };
  static constexpr int kTableCount = 5;
  /// Rows of kMeta.
  enum MetaRow : uint64_t { kFormatRow = 0, kIdentityRow = 1, kCountersRow = 2, kOutcomeRow = 3 };

  /// Row writes of one or more events, to be made durable together or not
  /// at all. `bytes` holds them in order, each as a 1-byte header (the table
  /// << 1 | 1 if the row is written, 0 if erased), the row's 8-byte id and,
  /// if written, a 4-byte length and the row's bytes (native byte order);
  /// `ops` indexes them. A journal may store `bytes` as they are and read
  /// them back with Group::parse.
  ///
  /// A row written again in the same group supersedes its earlier write
  /// (a task's progress changes at each of its calls, an image with it):
  /// compact() drops the superseded ones before the group is written.
  struct Group {
    struct Op {
      Table table;
      uint64_t id;
      // Of the row's bytes in the group's bytes (erased: of its header).
      size_t offset = 0, size = 0;
      bool erased = false;
      bool superseded = false;  // by a later op on the same row
      std::string_view body(std::string_view bytes) const { return bytes.substr(offset, size); }
    };
    std::string bytes;
    std::vector<Op> ops;
    void put(Table table, uint64_t id, std::string_view body);
    /// put() of kappa::encode(value), serialized in place (a task's
    /// progress row holds its inline image: no copy of it on the way).
    template <class T>
    void put_value(Table table, uint64_t id, const T& value) {
      const size_t head = begin_put(table, id);
      detail::encode_append(bytes, value);
      end_put(head);
    }
    void erase(Table table, uint64_t id);
    void clear();
    bool empty() const { return ops.empty(); }
    /// Drops the superseded ops from `bytes` and `ops`.
    void compact();

    /// The ops of a group's `bytes` read back from storage; throws
    /// kappa::Error if they do not parse.
    static std::vector<Op> parse(std::string_view bytes);

   private:
    void supersede(Table table, uint64_t id);
    static constexpr size_t kPutHeader = 13;  // table | written, id, length
    /// Appends a written row's header (its length left to end_put) and its op;
    /// returns where the header is.
    size_t begin_put(Table table, uint64_t id);
    void end_put(size_t head);
    std::unordered_map<uint64_t, size_t> latest_;  // (id, table) -> its op's index
    size_t superseded_ = 0;                        // ops superseded
  };

  /// Makes `group` durable, atomically. Called by one thread at a time.
  /// Throws kappa::Error if it cannot.
  virtual void write(const Group& group) = 0;
  /// Every row of `table` (before the job starts).
  virtual std::vector<std::pair<uint64_t, std::string>> rows(Table table) = 0;
  /// One row, if present (before the job starts).
  virtual std::optional<std::string> row(Table table, uint64_t id) = 0;

 private:
  std::vector<uint64_t> scratch_;  // ids, deduplicated (stage: under the coordinator's lock)
  std::mutex mu_;
  std::condition_variable written_;
  Group staged_, writing_;       // the group being staged, the one being written
  uint64_t staged_ticket_ = 0;   // the last event staged
  uint64_t durable_ticket_ = 0;  // every event up to it is durable
  bool writer_ = false;          // a thread is writing a group
  std::string failed_;           // why the journal failed, for good
};

}  // namespace kappa::detail
