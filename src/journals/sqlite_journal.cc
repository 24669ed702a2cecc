// SqliteJournal: the coordinator's journal in one SQLite file
// (--state sqlite://PATH).
//
// One table per kind of row (tasks, progress, futures, queues, meta), each
// (id INTEGER PRIMARY KEY, body BLOB); one transaction per event. WAL mode
// with synchronous=NORMAL: a committed event survives the death of the
// coordinator's process (kill -9: the operating system has the bytes), not
// necessarily a power loss or a kernel crash (that would take
// synchronous=FULL, an fsync per event).
//
// The file is held with an exclusive lock for as long as the coordinator
// runs (locking_mode=EXCLUSIVE): a second coordinator on the same journal is
// refused; the lock goes with the process, however it ends.
#include <sqlite3.h>

#include <array>
#include <memory>

#include "coordinator/journal.h"
#include "kappa/error.h"

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
      for (int t = 0; t < kTableCount; ++t)
        exec(std::string("CREATE TABLE IF NOT EXISTS ") + table_name(t) +
             " (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
      for (int t = 0; t < kTableCount; ++t) {
        put_[t] = prepare(std::string("INSERT OR REPLACE INTO ") + table_name(t) +
                          " (id, body) VALUES (?, ?)");
        erase_[t] = prepare(std::string("DELETE FROM ") + table_name(t) + " WHERE id = ?");
        one_[t] = prepare(std::string("SELECT body FROM ") + table_name(t) + " WHERE id = ?");
      }
    } catch (...) {
      close();
      throw;
    }
  }
  ~SqliteJournal() override { close(); }

  std::string url() const override { return "sqlite://" + path_; }

 protected:
  void begin_batch() override { exec("BEGIN"); }
  void commit_batch() override { exec("COMMIT"); }

  void put(Table table, uint64_t id, std::string_view bytes) override {
    sqlite3_stmt* s = put_[int(table)];
    sqlite3_bind_int64(s, 1, sqlite3_int64(id));
    sqlite3_bind_blob64(s, 2, bytes.data(), bytes.size(), SQLITE_STATIC);
    step_done(s, "write");
  }

  void erase(Table table, uint64_t id) override {
    sqlite3_stmt* s = erase_[int(table)];
    sqlite3_bind_int64(s, 1, sqlite3_int64(id));
    step_done(s, "write");
  }

  std::vector<std::pair<uint64_t, std::string>> rows(Table table) override {
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
  static constexpr int kTableCount = 5;

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
};

}  // namespace

std::unique_ptr<Journal> open_sqlite_journal(const std::string& path) {
  if (path.empty()) throw Error("a sqlite:// journal URL needs a file path");
  return std::make_unique<SqliteJournal>(path);
}

}  // namespace kappa::detail
