// The SQLite journal's event log (EventLog) and what the journal makes of
// it: records of a killed process come back whole and in order, cleared ones
// never, the log ends at a record that does not check out (an append cut
// short by a kill), foreign files are refused, an append that cannot be
// written fails and loses nothing, and a journal killed before it folded
// its log is read back whole. (A coordinator killed at random moments on this journal is
// tested end to end in job_test.cc, DurableCoordinator.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/journal.h"
#include "journals/event_log.h"
#include "journals/journal_factory.h"
#include "kappa/error.h"
#include "support/store_checks.h"
#include "support/subprocess.h"

namespace kappa::detail {
namespace {

using kappa::testing::error_of;
using kappa::testing::read_file;
using kappa::testing::TempDir;
using kappa::testing::write_file;

std::vector<std::string> replayed(EventLog& log) {
  std::vector<std::string> out;
  log.replay([&](std::string_view r) { out.emplace_back(r); });
  return out;
}

// Runs `f` in a child process that then kills itself with SIGKILL, as a
// coordinator killed with kill -9: no destructor runs (the journal's log is
// not folded, its threads are not joined), nor any exit handler (a
// ThreadSanitizer build's leak check would count those threads). A child
// whose `f` threw dies of SIGABRT instead.
template <class F>
void in_killed_process(F f) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    f();
    kill(getpid(), SIGKILL);
    _exit(1);  // (not reached)
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST(EventLog, RecordsOfAKilledProcessComeBackWholeAndInOrder) {
  TempDir dir;
  std::vector<std::string> written = {"one", std::string(100000, 'x'), "", "three"};
  in_killed_process([&] {
    EventLog log(dir / "log");
    for (const std::string& r : written) log.append(r);
  });
  EventLog again(dir / "log");
  EXPECT_EQ(replayed(again), written);
  EXPECT_EQ(again.bytes(), 4 * 12 + 100000 + 3 + 5u);
}

// Once cleared, the records of before never come back, though their bytes
// are still in the file (its space is reused).
TEST(EventLog, ClearedRecordsNeverComeBack) {
  TempDir dir;
  {
    EventLog log(dir / "log");
    for (const char* r : {"old 1", "old 2", "old 3"}) log.append(r);
    log.clear();
    EXPECT_EQ(log.bytes(), 0u);
    log.append("new");
  }
  EventLog again(dir / "log");
  EXPECT_EQ(replayed(again), std::vector<std::string>{"new"});
  again.clear();
  EventLog empty(dir / "log");  // the stale records are right where the log starts
  EXPECT_TRUE(replayed(empty).empty());
}

// A process killed in the middle of an append leaves a record whose header
// does not check out (not yet written, or half): the log ends there, and the
// next append takes its place.
TEST(EventLog, ALogEndsAtTheFirstRecordThatDoesNotCheckOut) {
  TempDir dir;
  {
    EventLog log(dir / "log");
    for (const char* r : {"first", "second", "third"}) log.append(r);
  }
  const std::string bytes = read_file(dir / "log");
  size_t second = bytes.find("second") - 12;               // its header
  for (size_t byte : {second, second + 4, second + 12}) {  // length, checksum, payload
    std::string damaged = bytes;
    damaged[byte] ^= 1;
    write_file(dir / "log", damaged);
    EventLog log(dir / "log");
    EXPECT_EQ(replayed(log), std::vector<std::string>{"first"}) << byte;
    log.append("after");
    EXPECT_EQ(replayed(log), (std::vector<std::string>{"first", "after"})) << byte;
  }
}

TEST(EventLog, AForeignFileIsRefusedAndLeftAsItWas) {
  TempDir dir;
  write_file(dir / "log", "PRAGMA what is this");
  EXPECT_NE(error_of([&] { EventLog log(dir / "log"); }).find("not a Kappa event log"),
            std::string::npos);
  EXPECT_EQ(read_file(dir / "log"), "PRAGMA what is this");
}

// The file grows ahead of the appends up to the size its owner expects (its
// pages are then ready when the appends come), and beyond as records need;
// clear() reuses it.
TEST(EventLog, TheFileGrowsAheadOfTheAppendsUpToWhatIsExpected) {
  TempDir dir;
  const std::string record(10000, 'r');
  std::vector<std::string> written;
  {
    EventLog log(dir / "log", 1 << 20);
    const uint64_t first = log.capacity();
    EXPECT_LT(first, 1u << 20);
    while (log.bytes() < 600000) {
      log.append(record);
      written.push_back(record);
    }
    EXPECT_EQ(log.capacity(), 1u << 20);  // before a record needed it
    while (log.bytes() < (1 << 20) + 100000) {
      log.append(record);
      written.push_back(record);
    }
    EXPECT_GE(log.capacity(), log.bytes() + 16);
    EXPECT_EQ(replayed(log), written);
    const uint64_t grown = log.capacity();
    log.clear();
    log.append("after");
    EXPECT_EQ(log.capacity(), grown);
  }
  EXPECT_GE(std::filesystem::file_size(dir / "log"), 1u << 20);
  EventLog again(dir / "log");
  EXPECT_EQ(replayed(again), std::vector<std::string>{"after"});
}

// The record cannot be written (here a file size limit: EFBIG; a full disk
// says so): the append fails, naming the log and the reason, and the records
// before it stay. Growing ahead of the appends failed silently before: the
// records that still fit were appended.
TEST(EventLog, AnAppendThatCannotBeWrittenFailsAndLosesNothing) {
  TempDir dir;
  EventLog log(dir / "log", 64 << 20);
  log.append("kept");
  std::vector<std::string> kept = {"kept"};
  std::string why;
  {
    kappa::testing::ScopedFileSizeLimit limit(1 << 20);
    while (log.bytes() < 900000) {  // past 3/4 of 1 MiB: growing to 2 MiB failed
      log.append(std::string(10000, 'f'));
      kept.push_back(std::string(10000, 'f'));
    }
    EXPECT_EQ(log.capacity(), 1u << 20);
    why = error_of([&] { log.append(std::string(200000, 'n')); });
  }
  EXPECT_NE(why.find("cannot write the journal's log " + dir / "log"), std::string::npos) << why;
  EXPECT_NE(why.find(std::strerror(EFBIG)), std::string::npos) << why;
  EXPECT_EQ(replayed(log), kept);
  log.append("then");
  kept.push_back("then");
  EventLog again(dir / "log");
  EXPECT_EQ(replayed(again), kept);
}

JobIdentity identity(const std::string& job) {
  return JobIdentity{.job = job, .build_id = "b", .event = "{}", .store = "s", .data = "d"};
}

TEST(SqliteJournal, WhatAKilledCoordinatorLeftInTheLogIsReadBack) {
  TempDir dir;
  std::string url = "sqlite://" + dir / "j.db";
  in_killed_process([&] { open_journal(url).release()->begin(identity("job-1")); });
  EXPECT_EQ(EventLog(dir / "j.db-log").bytes() > 0, true);  // not folded
  {
    std::unique_ptr<Journal> j = open_journal(url);
    std::optional<JobIdentity> id = j->identity();
    ASSERT_TRUE(id);
    EXPECT_EQ(id->job, "job-1");
  }
  // Closed cleanly: folded into the tables, the log empty.
  EXPECT_EQ(EventLog(dir / "j.db-log").bytes(), 0u);
  kappa::testing::ProcessResult shell =
      kappa::testing::run_process({"/usr/bin/sqlite3", dir / "j.db", "SELECT count(*) FROM meta"});
  EXPECT_EQ(shell.out, "2\n") << shell.err;
}

TEST(SqliteJournal, ALogWhoseDatabaseIsGoneIsRefused) {
  TempDir dir;
  std::string url = "sqlite://" + dir / "j.db";
  in_killed_process([&] { open_journal(url).release()->begin(identity("job-1")); });
  std::filesystem::remove(dir / "j.db");
  std::filesystem::remove(dir / "j.db-wal");
  for (int attempt = 0; attempt < 2; ++attempt) {  // the refusal changed nothing
    std::string why = error_of([&] { open_journal(url); });
    EXPECT_NE(why.find("holds events of a journal " + dir / "j.db" + " that no longer exists"),
              std::string::npos)
        << why;
  }
}

// Group commit: events staged while a group is being written go together
// in the next one.
class CountingJournal final : public RowJournal {
 public:
  std::string url() const override { return "counting://"; }
  std::vector<size_t> groups() {
    std::lock_guard lock(mu_);
    return groups_;
  }
  void let_first_write_end() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool wait_writing() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return writing_; });
  }

 protected:
  void write(const Group& group) override {
    std::vector<Group::Op> read_back = Group::parse(group.bytes);  // as a journal would
    std::unique_lock lock(mu_);
    EXPECT_EQ(read_back.size(), group.ops.size());
    writing_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    groups_.push_back(group.ops.size());
  }
  std::vector<std::pair<uint64_t, std::string>> rows(Table) override { return {}; }
  std::optional<std::string> row(Table, uint64_t) override { return std::nullopt; }

 public:
  // A group's ops as text ("tasks 1 = t", "meta 1 erased"), before and after
  // compact(), each time as read back from its bytes too.
  struct Compacted {
    std::vector<std::string> before, after, after_read_back;
  };
  static Compacted compact_sample() {
    Group g;
    g.put(Table::kMeta, 1, "a");
    g.put(Table::kTasks, 1, "t");
    g.erase(Table::kMeta, 1);
    g.put(Table::kProgress, 7, "p");
    g.put(Table::kMeta, 1, "b");
    g.erase(Table::kTasks, 1);
    Compacted out;
    out.before = describe(g.ops, g.bytes);
    g.compact();
    out.after = describe(g.ops, g.bytes);
    out.after_read_back = describe(Group::parse(g.bytes), g.bytes);
    return out;
  }

 private:
  static std::vector<std::string> describe(const std::vector<Group::Op>& ops,
                                           const std::string& bytes) {
    static const char* names[] = {"tasks", "progress", "futures", "queues", "meta"};
    std::vector<std::string> out;
    for (const Group::Op& op : ops)
      out.push_back(std::string(names[int(op.table)]) + " " + std::to_string(op.id) +
                    (op.erased ? " erased" : " = " + std::string(op.body(bytes))));
    return out;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false, released_ = false;
  std::vector<size_t> groups_;
};

