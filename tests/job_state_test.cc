// JobState, the coordinator's state machine, driven event by event with
// made-up times: no threads, no processes, no sleeping. Each test reads as a
// specification of one rule (job_state.h lists the invariants).
#include "coordinator/job_state.h"

#include <gtest/gtest.h>

#include "coordinator/job_view.h"

#include "cli/job_runner.h"

#include <deque>
#include <map>

namespace kappa::detail {
namespace {

using namespace std::chrono_literals;
using Kind = Assignment::Kind;
using Outcome = CallOutcome::Kind;
using Cause = WorkerExit::Cause;

SpawnSpec spec(std::string name, std::vector<ArgSlot> args = {}) {
  SpawnSpec s;
  s.fn = 0x1000;
  s.trampoline = 0x2000;
  s.name = std::move(name);
  s.args = std::move(args);
  return s;
}

std::string spawn_request(std::vector<SpawnSpec> specs) { return encode(specs); }

class JobStateTest : public ::testing::Test {
 protected:
  static JobStateOptions defaults() {
    JobStateOptions o;
    o.max_workers = 2;
    o.grace = 50ms;
    o.idle_poll = 1s;
    o.max_failures = 2;
    o.liveness_timeout = 5s;
    o.time_limit = 9;
    return o;
  }
  explicit JobStateTest(JobStateOptions o = defaults()) : s(o) {}

  // Runs one event; its answers go to the workers' inboxes, the rest of its
  // effects stay in `fx` until the next event.
  template <class Event>
  void event(Event&& e) {
    fx.clear();
    e(s, now, fx);
    for (Effects::Answer& a : fx.answers) inbox[a.worker].push_back(std::move(a.body));
    for (const Effects::Launch& l : fx.launches) launched.push_back(l);
  }
  void advance(Duration d) {
    now += d;
    event([](JobState& s, TimePoint t, Effects& fx) { s.fire_timers(t, fx); });
  }

  bool answered(uint64_t w) const {
    auto it = inbox.find(w);
    return it != inbox.end() && !it->second.empty();
  }
  template <class T>
  T take(uint64_t w) {
    EXPECT_TRUE(answered(w)) << "worker " << w << " got no answer";
    if (!answered(w)) return T{};
    auto body = std::move(inbox[w].front());
    inbox[w].pop_front();
    EXPECT_TRUE(std::holds_alternative<T>(body)) << "worker " << w << ": another kind of answer";
    return std::holds_alternative<T>(body) ? std::get<T>(std::move(body)) : T{};
  }

  // Requests, returning their answer when it comes at once.
  Assignment next(uint64_t w) {
    event([&](JobState& s, TimePoint t, Effects& fx) { s.next(w, t, fx); });
    return take<Assignment>(w);
  }
  void next_no_answer(uint64_t w) {
    event([&](JobState& s, TimePoint t, Effects& fx) { s.next(w, t, fx); });
    EXPECT_FALSE(answered(w)) << "worker " << w << " was answered at once";
  }
  void send_call(uint64_t w, uint64_t task, uint64_t seqno, Op op, std::string request = {},
                 std::string image_key = {}) {
    if (image_key.empty()) image_key = "img-" + std::to_string(task) + "-" + std::to_string(seqno);
    event([&](JobState& s, TimePoint t, Effects& fx) {
      s.call(CallInfo{.worker_id = w,
                      .task_id = task,
                      .seqno = seqno,
                      .image_key = image_key,
                      .op = op,
                      .request = std::move(request)},
             t, fx);
    });
  }
  CallOutcome call(uint64_t w, uint64_t task, uint64_t seqno, Op op, std::string request = {},
                   std::string image_key = {}) {
    send_call(w, task, seqno, op, std::move(request), std::move(image_key));
    return take<CallOutcome>(w);
  }
  // A finish that does not ask for the next assignment (next() does).
  void finish(uint64_t w, uint64_t task, uint64_t seqno, std::string result, bool failed = false) {
    event([&](JobState& s, TimePoint t, Effects& fx) {
      s.finish(FinishInfo{w, task, seqno, failed, std::move(result), failed ? "boom" : "", false},
               t, fx);
    });
    take<Effects::Finished>(w);
  }
  void exited(uint64_t w, WorkerExit e) {
    event([&](JobState& s, TimePoint t, Effects& fx) { s.worker_exited(w, e, t, fx); });
  }
  void root(SpawnSpec r = spec("root")) {
    event([&](JobState& s, TimePoint t, Effects& fx) { s.spawn_root(std::move(r), t, fx); });
  }

