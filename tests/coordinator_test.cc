// Coordinator, the concurrent shell around JobState: answers go out through
// the workers' links from the thread that produced them, timers fire on the
// coordinator's clock, launches run off the lock, images leave the store.
// Time is a FakeClock: nothing here sleeps to let time pass.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "stores/checkpoint_store.h"
#include "support/subprocess.h"

namespace kappa::detail {
namespace {

using namespace std::chrono_literals;

// Every message any RecordingLink is sent, numbered in the order sent.
std::atomic<uint64_t> messages_sent{0};

// Records what a worker is sent.
class RecordingLink final : public WorkerLink {
 public:
  void send(Assignment a) override { push(std::move(a)); }
  void send(CallOutcome o) override { push(std::move(o)); }
  void send_finished() override { push(Effects::Finished{}); }

  using Message = std::variant<Assignment, CallOutcome, Effects::Finished>;
  /// Waits (up to 10 s of real time: a hang, not a timing) for the next one.
  std::optional<Message> take() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 10s, [&] { return !got_.empty(); })) return std::nullopt;
    Message m = std::move(got_.front());
    got_.erase(got_.begin());
    return m;
  }
  size_t pending() {
    std::lock_guard lock(mu_);
    return got_.size();
  }
  std::thread::id last_sender() {
    std::lock_guard lock(mu_);
    return sender_;
  }
  /// The number (messages_sent) of the last message this worker was sent.
  uint64_t last_number() {
    std::lock_guard lock(mu_);
    return number_;
  }

 private:
  void push(Message m) {
    std::lock_guard lock(mu_);
    got_.push_back(std::move(m));
    sender_ = std::this_thread::get_id();
    number_ = ++messages_sent;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> got_;
  std::thread::id sender_;
  uint64_t number_ = 0;
};

// A platform whose launches block until the test lets them through.
class FakeBackend final : public Backend {
 public:
  void launch_worker(uint64_t worker, bool) override {
    std::unique_lock lock(mu_);
    ++launching_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --launching_;
    if (!fail_with_.empty()) throw Error(fail_with_);
    launched_.push_back(worker);
    cv_.notify_all();
  }
  void invocation_started(uint64_t) override {}
  void invocation_ended(uint64_t) override {}
  void kill_worker(uint64_t worker, WorkerExit::Cause why) override {
    std::lock_guard lock(mu_);
    killed_.emplace_back(worker, why);
    cv_.notify_all();
  }
  double time_limit(bool) const override { return 0; }
  void shutdown() override {}
  uint64_t chaos_kills() const override { return 0; }

  void open(std::string fail_with = {}) {
    std::lock_guard lock(mu_);
    open_ = true;
    fail_with_ = std::move(fail_with);
    cv_.notify_all();
  }
  bool wait_launching() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return launching_ > 0; });
  }
  bool wait_launched(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return launched_.size() >= n; });
  }
  bool wait_killed(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return killed_.size() >= n; });
  }
  std::vector<std::pair<uint64_t, WorkerExit::Cause>> killed() {
    std::lock_guard lock(mu_);
    return killed_;
  }
  size_t launched_count() {
    std::lock_guard lock(mu_);
    return launched_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int launching_ = 0;
  std::string fail_with_;
  std::vector<uint64_t> launched_;
  std::vector<std::pair<uint64_t, WorkerExit::Cause>> killed_;
};

SpawnSpec spec(std::string name) {
  SpawnSpec s;
  s.fn = 0x1000;
  s.name = std::move(name);
  return s;
}