TEST(RowJournal, EventsStagedDuringAWriteShareTheNextOne) {
  CountingJournal journal;
  JobState state(JobStateOptions{});
  Changes one;
  one.counters = true;  // one row
  std::thread first([&] { journal.record(state, one); });
  ASSERT_TRUE(journal.wait_writing());
  std::vector<uint64_t> tickets;
  for (uint64_t queue = 1; queue <= 3; ++queue) {
    Changes other;
    other.queues = {queue};  // one row each: the queue's, erased (there is no such queue)
    tickets.push_back(journal.stage(state, other));
  }
  EXPECT_EQ(tickets, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(journal.stage(state, Changes{}), 4u);  // nothing of its own: waits for the others
  std::thread later([&] { journal.sync(3); });
  journal.let_first_write_end();
  first.join();
  later.join();
  journal.sync(4);  // already written, with 3
  EXPECT_EQ(journal.groups(), (std::vector<size_t>{1, 3}));
}

// A row staged again before its group is written is written once, with its
// latest value, where its latest write was.
TEST(RowJournal, ARowStagedAgainInAGroupIsWrittenOnceWithItsLatestValue) {
  CountingJournal journal;
  JobState state(JobStateOptions{});
  Changes counters;
  counters.counters = true;
  std::thread first([&] { journal.record(state, counters); });
  ASSERT_TRUE(journal.wait_writing());
  for (int i = 0; i < 3; ++i) journal.stage(state, counters);
  uint64_t last = journal.stage(state, counters);
  std::thread later([&] { journal.sync(last); });
  journal.let_first_write_end();
  first.join();
  later.join();
  EXPECT_EQ(journal.groups(), (std::vector<size_t>{1, 1}));

  CountingJournal::Compacted c = CountingJournal::compact_sample();
  EXPECT_EQ(c.before, (std::vector<std::string>{"meta 1 = a", "tasks 1 = t", "meta 1 erased",
                                                "progress 7 = p", "meta 1 = b", "tasks 1 erased"}));
  EXPECT_EQ(c.after, (std::vector<std::string>{"progress 7 = p", "meta 1 = b", "tasks 1 erased"}));
  EXPECT_EQ(c.after_read_back, c.after);
}

}  // namespace
}  // namespace kappa::detail
