// The coordinator's state machine, driven directly: no processes, no gRPC.
// A fake backend records what the coordinator asks of the platform.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "support/subprocess.h"

namespace kappa::detail {
namespace {

class FakeBackend : public Backend {
 public:
  bool launch_worker(uint64_t id, bool on_coordinator, std::string* error) override {
    if (!launch_error.empty()) {
      *error = launch_error;
      return false;
    }
    launched.push_back({id, on_coordinator});
    return true;
  }
  std::string launch_error;
  void invocation_started(uint64_t id) override { started.push_back(id); }
  void invocation_ended(uint64_t id) override { ended.push_back(id); }
  double time_limit(bool on_coordinator) const override { return on_coordinator ? 0 : 9; }

  std::vector<std::pair<uint64_t, bool>> launched;
  std::vector<uint64_t> started, ended;
};

SpawnSpec spec(std::string name, std::vector<ArgSlot> args = {}) {
  SpawnSpec s;
  s.fn = 0x1000;
  s.trampoline = 0x2000;
  s.name = std::move(name);
  s.args = std::move(args);
  return s;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : c(options(), nullptr) { c.set_backend(&backend); }
  static CoordinatorOptions options() {
    CoordinatorOptions o;
    o.max_workers = 2;
    o.grace = std::chrono::milliseconds(0);  // park at once: no waiting in tests
    o.idle_poll = std::chrono::milliseconds(0);
    o.max_failures = 2;
    return o;
  }
  CallOutcome call(uint64_t worker, uint64_t task, uint64_t seqno, Op op, std::string request) {
    return c.call(CallInfo{.worker_id = worker,
                           .task_id = task,
                           .seqno = seqno,
                           .image_key = "img-" + std::to_string(seqno),
                           .op = op,
                           .request = std::move(request)});
  }
  FakeBackend backend;
  Coordinator c;
};

TEST_F(CoordinatorTest, RootStartsOnALaunchedWorker) {
  c.spawn_root(spec("root", {{0, encode(std::string("event"))}}));
  ASSERT_EQ(backend.launched.size(), 1u);
  AssignmentInfo a = c.next(backend.launched[0].first);
  EXPECT_EQ(a.kind, AssignmentInfo::Kind::kStart);
  EXPECT_EQ(a.task_id, 1u);
  EXPECT_EQ(a.time_left, 9);
  ASSERT_EQ(a.args.size(), 1u);
  EXPECT_EQ(decode<std::string>(a.args[0]), "event");
}

TEST_F(CoordinatorTest, ARepeatedCallIsAppliedOnce) {
  c.spawn_root(spec("root"));
  c.next(1);
  std::string request = encode(std::vector<SpawnSpec>{spec("child")});
  CallOutcome first = call(1, 1, 0, Op::kSpawn, request);
  CallOutcome again = call(1, 1, 0, Op::kSpawn, request);  // e.g. a retried RPC
  ASSERT_EQ(first.kind, CallOutcome::Kind::kResult);
  EXPECT_EQ(again.reply, first.reply);
  EXPECT_EQ(decode<std::vector<uint64_t>>(first.reply), std::vector<uint64_t>{2});
  EXPECT_EQ(c.stats().tasks, 2u);  // one child, not two
  EXPECT_EQ(c.stats().duplicate_calls, 1u);
}

TEST_F(CoordinatorTest, AStaleCallIsAbandoned) {
  c.spawn_root(spec("root"));
  c.next(1);
  call(1, 1, 5, Op::kCheckpoint, "");
  EXPECT_EQ(call(1, 1, 4, Op::kCheckpoint, "").kind, CallOutcome::Kind::kAbandon);
  EXPECT_EQ(call(7, 1, 6, Op::kCheckpoint, "").kind,
            CallOutcome::Kind::kAbandon);  // not its worker
}

TEST_F(CoordinatorTest, BlockedWaitParksAndRelaunchesWithTheResult) {
  c.spawn_root(spec("root"));
  c.next(1);
  call(1, 1, 0, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("child")}));
  CallOutcome wait = call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  EXPECT_EQ(wait.kind, CallOutcome::Kind::kPark);
  AssignmentInfo child = c.next(2);
  ASSERT_EQ(child.task_id, 2u);
  c.finish(2, 2, false, encode(int64_t{42}), "");
  AssignmentInfo resumed = c.next(1);
  EXPECT_EQ(resumed.kind, AssignmentInfo::Kind::kResume);
  EXPECT_EQ(resumed.task_id, 1u);
  EXPECT_EQ(resumed.image_key, "img-1");
  auto results = decode<std::vector<WaitResult>>(resumed.reply);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].failed);
  EXPECT_EQ(decode<int64_t>(results[0].bytes), 42);
}

