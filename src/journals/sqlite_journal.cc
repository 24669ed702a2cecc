// SqliteJournal: the coordinator's journal in one SQLite file
// (--state sqlite://PATH), with an event log beside it (PATH-log).
//
// One table per kind of row (tasks, progress, futures, queues, meta), each
// (id INTEGER PRIMARY KEY, body BLOB), in WAL mode with synchronous=NORMAL.
//
// Each group of row writes (RowJournal: one event's, or several events'
// staged while the previous group was written) is appended to the log
// (EventLog: a copy into a mapped file, the group's bytes as they are)
// rather than committed as a SQLite transaction, which costs several times
// more (~25 us against ~3 us, measured; every call of a task is an event,
// and a call's round trip is ~20 us). The rows the log holds are folded into the tables in one
// transaction once the log passes kFoldBytes, when the journal is opened
// (after a kill -9), and when it is closed; then the log is emptied. Folding
// again rows already folded (a coordinator killed between the commit and the
// emptying) changes nothing: a row's writes are replayed in order. So at any
// moment the job is the tables plus the log, and after a clean end the
// tables alone, which the sqlite3 shell can read.
//
// Durability: a recorded event survives the death of the coordinator's
// process (kill -9: the operating system has the bytes), not necessarily a
// power loss or a kernel crash (that would take an fsync per event).
//
// The file is held with an exclusive lock for as long as the coordinator
// runs (locking_mode=EXCLUSIVE): a second coordinator on the same journal is
// refused; the lock goes with the process, however it ends. The log is only
// touched under that lock.
#include <sqlite3.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>

#include "coordinator/journal.h"
#include "journals/event_log.h"
#include "kappa/error.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

const char* table_name(int t) {
  static const char* names[] = {"tasks", "progress", "futures", "queues", "meta"};
  return names[t];
}