  JobState s;
  TimePoint now{};
  Effects fx;
  std::map<uint64_t, std::deque<std::variant<Assignment, CallOutcome, Effects::Finished>>> inbox;
  std::vector<Effects::Launch> launched;
};

TEST_F(JobStateTest, TheRootStartsOnALaunchedWorker) {
  root(spec("root", {{0, encode(std::string("event"))}}));
  ASSERT_EQ(launched.size(), 1u);
  EXPECT_FALSE(launched[0].on_coordinator);
  Assignment a = next(launched[0].worker);
  EXPECT_EQ(a.kind, Kind::kStart);
  EXPECT_EQ(a.task_id, 1u);
  EXPECT_EQ(a.time_left, 9);
  EXPECT_EQ(fx.started, std::vector<uint64_t>{launched[0].worker});  // the time limit starts
  ASSERT_EQ(a.args.size(), 1u);
  EXPECT_EQ(decode<std::string>(a.args[0]), "event");
}

TEST_F(JobStateTest, ARepeatedCallIsAppliedOnce) {
  root();
  next(1);
  std::string request = spawn_request({spec("child")});
  CallOutcome first = call(1, 1, 0, Op::kSpawn, request);
  CallOutcome again = call(1, 1, 0, Op::kSpawn, request);  // e.g. a retried message
  ASSERT_EQ(first.kind, Outcome::kResult);
  EXPECT_EQ(again.reply, first.reply);
  EXPECT_EQ(decode<std::vector<uint64_t>>(first.reply), std::vector<uint64_t>{2});
  EXPECT_EQ(s.stats().tasks, 2u);  // one child, not two
  EXPECT_EQ(s.stats().duplicate_calls, 1u);
}

TEST_F(JobStateTest, AStaleCallIsAbandonedAndChangesNothing) {
  root();
  next(1);
  call(1, 1, 5, Op::kCheckpoint);
  EXPECT_EQ(call(1, 1, 4, Op::kCheckpoint).kind, Outcome::kAbandon);
  EXPECT_EQ(call(7, 1, 6, Op::kCheckpoint).kind, Outcome::kAbandon);  // not its worker
  EXPECT_EQ(s.task(1)->call->seqno, 5u);
}

TEST_F(JobStateTest, ABlockedCallHoldsItsWorkerForTheGracePeriodThenParks) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  EXPECT_FALSE(answered(1));  // blocked, on its worker
  advance(49ms);
  EXPECT_FALSE(answered(1));
  advance(1ms);
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  EXPECT_EQ(s.stats().parks, 1u);
  // The child's result relaunches the parent from the wait's image.
  ASSERT_EQ(next(2).task_id, 2u);
  finish(2, 2, 0, encode(int64_t{42}));
  Assignment resumed = next(1);
  EXPECT_EQ(resumed.kind, Kind::kResume);
  EXPECT_EQ(resumed.task_id, 1u);
  EXPECT_EQ(resumed.image_key, "img-1-1");
  auto results = decode<std::vector<WaitResult>>(resumed.reply);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(decode<int64_t>(results[0].bytes), 42);
}

// Two children ready, one worker starting (the second and last slot): one
// child has no worker coming, so the blocked parent gives its slot up at
// once rather than after the grace period, and the slot takes that child.
TEST_F(JobStateTest, ABlockedCallParksAtOnceWhenReadyWorkHasNoSlotComing) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("left"), spec("right")}));
  ASSERT_EQ(launched.size(), 2u);  // the root's worker, and one starting for the children
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  EXPECT_EQ(s.stats().parks, 1u);
  EXPECT_EQ(next(1).task_id, 3u);  // newest first
  EXPECT_EQ(next(2).task_id, 2u);
}

TEST_F(JobStateTest, ACallCompletedWithinTheGracePeriodIsAnsweredWhereItWaits) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  next(2);
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  advance(10ms);
  finish(2, 2, 0, encode(int64_t{7}));
  CallOutcome got = take<CallOutcome>(1);  // answered by the child's finish
  EXPECT_EQ(got.kind, Outcome::kResult);
  EXPECT_EQ(decode<int64_t>(decode<std::vector<WaitResult>>(got.reply).at(0).bytes), 7);
  advance(1s);
  EXPECT_FALSE(answered(1));  // one answer per request: no park later
  EXPECT_EQ(s.stats().parks, 0u);
}

TEST_F(JobStateTest, AnInlineImageComesBackWithTheRelaunch) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  event([&](JobState& s, TimePoint t, Effects& fx) {
    s.call(CallInfo{.worker_id = 1,
                    .task_id = 1,
                    .seqno = 1,
                    .image = "the image bytes",
                    .op = Op::kWait,
                    .request = encode(std::vector<uint64_t>{2})},
           t, fx);
  });
  advance(1s);
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  next(2);
  finish(2, 2, 0, encode(int64_t{7}));
  Assignment resumed = next(1);
  EXPECT_EQ(resumed.image, "the image bytes");
  EXPECT_EQ(resumed.image_key, "");
}

TEST_F(JobStateTest, FutureArgumentsAreDataflowEdges) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("a")}));
  call(1, 1, 1, Op::kSpawn, spawn_request({spec("b", {{2, ""}})}));  // b takes a's future
  EXPECT_EQ(next(2).task_id, 2u);
  next_no_answer(3);  // b is not ready
  finish(2, 2, 0, encode(std::string("value of a")));
  Assignment b = take<Assignment>(3);  // handed to the idle worker at once
  ASSERT_EQ(b.task_id, 3u);
  EXPECT_EQ(decode<std::string>(b.args.at(0)), "value of a");
}

TEST_F(JobStateTest, AFailedArgumentFailsItsDependent) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("a"), spec("b", {{2, ""}})}));
  next(2);
  finish(2, 2, 0, "", /*failed=*/true);
  ASSERT_EQ(s.future(3)->state, FutureSlot::State::kFailed);
  EXPECT_NE(s.future(3)->bytes.find("task 3 (b) not started: its argument failed: task 2 (a) "
                                    "failed: boom"),
            std::string::npos)
      << s.future(3)->bytes;
}

TEST_F(JobStateTest, UnknownFuturesAreErrorsNotHangs) {
  root();
  next(1);
  CallOutcome w = call(1, 1, 0, Op::kWait, encode(std::vector<uint64_t>{99}));
  EXPECT_NE(w.error.find("wait on unknown future 99"), std::string::npos) << w.error;
  SpawnSpec bad = spec("bad");
  bad.awaits = {77};
  call(1, 1, 1, Op::kSpawn, spawn_request({bad}));
  ASSERT_EQ(s.future(2)->state, FutureSlot::State::kFailed);
  EXPECT_NE(s.future(2)->bytes.find("awaits unknown future 77"), std::string::npos);
}

TEST_F(JobStateTest, WaitingOnManyFuturesGivesTheirValuesInOrder) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("a"), spec("b"), spec("c")}));
  // Futures may repeat; each is counted where it appears.
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{4, 2, 4, 3}));
  advance(1s);
  take<CallOutcome>(1);        // parked
  for (uint64_t t : {4, 3}) {  // newest first
    ASSERT_EQ(next(2).task_id, t);
    finish(2, t, 0, encode(int64_t(t * 10)));
  }
  EXPECT_EQ(s.stats().parked, 1u);  // still waiting for task 2
  ASSERT_EQ(next(2).task_id, 2u);
  finish(2, 2, 0, encode(int64_t{20}));
  Assignment resumed = next(3);
  ASSERT_EQ(resumed.task_id, 1u);
  std::vector<int64_t> values;
  for (const WaitResult& r : decode<std::vector<WaitResult>>(resumed.reply))
    values.push_back(decode<int64_t>(r.bytes));
  EXPECT_EQ(values, (std::vector<int64_t>{40, 20, 40, 30}));
}