TEST_F(CoordinatorTest, AnInlineImageComesBackWithTheRelaunch) {
  c.spawn_root(spec("root"));
  c.next(1);
  call(1, 1, 0, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("child")}));
  CallOutcome wait = c.call(CallInfo{.worker_id = 1,
                                     .task_id = 1,
                                     .seqno = 1,
                                     .image = "the image bytes",
                                     .op = Op::kWait,
                                     .request = encode(std::vector<uint64_t>{2})});
  EXPECT_EQ(wait.kind, CallOutcome::Kind::kPark);
  c.next(2);
  c.finish(2, 2, false, encode(int64_t{7}), "");
  AssignmentInfo resumed = c.next(1);
  EXPECT_EQ(resumed.kind, AssignmentInfo::Kind::kResume);
  EXPECT_EQ(resumed.image, "the image bytes");
  EXPECT_EQ(resumed.image_key, "");
}

TEST_F(CoordinatorTest, FutureArgumentsAreDataflowEdges) {
  c.spawn_root(spec("root"));
  c.next(1);
  call(1, 1, 0, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("a")}));
  // b takes a's future: not ready until a finishes.
  call(1, 1, 1, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("b", {{2, ""}})}));
  AssignmentInfo first = c.next(2);
  EXPECT_EQ(first.task_id, 2u);
  EXPECT_EQ(c.next(3).kind, AssignmentInfo::Kind::kIdle);
  c.finish(2, 2, false, encode(std::string("value of a")), "");
  AssignmentInfo second = c.next(3);
  ASSERT_EQ(second.task_id, 3u);
  EXPECT_EQ(decode<std::string>(second.args.at(0)), "value of a");
}

TEST_F(CoordinatorTest, RendezvousQueueHandsOverOnlyToADequeuer) {
  c.spawn_root(spec("root"));
  c.next(1);
  uint64_t q = decode<uint64_t>(call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{0})).reply);
  call(1, 1, 1, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("consumer")}));
  EXPECT_EQ(call(1, 1, 2, Op::kEnqueue, enqueue_request(q, std::string("item"))).kind,
            CallOutcome::Kind::kPark);  // nobody dequeues yet
  c.next(2);
  CallOutcome got = call(2, 2, 0, Op::kDequeue, encode(q));
  ASSERT_EQ(got.kind, CallOutcome::Kind::kResult);
  EXPECT_EQ(decode<std::string>(got.reply), "item");
  AssignmentInfo producer = c.next(1);  // the enqueue completed: relaunched
  EXPECT_EQ(producer.kind, AssignmentInfo::Kind::kResume);
  EXPECT_EQ(producer.task_id, 1u);
}

TEST_F(CoordinatorTest, AnEnqueueWithoutAQueueIdFailsTheCall) {
  c.spawn_root(spec("root"));
  c.next(1);
  CallOutcome r = call(1, 1, 0, Op::kEnqueue, "abc");
  ASSERT_EQ(r.kind, CallOutcome::Kind::kResult);
  EXPECT_NE(r.error.find("without a queue id"), std::string::npos) << r.error;
}

TEST_F(CoordinatorTest, ADeadWorkersTaskRestartsFromItsLastCall) {
  c.spawn_root(spec("root"));
  c.next(1);
  call(1, 1, 3, Op::kCheckpoint, "");
  c.worker_exited(1, "killed by SIGKILL");
  EXPECT_EQ(c.next(1).kind, AssignmentInfo::Kind::kShutdown);  // never reused
  AssignmentInfo again = c.next(2);
  EXPECT_EQ(again.kind, AssignmentInfo::Kind::kResume);
  EXPECT_EQ(again.image_key, "img-3");
  EXPECT_EQ(again.seqno, 3u);
}