JobStateOptions options() {
  JobStateOptions o;
  o.max_workers = 4;
  o.grace = 50ms;
  o.idle_poll = 1h;
  o.liveness_timeout = 5s;
  return o;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : c(options(), nullptr, clock) {
    c.set_backend(&backend);
    for (uint64_t w : {1, 2, 3}) c.connect(w, links[w]);
  }
  ~CoordinatorTest() override {
    backend.open();  // lets any launch still waiting end
    c.shutdown();
  }
  Assignment assignment(uint64_t w) {
    auto m = links[w]->take();
    EXPECT_TRUE(m && std::holds_alternative<Assignment>(*m)) << "worker " << w;
    return m && std::holds_alternative<Assignment>(*m) ? std::get<Assignment>(*m) : Assignment{};
  }
  CallOutcome outcome(uint64_t w) {
    auto m = links[w]->take();
    EXPECT_TRUE(m && std::holds_alternative<CallOutcome>(*m)) << "worker " << w;
    return m && std::holds_alternative<CallOutcome>(*m) ? std::get<CallOutcome>(*m) : CallOutcome{};
  }
  // Root on worker 1 made a queue and spawned task 2, which worker 2 runs.
  uint64_t two_tasks_and_a_queue() {
    c.spawn_root(spec("root"));
    c.next(1);
    EXPECT_EQ(assignment(1).task_id, 1u);
    c.call(CallInfo{
        .worker_id = 1, .task_id = 1, .op = Op::kMakeQueue, .request = encode(uint64_t{1})});
    uint64_t q = decode<uint64_t>(outcome(1).reply);
    c.call(CallInfo{.worker_id = 1,
                    .task_id = 1,
                    .seqno = 1,
                    .op = Op::kSpawn,
                    .request = encode(std::vector<SpawnSpec>{spec("child")})});
    outcome(1);
    c.next(2);
    EXPECT_EQ(assignment(2).task_id, 2u);
    return q;
  }

  FakeClock clock;
  FakeBackend backend;
  std::map<uint64_t, std::shared_ptr<RecordingLink>> links = {
      {1, std::make_shared<RecordingLink>()},
      {2, std::make_shared<RecordingLink>()},
      {3, std::make_shared<RecordingLink>()}};
  Coordinator c;
};

TEST_F(CoordinatorTest, ACompletedCallIsAnsweredByTheThreadThatCompletedIt) {
  uint64_t q = two_tasks_and_a_queue();
  c.call(CallInfo{.worker_id = 2, .task_id = 2, .op = Op::kDequeue, .request = encode(q)});
  EXPECT_EQ(links[2]->pending(), 0u);  // blocked: no answer yet
  c.call(CallInfo{.worker_id = 1,
                  .task_id = 1,
                  .seqno = 2,
                  .op = Op::kEnqueue,
                  .request = enqueue_request(q, std::string("x"))});
  // Both answered before the enqueuer's call returned, from this thread.
  ASSERT_EQ(links[2]->pending(), 1u);
  EXPECT_EQ(links[2]->last_sender(), std::this_thread::get_id());
  CallOutcome got = outcome(2);
  EXPECT_EQ(got.kind, CallOutcome::Kind::kResult);
  EXPECT_EQ(decode<std::string>(got.reply), "x");
  EXPECT_EQ(outcome(1).kind, CallOutcome::Kind::kResult);
  EXPECT_EQ(c.stats().parks, 0u);
}

// The worker a call unblocks is answered before the caller (JobState::call
// answers the caller after its call's effects): the caller's answer only
// lets it go on, and each send may cost a wake-up of an idle CPU, tens of
// microseconds on a VM (docs/benchmarks.md).
TEST_F(CoordinatorTest, AWorkerTheEventUnblocksIsAnsweredBeforeTheCaller) {
  uint64_t q = two_tasks_and_a_queue();
  c.call(CallInfo{.worker_id = 2, .task_id = 2, .op = Op::kDequeue, .request = encode(q)});
  c.call(CallInfo{.worker_id = 1,
                  .task_id = 1,
                  .seqno = 2,
                  .op = Op::kEnqueue,
                  .request = enqueue_request(q, std::string("x"))});
  EXPECT_LT(links[2]->last_number(), links[1]->last_number()) << "the enqueuer was answered first";
  EXPECT_EQ(decode<std::string>(outcome(2).reply), "x");
  EXPECT_EQ(outcome(1).kind, CallOutcome::Kind::kResult);
}

TEST_F(CoordinatorTest, TheGracePeriodEndsOnTheCoordinatorsClock) {
  uint64_t q = two_tasks_and_a_queue();
  c.call(CallInfo{.worker_id = 2, .task_id = 2, .op = Op::kDequeue, .request = encode(q)});
  // However long the test takes in real time, the fake clock has not moved.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(links[2]->pending(), 0u);
  clock.advance(50ms);
  CallOutcome parked = outcome(2);  // from the timer thread
  EXPECT_EQ(parked.kind, CallOutcome::Kind::kPark);
  EXPECT_NE(links[2]->last_sender(), std::this_thread::get_id());
  EXPECT_EQ(c.stats().parks, 1u);
}