TEST_F(JobStateTest, RendezvousQueueHandsOverOnlyToADequeuer) {
  root();
  next(1);
  uint64_t q = decode<uint64_t>(call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{0})).reply);
  call(1, 1, 1, Op::kSpawn, spawn_request({spec("consumer")}));
  send_call(1, 1, 2, Op::kEnqueue, enqueue_request(q, std::string("item")));
  advance(1s);
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);  // nobody dequeues yet
  next(2);
  CallOutcome got = call(2, 2, 0, Op::kDequeue, encode(q));
  ASSERT_EQ(got.kind, Outcome::kResult);
  EXPECT_EQ(decode<std::string>(got.reply), "item");
  Assignment producer = next(1);  // the enqueue completed: relaunched
  EXPECT_EQ(producer.kind, Kind::kResume);
  EXPECT_EQ(producer.task_id, 1u);
}

// Once no task runs or can run, every live task waits for something no task
// will do: the job fails saying what they wait for and what failed last,
// rather than hanging.
TEST_F(JobStateTest, AJobWhereNoTaskCanRunFailsSayingWhatEachWaitsFor) {
  root();
  next(1);
  uint64_t q = decode<uint64_t>(call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{1})).reply);
  call(1, 1, 1, Op::kSpawn, spawn_request({spec("producer")}));
  next(2);
  finish(2, 2, 0, "", /*failed=*/true);  // the producer fails before it enqueues
  EXPECT_FALSE(s.outcome().done);        // the root still runs
  send_call(1, 1, 2, Op::kDequeue, encode(q));
  ASSERT_TRUE(s.outcome().done);
  EXPECT_TRUE(s.outcome().failed);
  const std::string& why = s.outcome().error;
  EXPECT_NE(why.find("no task can run"), std::string::npos) << why;
  EXPECT_NE(why.find("task 1 (root) dequeues from empty queue " + std::to_string(q)),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("the latest failure: task 2 (producer) failed: boom"), std::string::npos)
      << why;
}

// A put being committed is progress: its task is not stuck.
TEST_F(JobStateTest, APutBeingCommittedIsNotAStall) {
  root();
  next(1);
  send_call(1, 1, 0, Op::kPut, encode(std::pair<std::string, std::string>("out/a", "staged")));
  ASSERT_EQ(fx.commits.size(), 1u);
  EXPECT_FALSE(s.outcome().done);
  event([](JobState& s, TimePoint t, Effects& fx) { s.commit_done(1, 0, "", t, fx); });
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kResult);
  EXPECT_FALSE(s.outcome().done);
}

TEST_F(JobStateTest, AnEnqueueWithoutAQueueIdFailsTheCall) {
  root();
  next(1);
  CallOutcome r = call(1, 1, 0, Op::kEnqueue, "abc");
  ASSERT_EQ(r.kind, Outcome::kResult);
  EXPECT_NE(r.error.find("without a queue id"), std::string::npos) << r.error;
}

TEST_F(JobStateTest, ADeadWorkersTaskRestartsFromItsLastCall) {
  root();
  next(1);
  call(1, 1, 3, Op::kCheckpoint);
  exited(1, WorkerExit{Cause::kCrashed, 0, 9});
  EXPECT_EQ(next(1).kind, Kind::kShutdown);  // a dead worker is never reused
  Assignment again = next(2);
  EXPECT_EQ(again.kind, Kind::kResume);
  EXPECT_EQ(again.image_key, "img-1-3");
  EXPECT_EQ(again.seqno, 3u);
}

TEST_F(JobStateTest, RepeatedDeathsWithoutProgressFailTheTask) {
  root();
  for (uint64_t w = 1; w <= 3; ++w) {
    ASSERT_EQ(next(w).task_id, 1u);
    exited(w, WorkerExit{Cause::kChaosKill, 0, 9});
  }
  ASSERT_TRUE(s.outcome().done);
  EXPECT_TRUE(s.outcome().failed);
  EXPECT_NE(s.outcome().error.find("task 1 (root) failed: its worker died 3 times in a row "
                                   "without progress (last: killed by --chaos-kill)"),
            std::string::npos)
      << s.outcome().error;
}

TEST_F(JobStateTest, ProgressResetsTheDeathCount) {
  root();
  for (uint64_t w = 1; w <= 6; ++w) {
    Assignment a = next(w);
    ASSERT_EQ(a.task_id, 1u) << "attempt " << w;
    call(w, 1, w, Op::kCheckpoint);  // a new call: progress
    exited(w, WorkerExit{Cause::kTimeLimit, 0, 9});
  }
  EXPECT_FALSE(s.outcome().done);
}

TEST_F(JobStateTest, ADeterministicCrashIsRetriedTwiceThenFailsWithItsBacktrace) {
  root();
  for (uint64_t w = 1; w <= 3; ++w) {
    ASSERT_EQ(next(w).task_id, 1u) << "attempt " << w;
    s.crash_report(CrashReport{w, 1, 11, "#0 crasher() at app.cc:12\n#1 main\n"});
    exited(w, WorkerExit{Cause::kCrashed, 0, 11});
  }
  ASSERT_TRUE(s.outcome().done) << "a third crash must fail the task (max_failures is 2 here, "
                                   "so this also checks the crash budget is its own)";
  const std::string& e = s.outcome().error;
  EXPECT_NE(e.find("task 1 (root) crashed 3 times in a row"), std::string::npos) << e;
  EXPECT_NE(e.find("SIGSEGV"), std::string::npos) << e;
  EXPECT_NE(e.find("crasher() at app.cc:12"), std::string::npos) << e;
}