TEST_F(CoordinatorTest, RepeatedDeathsWithoutProgressFailTheTask) {
  c.spawn_root(spec("root"));
  for (uint64_t w = 1; w <= 3; ++w) {
    ASSERT_EQ(c.next(w).task_id, 1u);
    c.worker_exited(w, "killed by SIGSEGV");
  }
  JobOutcome job = c.wait_job(std::chrono::milliseconds(0));
  ASSERT_TRUE(job.done);
  EXPECT_TRUE(job.failed);
  EXPECT_NE(job.error.find("task 1 (root) failed: its worker died 3 times"), std::string::npos)
      << job.error;
}

TEST_F(CoordinatorTest, WorkersThatNeverStartFailTheJobInsteadOfLoopingForever) {
  c.spawn_root(spec("root"));
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(backend.launched.empty());
    c.worker_exited(backend.launched.back().first, "exited with status 1");
  }
  JobOutcome job = c.wait_job(std::chrono::milliseconds(0));
  ASSERT_TRUE(job.done);
  EXPECT_TRUE(job.failed);
  EXPECT_NE(job.error.find("5 workers in a row died before asking for work"), std::string::npos)
      << job.error;
  EXPECT_EQ(backend.launched.size(), 5u);  // and no more were launched
}

TEST_F(CoordinatorTest, AWorkerThatCannotBeLaunchedFailsTheJob) {
  backend.launch_error = "no such file";
  c.spawn_root(spec("root"));
  JobOutcome job = c.wait_job(std::chrono::milliseconds(0));
  ASSERT_TRUE(job.done);
  EXPECT_NE(job.error.find("cannot start a worker: no such file"), std::string::npos);
}

TEST_F(CoordinatorTest, OnCoordinatorTasksUseTheirOwnPool) {
  c.spawn_root(spec("root"));
  c.next(1);
  SpawnSpec side = spec("side effect");
  side.on_coordinator = true;
  call(1, 1, 0, Op::kSpawn, encode(std::vector<SpawnSpec>{side}));
  ASSERT_EQ(backend.launched.size(), 2u);
  EXPECT_TRUE(backend.launched[1].second);
  AssignmentInfo a = c.next(backend.launched[1].first);
  EXPECT_EQ(a.task_id, 2u);
  EXPECT_EQ(a.time_left, 0);  // no time limit beside the coordinator
}

// Images in the store are removed once replaced by a newer call's, or once
// the task has finished, on the coordinator's housekeeping thread.
TEST(CoordinatorStore, ReplacedAndFinishedImagesLeaveTheStore) {
  kappa::testing::TempDir dir;
  std::unique_ptr<CheckpointStore> store = open_store(dir / "store");
  Coordinator c(CoordinatorOptions{}, store.get());
  c.spawn_root(spec("root"));
  c.next(1);
  for (const char* key : {"a.kpk", "b.kpk"}) store->put(key, "image");
  c.call(CallInfo{.worker_id = 1, .task_id = 1, .seqno = 0, .image_key = "a.kpk"});
  c.call(CallInfo{.worker_id = 1, .task_id = 1, .seqno = 1, .image_key = "b.kpk"});
  c.drain_store();
  EXPECT_FALSE(store->get("a.kpk"));
  EXPECT_TRUE(store->get("b.kpk"));  // the task may still restart from it
  c.finish(1, 1, false, encode(0), "");
  c.drain_store();
  EXPECT_FALSE(store->get("b.kpk"));
}