TEST_F(CoordinatorTest, SlowLaunchesDoNotHoldTheLock) {
  c.spawn_root(spec("root"));  // asks the backend for a worker, which hangs
  ASSERT_TRUE(backend.wait_launching());
  // Meanwhile the coordinator serves workers.
  c.next(1);
  EXPECT_EQ(assignment(1).task_id, 1u);
  EXPECT_EQ(c.stats().workers_launched, 1u);
  backend.open();
  EXPECT_TRUE(backend.wait_launched(1));
}

TEST_F(CoordinatorTest, FailedLaunchesAreRetriedThenFailTheJob) {
  backend.open("no such file");
  c.spawn_root(spec("root"));
  JobOutcome job = c.wait_job(10s);
  ASSERT_TRUE(job.done);
  EXPECT_NE(job.error.find("cannot start a worker (5 attempts in a row failed; last: no such "
                           "file)"),
            std::string::npos)
      << job.error;
}

TEST_F(CoordinatorTest, ASilentWorkerIsKilledAsHung) {
  c.spawn_root(spec("root"));
  c.next(1);
  assignment(1);
  c.heartbeat(1);
  clock.advance(4s);
  c.heartbeat(1);
  clock.advance(4s);  // 4 s of silence: alive
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(backend.killed().empty());
  clock.advance(2s);
  ASSERT_TRUE(backend.wait_killed(1));
  EXPECT_EQ(backend.killed()[0], std::make_pair(uint64_t{1}, WorkerExit::Cause::kHung));
  EXPECT_EQ(c.stats().deaths[size_t(WorkerExit::Cause::kHung)], 1u);
}

TEST_F(CoordinatorTest, ABackendsReportOfADeathRestartsTheTask) {
  c.spawn_root(spec("root"));
  c.next(1);
  assignment(1);
  c.worker_exited(1, WorkerExit{WorkerExit::Cause::kChaosKill});
  c.next(2);
  EXPECT_EQ(assignment(2).task_id, 1u);
}

TEST_F(CoordinatorTest, AClosedSessionIsADeathOnlyWhenSaidSo) {
  c.spawn_root(spec("root"));
  c.next(1);
  assignment(1);
  c.disconnect(1, /*lost=*/false);
  EXPECT_EQ(c.stats().total_deaths(), 0u);
  c.disconnect(1, /*lost=*/true);
  EXPECT_EQ(c.stats().deaths[size_t(WorkerExit::Cause::kLost)], 1u);
}

// A journal whose writes wait until the test lets them through, or fail.
class GatedJournal final : public Journal {
 public:
  std::optional<JobIdentity> identity() override { return std::nullopt; }
  void begin(const JobIdentity&) override {}
  DurableJob load() override { return {}; }
  std::string url() const override { return "gated://"; }
  uint64_t stage(const JobState&, const Changes& changes) override {
    std::lock_guard lock(mu_);
    if (!changes.empty()) ++staged_;
    cv_.notify_all();
    return staged_;
  }
  void sync(uint64_t ticket) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_ || !fail_.empty(); });
    if (!fail_.empty()) throw Error(fail_);
    (void)ticket;
  }
  void open(std::string fail = {}) {
    std::lock_guard lock(mu_);
    open_ = fail.empty();
    fail_ = std::move(fail);
    cv_.notify_all();
  }
  void close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  bool wait_staged(uint64_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return staged_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t staged_ = 0;
  bool open_ = false;
  std::string fail_;
};

class CoordinatorJournalTest : public ::testing::Test {
 protected:
  CoordinatorJournalTest() : c(options(), nullptr, clock, &journal) {
    c.set_backend(&backend);
    c.connect(1, link);
    backend.open();
  }
  ~CoordinatorJournalTest() override {
    journal.open();
    c.shutdown();
  }
  FakeClock clock;
  FakeBackend backend;
  GatedJournal journal;
  std::shared_ptr<RecordingLink> link = std::make_shared<RecordingLink>();
  Coordinator c;
};