class CrashBudget : public JobStateTest {
 protected:
  static JobStateOptions options() {
    JobStateOptions o = defaults();
    o.max_failures = 10;
    return o;
  }
  CrashBudget() : JobStateTest(options()) {}
};

TEST_F(CrashBudget, SynchronousSignalsFailAfterTwoRetriesOtherDeathsDoNot) {
  root();
  uint64_t w = 1;
  for (int i = 0; i < 5; ++i) {  // SIGKILL (outside), chaos: not deterministic crashes
    ASSERT_EQ(next(w).task_id, 1u);
    exited(w++, WorkerExit{i % 2 ? Cause::kChaosKill : Cause::kCrashed, 0, 9});
  }
  EXPECT_FALSE(s.outcome().done);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(next(w).task_id, 1u);
    exited(w++, WorkerExit{Cause::kCrashed, 0, i == 1 ? 6 : 8});  // SIGABRT, SIGFPE
  }
  ASSERT_TRUE(s.outcome().done);
  EXPECT_NE(s.outcome().error.find("crashed 3 times"), std::string::npos) << s.outcome().error;
}

TEST_F(CrashBudget, DeathsAreCountedByCause) {
  root();
  next(1);
  exited(1, WorkerExit{Cause::kChaosKill, 0, 9});
  next(2);
  exited(2, WorkerExit{Cause::kTimeLimit, 0, 9});
  next(3);
  exited(3, WorkerExit{Cause::kCrashed, 0, 11});
  next(4);
  call(4, 1, 0, Op::kCheckpoint);
  finish(4, 1, 1, encode(nlohmann::json(1)));
  exited(4, WorkerExit{Cause::kChaosKill, 0, 9});  // between tasks: not a death
  JobStats st = s.stats();
  EXPECT_EQ(st.deaths[size_t(Cause::kChaosKill)], 1u);
  EXPECT_EQ(st.deaths[size_t(Cause::kTimeLimit)], 1u);
  EXPECT_EQ(st.deaths[size_t(Cause::kCrashed)], 1u);
  EXPECT_EQ(st.total_deaths(), 3u);
  EXPECT_EQ(st.idle_exits[size_t(Cause::kChaosKill)], 1u);
}

TEST(Summary, SaysHowWorkersDied) {
  JobStats s;
  EXPECT_EQ(describe_deaths(s), "no worker deaths");
  s.deaths[size_t(Cause::kChaosKill)] = 5;
  s.deaths[size_t(Cause::kTimeLimit)] = 1;
  s.deaths[size_t(Cause::kHung)] = 1;
  s.idle_exits[size_t(Cause::kChaosKill)] = 2;
  EXPECT_EQ(describe_deaths(s),
            "7 worker deaths (5 by --chaos-kill, 1 at the time limit, 1 hung); 2 more chaos kills "
            "hit workers between tasks");
}

TEST_F(JobStateTest, AStaleFinishIsIgnored) {
  root();
  next(1);
  call(1, 1, 4, Op::kCheckpoint);
  // A finish from an attempt that passed fewer pause points than the task's
  // recorded call (FinishRequest.seqno) is stale.
  finish(1, 1, 3, encode(nlohmann::json("stale")));
  EXPECT_FALSE(s.outcome().done);
  EXPECT_NE(s.task(1), nullptr);
  finish(1, 1, 5, encode(nlohmann::json("fresh")));
  ASSERT_TRUE(s.outcome().done);
  EXPECT_EQ(decode<nlohmann::json>(s.outcome().result), "fresh");
}

TEST_F(JobStateTest, WorkersThatNeverStartFailTheJobInsteadOfLoopingForever) {
  root();
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(launched.empty());
    exited(launched.back().worker, WorkerExit{Cause::kExited, 1, 0});
  }
  ASSERT_TRUE(s.outcome().done);
  EXPECT_NE(s.outcome().error.find("5 workers in a row died before asking for work (last: "
                                   "exited with status 1)"),
            std::string::npos)
      << s.outcome().error;
  EXPECT_EQ(launched.size(), 5u);  // and no more were launched
}

TEST_F(JobStateTest, AFailedLaunchIsRetriedAndFiveInARowFailTheJob) {
  root();
  event([&](JobState& s, TimePoint t, Effects& fx) {
    s.launch_failed(launched.back().worker, "throttled", t, fx);
  });
  ASSERT_EQ(launched.size(), 2u);  // another one
  EXPECT_FALSE(s.outcome().done);
  for (int i = 0; i < 4; ++i)
    event([&](JobState& s, TimePoint t, Effects& fx) {
      s.launch_failed(launched.back().worker, "no such file", t, fx);
    });
  ASSERT_TRUE(s.outcome().done);
  EXPECT_NE(s.outcome().error.find("cannot start a worker (5 attempts in a row failed; last: no "
                                   "such file)"),
            std::string::npos)
      << s.outcome().error;
}

TEST_F(JobStateTest, OnCoordinatorTasksUseTheirOwnPoolWithoutATimeLimit) {
  root();
  next(1);
  SpawnSpec side = spec("side effect");
  side.on_coordinator = true;
  call(1, 1, 0, Op::kSpawn, spawn_request({side}));
  ASSERT_EQ(launched.size(), 2u);
  EXPECT_TRUE(launched[1].on_coordinator);
  Assignment a = next(launched[1].worker);
  EXPECT_EQ(a.task_id, 2u);
  EXPECT_EQ(a.time_left, 0);
}

// Ready tasks run newest first (a task's children before its siblings), so a
// recursive job keeps few tasks parked at once.
TEST_F(JobStateTest, ReadyTasksRunNewestFirst) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("a"), spec("b"), spec("c")}));
  std::vector<uint64_t> order;
  for (int i = 0; i < 3; ++i) {
    Assignment a = next(2);
    order.push_back(a.task_id);
    if (i == 0) call(2, a.task_id, 0, Op::kSpawn, spawn_request({spec("grandchild")}));
    finish(2, a.task_id, 1, encode(int64_t{0}));
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{4, 5, 3}));  // c, c's child, then b
}