class SqliteJournal final : public RowJournal {
 public:
  explicit SqliteJournal(std::string path) : path_(std::move(path)) {
    int rc =
        sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw Error("cannot open the journal " + url() + ": " + why);
    }
    try {
      exec("PRAGMA locking_mode=EXCLUSIVE");
      // Taking the lock now: a journal in use by a live coordinator is
      // refused here, not at the first event.
      if (sqlite3_exec(db_, "BEGIN EXCLUSIVE; COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        int code = sqlite3_errcode(db_);
        if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
          throw Error("the journal " + url() +
                      " is in use by another coordinator (is a `run` of this job still alive?)");
        throw Error("the journal " + url() +
                    " is not a Kappa journal, or is corrupt: " + sqlite3_errmsg(db_));
      }
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");
      open_log(!has_tables());
      for (int t = 0; t < kTableCount; ++t)
        exec(std::string("CREATE TABLE IF NOT EXISTS ") + table_name(t) +
             " (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
      for (int t = 0; t < kTableCount; ++t) {
        put_[t] = prepare(std::string("INSERT OR REPLACE INTO ") + table_name(t) +
                          " (id, body) VALUES (?, ?)");
        erase_[t] = prepare(std::string("DELETE FROM ") + table_name(t) + " WHERE id = ?");
        one_[t] = prepare(std::string("SELECT body FROM ") + table_name(t) + " WHERE id = ?");
      }
      fold();
    } catch (...) {
      close();
      throw;
    }
  }
  ~SqliteJournal() override {
    try {
      if (log_) fold();
    } catch (const std::exception& e) {
      spdlog::warn("{} (its events stay in the log, for the next start)", e.what());
    }
    close();
  }

  std::string url() const override { return "sqlite://" + path_; }

 protected:
  void write(const Group& group) override {
    log_->append(group.bytes);
    if (log_->bytes() < next_fold_) return;
    try {
      fold();
    } catch (const std::exception& e) {
      // The events are durable in the log; the fold is tried again later.
      spdlog::warn("{}", e.what());
    }
    next_fold_ = log_->bytes() + kFoldBytes;
  }

  std::vector<std::pair<uint64_t, std::string>> rows(Table table) override {
    fold();
    std::vector<std::pair<uint64_t, std::string>> out;
    sqlite3_stmt* s =
        prepare(std::string("SELECT id, body FROM ") + table_name(int(table)) + " ORDER BY id");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
      out.emplace_back(uint64_t(sqlite3_column_int64(s, 0)), column(s, 1));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail("read");
    return out;
  }

  std::optional<std::string> row(Table table, uint64_t id) override {
    fold();
    sqlite3_stmt* s = one_[int(table)];
    sqlite3_bind_int64(s, 1, sqlite3_int64(id));
    std::optional<std::string> out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) out = column(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("read");
    return out;
  }

 private:
  // The log is folded into the tables once it holds this much: bounds the
  // disk it takes and the work of a restart's replay (~10 ms).
  static constexpr uint64_t kFoldBytes = 16 << 20;
  bool has_tables() {
    sqlite3_stmt* s = prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    bool any = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
    sqlite3_finalize(s);
    return any;
  }

  // Opens the log, which holds the events since the last fold of a
  // coordinator that was killed (the constructor then folds them).
  void open_log(bool fresh_tables) {
    log_.emplace(path_ + "-log", kFoldBytes + (1 << 20));  // room for the group past kFoldBytes
    if (fresh_tables && log_->bytes() > 0)
      throw Error("the journal's log " + log_->path() + " holds events of a journal " + path_ +
                  " that no longer exists: remove the log to start a new job there");
  }

  // Writes the rows the log holds into the tables, in one transaction (each
  // row's last write only), and empties the log. The log is read back from
  // its mapping rather than kept in memory as it is written: an event's
  // write stays one copy.
  void fold() {
    if (log_->bytes() == 0) return;
    std::array<std::unordered_map<uint64_t, std::optional<std::string>>, kTableCount> rows;
    log_->replay([&](std::string_view record) {
      std::vector<Group::Op> ops;
      try {
        ops = Group::parse(record);
      } catch (const Error& e) {
        throw Error("the journal's log " + log_->path() + " is corrupt: " + e.what());
      }
      for (const Group::Op& op : ops)
        rows[int(op.table)][op.id] =
            op.erased ? std::nullopt : std::optional<std::string>(op.body(record));
    });
    exec("BEGIN");
    try {
      for (int t = 0; t < kTableCount; ++t)
        for (auto& [id, body] : rows[t]) {
          sqlite3_stmt* s = body ? put_[t] : erase_[t];
          sqlite3_bind_int64(s, 1, sqlite3_int64(id));
          if (body) sqlite3_bind_blob64(s, 2, body->data(), body->size(), SQLITE_STATIC);
          step_done(s, "write");
        }
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    log_->clear();
  }

  static std::string column(sqlite3_stmt* s, int i) {
    const void* p = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);
    return p ? std::string(static_cast<const char*>(p), size_t(n)) : std::string();
  }

  [[noreturn]] void fail(const char* what) {
    throw Error("cannot " + std::string(what) + " the journal " + url() + ": " +
                sqlite3_errmsg(db_));
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string why = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw Error("journal " + url() + ": " + sql + ": " + why);
    }
  }

  sqlite3_stmt* prepare(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), int(sql.size()), &s, nullptr) != SQLITE_OK)
      fail("prepare a statement of");
    return s;
  }

  void step_done(sqlite3_stmt* s, const char* what) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) fail(what);
  }

  void close() {
    for (auto* group : {&put_, &erase_, &one_})
      for (sqlite3_stmt*& s : *group) {
        sqlite3_finalize(s);
        s = nullptr;
      }
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, kTableCount> put_{}, erase_{}, one_{};
  std::optional<EventLog> log_;
  uint64_t next_fold_ = kFoldBytes;  // the log's size at which to fold
};

}  // namespace

std::unique_ptr<Journal> open_sqlite_journal(const std::string& path) {
  if (path.empty()) throw Error("a sqlite:// journal URL needs a file path");
  return std::make_unique<SqliteJournal>(path);
}

}  // namespace kappa::detail