// The root's spawn is staged but not durable: its worker is not launched,
// and a worker asking for work (an event that changes nothing durable by
// itself) is not told of the root either, until the journal has written it.
TEST_F(CoordinatorJournalTest, NothingIsToldBeforeItIsDurable) {
  auto root = std::async(std::launch::async, [&] { c.spawn_root(spec("root")); });
  ASSERT_TRUE(journal.wait_staged(1));
  auto next = std::async(std::launch::async, [&] { c.next(1); });
  // (A wait for something that must not happen: it can only miss a bug.)
  EXPECT_EQ(next.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(link->pending(), 0u);
  EXPECT_EQ(backend.launched_count(), 0u);
  EXPECT_EQ(c.stats().workers_launched, 1u);  // decided, but not carried out
  journal.open();
  root.get();
  next.get();
  auto m = link->take();
  ASSERT_TRUE(m && std::holds_alternative<Assignment>(*m));
  EXPECT_EQ(std::get<Assignment>(*m).task_id, 1u);
  EXPECT_TRUE(backend.wait_launched(1));
}

// An answer that reveals nothing a restart could take back (a checkpoint's
// acknowledgement) goes while its event is not durable yet; a call's result
// (a new queue's id) waits for the journal.
TEST_F(CoordinatorJournalTest, OnlyAnswersThatRevealNothingGoBeforeTheEventIsDurable) {
  journal.open();
  c.spawn_root(spec("root"));
  c.next(1);
  auto m = link->take();
  ASSERT_TRUE(m && std::holds_alternative<Assignment>(*m));
  journal.close();

  auto checkpoint = std::async(std::launch::async, [&] {
    c.call(CallInfo{.worker_id = 1, .task_id = 1, .seqno = 0, .image = "image 0"});
  });
  ASSERT_EQ(checkpoint.wait_for(10s), std::future_status::ready);  // not held
  m = link->take();
  ASSERT_TRUE(m && std::holds_alternative<CallOutcome>(*m));
  EXPECT_EQ(std::get<CallOutcome>(*m).kind, CallOutcome::Kind::kResult);

  auto make_queue = std::async(std::launch::async, [&] {
    c.call(CallInfo{.worker_id = 1,
                    .task_id = 1,
                    .seqno = 1,
                    .image = "image 1",
                    .op = Op::kMakeQueue,
                    .request = encode(uint64_t(4))});
  });
  // (A wait for something that must not happen: it can only miss a bug.)
  EXPECT_EQ(make_queue.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(link->pending(), 0u);
  journal.open();
  make_queue.get();
  m = link->take();
  ASSERT_TRUE(m && std::holds_alternative<CallOutcome>(*m));
  const CallOutcome& made = std::get<CallOutcome>(*m);
  EXPECT_EQ(made.kind, CallOutcome::Kind::kResult);
  EXPECT_TRUE(made.error.empty()) << made.error;
}

// A journal that cannot write stops the job: nothing staged is told, and
// the job is reported failed, saying why.
TEST_F(CoordinatorJournalTest, AFailedJournalStopsTheJobAndTellsNothing) {
  auto root = std::async(std::launch::async, [&] { c.spawn_root(spec("root")); });
  ASSERT_TRUE(journal.wait_staged(1));
  auto next = std::async(std::launch::async, [&] { c.next(1); });
  journal.open("the disk is on fire");
  root.get();
  next.get();
  JobOutcome job = c.wait_job(10s);
  EXPECT_TRUE(job.done && job.failed);
  EXPECT_NE(job.error.find("the journal failed: the disk is on fire"), std::string::npos)
      << job.error;
  EXPECT_EQ(link->pending(), 0u);
}

// Images in the store are removed once replaced by a newer call's, or once
// the task has finished, on a thread of the coordinator's.
TEST(CoordinatorStore, ReplacedAndFinishedImagesLeaveTheStore) {
  kappa::testing::TempDir dir;
  std::unique_ptr<CheckpointStore> store = open_store(dir / "store");
  Coordinator c(options(), store.get());
  c.spawn_root(spec("root"));
  c.next(1);
  for (const char* key : {"a.kpk", "b.kpk"}) store->put(key, "image");
  c.call(CallInfo{.worker_id = 1, .task_id = 1, .seqno = 0, .image_key = "a.kpk"});
  c.call(CallInfo{.worker_id = 1, .task_id = 1, .seqno = 1, .image_key = "b.kpk"});
  c.drain_store();
  EXPECT_FALSE(store->get("a.kpk"));
  EXPECT_TRUE(store->get("b.kpk"));  // the task may still restart from it
  c.finish(FinishInfo{1, 1, 2, false, encode(0), "", false});
  c.drain_store();
  EXPECT_FALSE(store->get("b.kpk"));
  c.shutdown();
}

}  // namespace
}  // namespace kappa::detail