TEST_F(JobStateTest, AnIdleWorkerIsAnsweredIdleAfterThePollPeriod) {
  root();
  next(1);
  next_no_answer(2);
  advance(999ms);
  EXPECT_FALSE(answered(2));
  advance(1ms);
  EXPECT_EQ(take<Assignment>(2).kind, Kind::kIdle);
}

class OneWorker : public JobStateTest {
 protected:
  static JobStateOptions options() {
    JobStateOptions o = defaults();
    o.max_workers = 1;
    o.grace = 10s;
    return o;
  }
  OneWorker() : JobStateTest(options()) {}
};

TEST_F(OneWorker, ABlockedCallParksAtOnceWhenReadyWorkWaitsForItsSlot) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  // The child is ready, and the only worker slot is the parent's.
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  EXPECT_EQ(next(1).task_id, 2u);
}

TEST_F(JobStateTest, ASilentWorkerIsKilledAndItsTaskRestarted) {
  root();
  next(1);
  call(1, 1, 0, Op::kCheckpoint);
  for (int i = 0; i < 10; ++i) {  // heartbeats, for a while
    advance(500ms);
    s.heartbeat(1, now);
  }
  EXPECT_TRUE(fx.hung.empty());
  advance(4s);  // silent, but not long enough
  EXPECT_TRUE(fx.hung.empty());
  advance(2500ms);
  EXPECT_EQ(fx.hung, std::vector<uint64_t>{1});
  EXPECT_EQ(s.stats().deaths[size_t(Cause::kHung)], 1u);
  Assignment again = next(2);
  EXPECT_EQ(again.task_id, 1u);
  EXPECT_EQ(again.kind, Kind::kResume);
  exited(1, WorkerExit{Cause::kHung, 0, 9});  // the backend's report comes later: no change
  EXPECT_EQ(s.stats().total_deaths(), 1u);
}

TEST_F(JobStateTest, AFinishedTaskLeavesOnlyItsResult) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  next(2);
  ASSERT_NE(s.task(2), nullptr);
  finish(2, 2, 0, encode(int64_t{5}));
  EXPECT_EQ(s.task(2), nullptr);
  EXPECT_EQ(s.future(2)->state, FutureSlot::State::kDone);
  EXPECT_EQ(decode<int64_t>(s.future(2)->bytes), 5);
}

TEST_F(JobStateTest, ReplacedAndFinishedImagesAreDiscarded) {
  root();
  next(1);
  call(1, 1, 0, Op::kCheckpoint, {}, "a.kpk");
  call(1, 1, 1, Op::kCheckpoint, {}, "b.kpk");
  EXPECT_EQ(fx.discarded, std::vector<std::string>{"a.kpk"});
  finish(1, 1, 2, encode(nlohmann::json(0)));
  EXPECT_EQ(fx.discarded, std::vector<std::string>{"b.kpk"});
}

TEST_F(JobStateTest, ChangesNameWhatTheJournalMustRecord) {
  root();
  EXPECT_EQ(fx.changes.tasks, (std::vector<uint64_t>{1, 1}));  // created, made ready
  EXPECT_TRUE(fx.changes.counters);                            // a worker was launched
  next(1);
  EXPECT_TRUE(fx.changes.empty());  // handing out work changes nothing durable
  call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{1}));
  EXPECT_EQ(fx.changes.progress, (std::vector<uint64_t>{1, 1}));  // recorded, completed
  EXPECT_EQ(fx.changes.queues, std::vector<uint64_t>{1});
  EXPECT_TRUE(fx.changes.counters);  // the next queue id
  call(1, 1, 1, Op::kEnqueue, enqueue_request(uint64_t{1}, std::string("x")));
  EXPECT_EQ(fx.changes.queues, std::vector<uint64_t>{1});
  EXPECT_EQ(s.queue(1)->items.size(), 1u);
  finish(1, 1, 2, encode(nlohmann::json(0)));
  EXPECT_EQ(fx.changes.resolved, std::vector<uint64_t>{1});
  EXPECT_TRUE(fx.changes.job);
}

