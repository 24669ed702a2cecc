// The SQLite journal's event log (EventLog) and what the journal makes of
// it: records come back whole and in order, the end of an append cut short
// by a kill is dropped, corruption and foreign files are refused, a full
// disk is reported, and a journal killed before it folded its log is read
// back whole. (A coordinator killed at random moments on this journal is
// tested end to end in job_test.cc, DurableCoordinator.)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
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

TEST(EventLog, RecordsComeBackWholeAndInOrder) {
  TempDir dir;
  std::vector<std::string> written = {"one", std::string(100000, 'x'), "", "three"};
  {
    EventLog log(dir / "log");
    for (const std::string& r : written) log.append(r);
  }
  EventLog again(dir / "log");
  EXPECT_EQ(replayed(again), written);
  again.clear();
  EXPECT_EQ(again.bytes(), 0u);
  EXPECT_TRUE(replayed(again).empty());
}

TEST(EventLog, AnAppendCutShortAtTheEndIsDropped) {
  TempDir dir;
  {
    EventLog log(dir / "log");
    log.append("kept");
    log.append("cut short");
  }
  std::string bytes = read_file(dir / "log");
  for (size_t cut : {1, 5, 12, 14}) {  // in the header, then in the payload
    write_file(dir / "log", bytes.substr(0, bytes.size() - cut));
    EventLog log(dir / "log");
    EXPECT_EQ(replayed(log), std::vector<std::string>{"kept"}) << cut;
    log.append("after");  // goes where the cut record was
    EXPECT_EQ(replayed(log), (std::vector<std::string>{"kept", "after"})) << cut;
  }
}

TEST(EventLog, CorruptionIsRefusedUnlessAtTheVeryEnd) {
  TempDir dir;
  {
    EventLog log(dir / "log");
    for (const char* r : {"first", "second", "third"}) log.append(r);
  }
  std::string bytes = read_file(dir / "log");
  std::string middle = bytes;
  middle[middle.find("second")] ^= 1;
  write_file(dir / "log", middle);
  EventLog bad(dir / "log");
  EXPECT_NE(error_of([&] { replayed(bad); }).find("record 2 (at byte 25) does not match"),
            std::string::npos);

  std::string last = bytes;
  last[last.find("third")] ^= 1;  // as a write cut short, it was never answered
  write_file(dir / "log", last);
  EventLog cut(dir / "log");
  EXPECT_EQ(replayed(cut), (std::vector<std::string>{"first", "second"}));
}

TEST(EventLog, AForeignFileIsRefused) {
  TempDir dir;
  write_file(dir / "log", "PRAGMA what is this");
  EventLog log(dir / "log");
  EXPECT_NE(error_of([&] { replayed(log); }).find("not a Kappa event log"), std::string::npos);
}

TEST(EventLog, AFullDiskIsReportedAsSuch) {
  // /dev/full: every write fails with ENOSPC.
  std::string why = error_of([] { EventLog log("/dev/full"); });
  EXPECT_NE(why.find("cannot write the journal's log /dev/full"), std::string::npos) << why;
  EXPECT_NE(why.find("its disk is full"), std::string::npos) << why;
}

// Runs `f` in a child process that then dies without running destructors:
// as a coordinator killed with kill -9, the journal's log is not folded.
template <class F>
void in_killed_process(F f) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    f();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

JobIdentity identity(const std::string& job) {
  return JobIdentity{.job = job, .build_id = "b", .event = "{}", .store = "s", .data = "d"};
}

TEST(SqliteJournal, WhatAKilledCoordinatorLeftInTheLogIsReadBack) {
  TempDir dir;
  std::string url = "sqlite://" + dir / "j.db";
  in_killed_process([&] { open_journal(url).release()->begin(identity("job-1")); });
  EXPECT_GT(std::filesystem::file_size(dir / "j.db-log"), 8u);  // not folded
  {
    std::unique_ptr<Journal> j = open_journal(url);
    std::optional<JobIdentity> id = j->identity();
    ASSERT_TRUE(id);
    EXPECT_EQ(id->job, "job-1");
  }
  // Closed cleanly: folded into the tables, the log empty.
  EXPECT_EQ(std::filesystem::file_size(dir / "j.db-log"), 8u);
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
    Group copy = group;
    copy.parse();  // what a journal reading its bytes back would see
    std::unique_lock lock(mu_);
    EXPECT_EQ(copy.ops.size(), group.ops.size());
    writing_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    groups_.push_back(group.ops.size());
  }
  std::vector<std::pair<uint64_t, std::string>> rows(Table) override { return {}; }
  std::optional<std::string> row(Table, uint64_t) override { return std::nullopt; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false, released_ = false;
  std::vector<size_t> groups_;
};

TEST(RowJournal, EventsStagedDuringAWriteShareTheNextOne) {
  CountingJournal journal;
  JobState state(JobStateOptions{});
  Changes one;
  one.counters = true;  // one row each
  std::thread first([&] { journal.record(state, one); });
  ASSERT_TRUE(journal.wait_writing());
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(journal.stage(state, one));
  EXPECT_EQ(tickets, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(journal.stage(state, Changes{}), 4u);  // nothing of its own: waits for the others
  std::thread later([&] { journal.sync(3); });
  journal.let_first_write_end();
  first.join();
  later.join();
  journal.sync(4);  // already written, with 3
  EXPECT_EQ(journal.groups(), (std::vector<size_t>{1, 3}));
}

}  // namespace
}  // namespace kappa::detail