// Calls answered through a ReplyHook (the Unix-socket transport's way): a
// call that blocks returns kPending at once, and exactly one answer follows.
class HookedCalls : public ::testing::Test {
 protected:
  struct Answers {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<CallOutcome> got;
    ReplyHook hook() {
      return [this](CallOutcome o) {
        std::lock_guard lock(mu);
        got.push_back(std::move(o));
        cv.notify_all();
      };
    }
    // Waits up to 5 s for the n-th answer.
    bool wait_for(size_t n) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(5), [&] { return got.size() >= n; });
    }
  };
  static CoordinatorOptions options(std::chrono::milliseconds grace) {
    CoordinatorOptions o;
    o.max_workers = 4;
    o.grace = grace;
    o.idle_poll = std::chrono::milliseconds(0);
    return o;
  }
  static CallInfo info(uint64_t worker, uint64_t task, uint64_t seqno, Op op, std::string req) {
    return CallInfo{
        .worker_id = worker, .task_id = task, .seqno = seqno, .op = op, .request = std::move(req)};
  }
  // Root on worker 1 made a queue and spawned task 2, now on worker 2.
  uint64_t start(Coordinator& c) {
    c.set_backend(&backend);
    c.spawn_root(spec("root"));
    c.next(1);
    uint64_t q = decode<uint64_t>(c.call(info(1, 1, 0, Op::kMakeQueue, encode(uint64_t{1}))).reply);
    c.call(info(1, 1, 1, Op::kSpawn, encode(std::vector<SpawnSpec>{spec("child")})));
    EXPECT_EQ(c.next(2).task_id, 2u);
    return q;
  }
  FakeBackend backend;
  Answers answers;
};

TEST_F(HookedCalls, TheCompletingCallAnswersTheBlockedOne) {
  Coordinator c(options(std::chrono::seconds(30)), nullptr);
  uint64_t q = start(c);
  CallOutcome pending = c.call(info(2, 2, 0, Op::kDequeue, encode(q)), answers.hook());
  EXPECT_EQ(pending.kind, CallOutcome::Kind::kPending);
  EXPECT_TRUE(answers.got.empty());
  CallOutcome enq = c.call(info(1, 1, 2, Op::kEnqueue, enqueue_request(q, std::string("x"))));
  EXPECT_EQ(enq.kind, CallOutcome::Kind::kResult);
  // Answered before the enqueuer's own call returned, from its thread.
  ASSERT_EQ(answers.got.size(), 1u);
  EXPECT_EQ(answers.got[0].kind, CallOutcome::Kind::kResult);
  EXPECT_EQ(decode<std::string>(answers.got[0].reply), "x");
  EXPECT_EQ(c.stats().parks, 0u);
}

TEST_F(HookedCalls, TheGracePeriodEndsInAPark) {
  Coordinator c(options(std::chrono::milliseconds(20)), nullptr);
  uint64_t q = start(c);
  EXPECT_EQ(c.call(info(2, 2, 0, Op::kDequeue, encode(q)), answers.hook()).kind,
            CallOutcome::Kind::kPending);
  ASSERT_TRUE(answers.wait_for(1)) << "the parking thread never answered";
  EXPECT_EQ(answers.got[0].kind, CallOutcome::Kind::kPark);
  EXPECT_EQ(c.stats().parks, 1u);
  // Completed later: relaunched with the item, and the hook is not used again.
  c.call(info(1, 1, 2, Op::kEnqueue, enqueue_request(q, std::string("late"))));
  AssignmentInfo again = c.next(3);
  EXPECT_EQ(again.kind, AssignmentInfo::Kind::kResume);
  EXPECT_EQ(again.task_id, 2u);
  EXPECT_EQ(decode<std::string>(again.reply), "late");
  EXPECT_EQ(answers.got.size(), 1u);
}

TEST_F(HookedCalls, ALostWorkerGetsNoAnswer) {
  Coordinator c(options(std::chrono::seconds(30)), nullptr);
  uint64_t q = start(c);
  c.call(info(2, 2, 0, Op::kDequeue, encode(q)), answers.hook());
  c.worker_exited(2, "killed");
  c.call(info(1, 1, 2, Op::kEnqueue, enqueue_request(q, std::string("x"))));
  EXPECT_TRUE(answers.got.empty());
  AssignmentInfo again = c.next(3);  // the dequeue completed: relaunched with the item
  EXPECT_EQ(again.task_id, 2u);
  EXPECT_EQ(decode<std::string>(again.reply), "x");
}

}  // namespace
}  // namespace kappa::detail