// What a journal keeps is enough to continue: a job restored from its
// durable parts alone (no worker, no timer) goes on where it was.
TEST_F(JobStateTest, ARestoredJobContinuesWhereItWas) {
  root();
  next(1);
  uint64_t q = decode<uint64_t>(call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{0})).reply);
  call(1, 1, 1, Op::kSpawn, spawn_request({spec("a"), spec("b"), spec("c", {{2, ""}})}));
  next(2);  // b: the newest ready task (c waits for a)
  // Task 3 (b) blocks in a dequeue, parked; task 1 waits on 2 and 4.
  send_call(2, 3, 0, Op::kDequeue, encode(q));
  advance(1s);
  take<CallOutcome>(2);
  send_call(1, 1, 2, Op::kWait, encode(std::vector<uint64_t>{2, 4}));
  advance(1s);
  take<CallOutcome>(1);
  // What the journal would hold.
  DurableJob d;
  for (uint64_t id = 1; id <= 4; ++id) {
    if (const TaskDurable* t = s.task(id))
      d.tasks.push_back(*t);
    else
      d.futures.emplace_back(id, *s.future(id));
  }
  d.queues.emplace_back(q, *s.queue(q));
  d.next_queue = s.next_queue_id();
  d.next_worker = s.next_worker_id();
  JobState again(defaults());
  Effects e;
  again.restore(std::move(d), now, e);
  EXPECT_EQ(again.stats().tasks, 4u);
  EXPECT_EQ(again.stats().parked, 2u);   // 1 (wait) and 3 (dequeue)
  EXPECT_EQ(again.stats().ready, 1u);    // 2 (a)
  EXPECT_EQ(again.stats().waiting, 1u);  // 4 (c), on a's future
  ASSERT_FALSE(e.launches.empty());
  EXPECT_GE(e.launches[0].worker, s.next_worker_id());  // fresh worker ids
  // a runs, c follows with a's value; an enqueue wakes b; 1 resumes last.
  auto run = [&](uint64_t w) {
    e.clear();
    again.next(w, now, e);
    return std::get<Assignment>(e.answers.at(0).body);
  };
  uint64_t w = e.launches[0].worker;
  Assignment a = run(w);
  ASSERT_EQ(a.task_id, 2u);
  EXPECT_EQ(a.kind, Assignment::Kind::kStart);
  e.clear();
  again.finish(FinishInfo{w, 2, 0, false, encode(std::string("A")), "", false}, now, e);
  Assignment c = run(w);
  ASSERT_EQ(c.task_id, 4u);
  EXPECT_EQ(decode<std::string>(c.args.at(0)), "A");
  e.clear();
  again.call(CallInfo{.worker_id = w,
                      .task_id = 4,
                      .seqno = 0,
                      .op = Op::kEnqueue,
                      .request = enqueue_request(q, std::string("item"))},
             now, e);
  e.clear();
  again.finish(FinishInfo{w, 4, 1, false, encode(std::string("C")), "", false}, now, e);
  std::vector<uint64_t> resumed;
  for (int i = 0; i < 2; ++i) {
    Assignment r = run(w);
    EXPECT_EQ(r.kind, Assignment::Kind::kResume);
    resumed.push_back(r.task_id);
    if (r.task_id == 3) EXPECT_EQ(decode<std::string>(r.reply), "item");
    if (r.task_id == 1) {
      auto results = decode<std::vector<WaitResult>>(r.reply);
      EXPECT_EQ(decode<std::string>(results.at(0).bytes), "A");
      EXPECT_EQ(decode<std::string>(results.at(1).bytes), "C");
    }
    e.clear();
    again.finish(FinishInfo{w, r.task_id, r.seqno + 1, false, encode(nlohmann::json(1)), "", false},
                 now, e);
  }
  std::sort(resumed.begin(), resumed.end());
  EXPECT_EQ(resumed, (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE(again.outcome().done);
}

TEST_F(JobStateTest, ShutdownParksBlockedCallsAndEndsIdleWorkers) {
  root();
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  next(2);
  next_no_answer(3);
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  event([](JobState& s, TimePoint t, Effects& fx) { s.shutdown(t, fx); });
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  EXPECT_EQ(take<Assignment>(3).kind, Kind::kShutdown);
  EXPECT_EQ(next(1).kind, Kind::kShutdown);
}

// The counts behind the summary line, the live view and the cost estimate,
// from a job whose root parks on its child: times are the events'.
TEST_F(JobStateTest, StatsCountCheckpointsInvocationsBilledTimeAndParkedWaits) {
  auto call_with_image = [&](uint64_t seqno, Op op, std::string request, std::string image_key,
                             std::string image, uint64_t bytes) {
    event([&](JobState& s, TimePoint t, Effects& fx) {
      s.call(CallInfo{.worker_id = 1,
                      .task_id = 1,
                      .seqno = seqno,
                      .image_key = image_key,
                      .image = image,
                      .op = op,
                      .request = std::move(request),
                      .image_bytes = bytes,
                      .capture_us = 10,
                      .write_us = 20},
             t, fx);
    });
  };
  root();
  next(1);  // invocation 1, at 0
  // An inline image (its size is the image's) and a stored chain of two links.
  call_with_image(0, Op::kSpawn, spawn_request({spec("child")}), "", "abcd", 0);
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kResult);
  call_with_image(1, Op::kWait, encode(std::vector<uint64_t>{2}), "k1\nk2", "", 5000);
  advance(50ms);  // the grace period: parks at 50 ms
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  ASSERT_EQ(next(2).task_id, 2u);  // invocation 2, at 50 ms
  now += 2500us;
  finish(2, 2, 0, encode(int64_t{7}));  // at 52.5 ms: billed 3 ms; the wait took 2.5 ms
  Assignment resumed = next(1);         // invocation 3, from the stored chain
  ASSERT_EQ(resumed.kind, Kind::kResume);
  now += 7500us;
  finish(1, 1, 2, encode(int64_t{1}));  // at 60 ms: billed 8 ms

  JobStats st = s.stats();
  EXPECT_EQ(st.calls, 2u);
  EXPECT_EQ(st.calls_by_op[size_t(Op::kSpawn)], 1u);
  EXPECT_EQ(st.calls_by_op[size_t(Op::kWait)], 1u);
  EXPECT_EQ(st.calls_by_op[size_t(Op::kEnqueue)], 0u);
  EXPECT_STREQ(op_name(Op::kWait), "wait");
  EXPECT_EQ(st.checkpoints, 2u);
  EXPECT_EQ(st.checkpoint_bytes, 5004u);
  EXPECT_EQ(st.stored_checkpoints, 1u);
  EXPECT_EQ(st.image_reads, 2u);  // both links of the chain
  EXPECT_EQ(st.invocations, 3u);
  EXPECT_EQ(st.billed_ms, 50u + 3 + 8);
  EXPECT_EQ(st.blocked_wait_ms, 2u);  // 2.5 ms, in whole ms
}

// on_coordinator tasks run beside the coordinator: no platform bills them.
TEST_F(JobStateTest, OnCoordinatorInvocationsAreNotBilled) {
  SpawnSpec r = spec("root");
  r.on_coordinator = true;
  root(r);
  ASSERT_EQ(launched.size(), 1u);
  ASSERT_TRUE(launched[0].on_coordinator);
  next(launched[0].worker);
  now += 5ms;
  finish(launched[0].worker, 1, 0, encode(int64_t{1}));
  EXPECT_EQ(s.stats().invocations, 0u);
  EXPECT_EQ(s.stats().billed_ms, 0u);
}

TEST_F(JobStateTest, TracingRecordsOneSpanPerInvocation) {
  JobStateOptions o = defaults();
  o.tracing = true;
  JobState traced(o);
  Effects e;
  traced.spawn_root(spec("root"), now, e);
  e.clear();
  traced.next(1, now, e);
  e.clear();
  traced.finish(FinishInfo{1, 1, 0, false, encode(nlohmann::json(1)), "", false}, now + 3ms, e);
  ASSERT_EQ(e.spans.size(), 1u);
  EXPECT_EQ(e.spans[0].name, "root");
  EXPECT_STREQ(e.spans[0].kind, "start");
  EXPECT_EQ(e.spans[0].outcome, "finished");
  EXPECT_EQ(e.spans[0].end - e.spans[0].start, 3ms);
}

// ---------------------------------------------------------------- views

class JobStateViews : public JobStateTest {
 protected:
  static JobStateOptions options() {
    JobStateOptions o = defaults();
    o.observe = true;
    return o;
  }
  JobStateViews() : JobStateTest(options()) {}
};

TEST_F(JobStateViews, TasksHaveParentsPhasesAndWhyTheyWait) {
  root(spec("handler"));
  next(1);
  now += 1s;
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("left"), spec("")}));
  advance(50ms);
  // Parked at once: two children ready, one worker starting, no slot left.
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);

  TaskPage all = s.task_page(TaskQuery{});
  EXPECT_EQ(all.total, 3u);
  ASSERT_EQ(all.tasks.size(), 3u);
  EXPECT_EQ(all.tasks[0].name, "handler");
  EXPECT_EQ(all.tasks[0].parent, 0u);
  EXPECT_EQ(all.tasks[0].phase, TaskPhase::kParked);
  EXPECT_EQ(all.tasks[0].why, "awaits task 2 task 3");
  EXPECT_EQ(all.tasks[1].name, "left");
  EXPECT_EQ(all.tasks[1].parent, 1u);
  EXPECT_EQ(all.tasks[1].phase, TaskPhase::kReady);
  EXPECT_EQ(all.tasks[2].fn, 0x1000u);        // unnamed: a viewer names it after its function
  EXPECT_TRUE(all.tasks[0].history.empty());  // pages carry no histories

  // Paging and filters.
  TaskPage second = s.task_page(TaskQuery{.offset = 1, .limit = 1});
  EXPECT_EQ(second.total, 3u);
  ASSERT_EQ(second.tasks.size(), 1u);
  EXPECT_EQ(second.tasks[0].id, 2u);
  TaskPage ready = s.task_page(TaskQuery{.phase = TaskPhase::kReady});
  EXPECT_EQ(ready.total, 2u);
  TaskPage ready_second = s.task_page(TaskQuery{.phase = TaskPhase::kReady, .offset = 1});
  ASSERT_EQ(ready_second.tasks.size(), 1u);
  EXPECT_EQ(ready_second.tasks[0].id, 3u);

  // The root's invocation: started at 0 s, parked 1.05 s later.
  std::optional<TaskView> r = s.task_view(1);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->history.size(), 1u);
  EXPECT_EQ(r->history[0].worker, 1u);
  EXPECT_FALSE(r->history[0].resume);
  EXPECT_DOUBLE_EQ(r->history[0].start, 0);
  EXPECT_NEAR(r->history[0].end, 1.05, 1e-9);
  EXPECT_EQ(r->history[0].outcome, "park");
  EXPECT_EQ(r->history[0].checkpoints, 2u);  // the spawn's and the wait's images
  EXPECT_FALSE(s.task_view(4));

  // A child's worker dies: it is retried, and says why.
  ASSERT_EQ(next(2).task_id, 3u);  // newest first
  exited(2, WorkerExit{Cause::kChaosKill, 0, 9});
  TaskPage retrying = s.task_page(TaskQuery{.retrying = true});
  ASSERT_EQ(retrying.tasks.size(), 1u);
  EXPECT_EQ(retrying.tasks[0].id, 3u);
  EXPECT_EQ(retrying.tasks[0].failures, 1u);
  EXPECT_NE(retrying.tasks[0].why.find("killed by --chaos-kill"), std::string::npos)
      << retrying.tasks[0].why;
}

TEST_F(JobStateViews, FinishedTasksStayInTheTableAndEventsAreRecent) {
  root(spec("handler"));
  next(1);
  call(1, 1, 0, Op::kSpawn, spawn_request({spec("child")}));
  ASSERT_EQ(next(2).task_id, 2u);
  finish(2, 2, 0, encode(int64_t{1}), /*failed=*/true);
  std::optional<TaskView> child = s.task_view(2);
  ASSERT_TRUE(child);
  EXPECT_EQ(child->phase, TaskPhase::kFailed);
  EXPECT_NE(child->why.find("boom"), std::string::npos);
  ASSERT_EQ(child->history.size(), 1u);
  EXPECT_EQ(child->history[0].outcome, "failed");
  EXPECT_EQ(s.task_page(TaskQuery{.phase = TaskPhase::kFailed}).total, 1u);

  JobView v = s.view(now, 3);
  EXPECT_EQ(v.state, JobView::State::kRunning);
  EXPECT_TRUE(v.observed);
  EXPECT_EQ(v.workers_busy, 1u);   // worker 1 runs the root
  ASSERT_EQ(v.recent.size(), 3u);  // the latest three, oldest first
  EXPECT_EQ(v.recent[0].what, "spawned by task 1");
  EXPECT_EQ(v.recent[1].what, "started on worker 2");
  EXPECT_EQ(v.recent[2].task, 2u);
  EXPECT_EQ(v.recent[2].name, "child");
  EXPECT_EQ(v.recent[2].what.rfind("failed: ", 0), 0u) << v.recent[2].what;
}

TEST_F(JobStateTest, WithoutObserveNothingIsKeptForViews) {
  root(spec("handler"));
  next(1);
  EXPECT_EQ(s.task_page(TaskQuery{}).total, 0u);
  EXPECT_FALSE(s.task_view(1));
  JobView v = s.view(now, 10);
  EXPECT_FALSE(v.observed);
  EXPECT_TRUE(v.recent.empty());
  EXPECT_EQ(v.stats.running, 1u);  // the counts are there all the same
}

// A coordinator kept up after its job (the live view's --ui-linger) does
// not take its departing workers for hung ones.
TEST_F(JobStateTest, NoWorkerCountsAsHungOnceTheJobIsShutDown) {
  root();
  next(1);
  finish(1, 1, 0, encode(nlohmann::json(1)));
  event([](JobState& s, TimePoint t, Effects& fx) { s.shutdown(t, fx); });
  for (int i = 0; i < 2; ++i) {
    advance(10s);  // past the liveness timeout since worker 1 was last heard
    EXPECT_TRUE(fx.hung.empty());
  }
  EXPECT_EQ(s.stats().idle_exits[size_t(Cause::kHung)], 0u);
  EXPECT_EQ(s.stats().total_deaths(), 0u);
}

class Traced : public JobStateTest {
 protected:
  static JobStateOptions options() {
    JobStateOptions o = defaults();
    o.tracing = true;
    return o;
  }
  Traced() : JobStateTest(options()) {}
  // The marks of the last event, kept.
  void keep() { marks.insert(marks.end(), fx.marks.begin(), fx.marks.end()); }
  std::vector<TraceMark> of(TraceMark::Kind kind) const {
    std::vector<TraceMark> v;
    for (const TraceMark& m : marks)
      if (m.kind == kind) v.push_back(m);
    return v;
  }
  std::vector<TraceMark> marks;
};

// What the trace shows besides invocations, tied to invocations by id: a
// checkpoint with its costs, the spawn arrow to the child's first
// invocation, the park, the wake arrow from the child's finish to the
// parent's relaunch, and the relaunch.
TEST_F(Traced, MarksCheckpointsParksRelaunchesAndArrows) {
  root();
  next(1);  // invocation 1: the root
  now += 1ms;
  event([&](JobState& s, TimePoint t, Effects& fx) {
    s.call(CallInfo{.worker_id = 1,
                    .task_id = 1,
                    .seqno = 0,
                    .image_key = "k0",
                    .op = Op::kSpawn,
                    .request = spawn_request({spec("child")}),
                    .image_bytes = 100,
                    .capture_us = 10,
                    .write_us = 20},
           t, fx);
  });
  keep();
  take<CallOutcome>(1);
  now += 1ms;
  ASSERT_EQ(next(2).task_id, 2u);  // invocation 2: the child
  keep();
  now += 1ms;
  send_call(1, 1, 1, Op::kWait, encode(std::vector<uint64_t>{2}));
  keep();
  advance(50ms);  // parks
  keep();
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kPark);
  now += 5ms;
  finish(2, 2, 0, encode(int64_t{7}));
  keep();
  ASSERT_EQ(next(1).kind, Kind::kResume);  // invocation 3: the root again
  keep();

  auto checkpoints = of(TraceMark::Kind::kCheckpoint);
  ASSERT_EQ(checkpoints.size(), 2u);  // the spawn's and the wait's
  EXPECT_EQ(checkpoints[0].invocation, 1u);
  EXPECT_EQ(checkpoints[0].bytes, 100u);
  EXPECT_EQ(checkpoints[0].capture_us, 10u);
  EXPECT_EQ(checkpoints[0].write_us, 20u);
  EXPECT_TRUE(checkpoints[0].stored);
  EXPECT_EQ(checkpoints[0].at, TimePoint{} + 1ms);
  auto parks = of(TraceMark::Kind::kPark);
  ASSERT_EQ(parks.size(), 1u);
  EXPECT_EQ(parks[0].invocation, 1u);
  EXPECT_EQ(parks[0].op, Op::kWait);
  auto flows = of(TraceMark::Kind::kFlow);
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_STREQ(flows[0].flow, "spawn");
  EXPECT_EQ(flows[0].from, 1u);
  EXPECT_EQ(flows[0].invocation, 2u);
  EXPECT_EQ(flows[0].since, TimePoint{} + 1ms);
  EXPECT_STREQ(flows[1].flow, "wake");
  EXPECT_EQ(flows[1].from, 2u);
  EXPECT_EQ(flows[1].invocation, 3u);
  auto relaunches = of(TraceMark::Kind::kRelaunch);
  ASSERT_EQ(relaunches.size(), 1u);
  EXPECT_EQ(relaunches[0].invocation, 3u);
  EXPECT_EQ(relaunches[0].task, 1u);
}

TEST_F(Traced, AQueueWaitLastsFromTheBlockedCallToItsCompletion) {
  root();
  next(1);
  uint64_t q = decode<uint64_t>(call(1, 1, 0, Op::kMakeQueue, encode(uint64_t{0})).reply);
  call(1, 1, 1, Op::kSpawn, spawn_request({spec("producer")}));
  ASSERT_EQ(next(2).task_id, 2u);
  now += 1ms;
  send_call(1, 1, 2, Op::kDequeue, encode(q));  // blocks: nothing to take
  keep();
  EXPECT_TRUE(of(TraceMark::Kind::kQueueWait).empty());  // not over yet
  now += 3ms;
  // The producer's enqueue meets the waiting dequeue (a rendezvous), and
  // does not wait itself.
  EXPECT_EQ(call(2, 2, 0, Op::kEnqueue, enqueue_request(q, int64_t{5})).kind, Outcome::kResult);
  keep();
  EXPECT_EQ(take<CallOutcome>(1).kind, Outcome::kResult);
  auto waits = of(TraceMark::Kind::kQueueWait);
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0].task, 1u);
  EXPECT_EQ(waits[0].queue, q);
  EXPECT_EQ(waits[0].op, Op::kDequeue);
  EXPECT_EQ(waits[0].since, TimePoint{} + 1ms);
  EXPECT_EQ(waits[0].at, TimePoint{} + 4ms);
}

}  // namespace
}  // namespace kappa::detail
