// LocalBackend against stand-in workers: small shell scripts that exit,
// crash, or wait, so that what the backend reports (and why) can be checked
// without a coordinator.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "backends/backend.h"
#include "kappa/error.h"
#include "support/subprocess.h"
#include "util/chaos.h"

namespace kappa::detail {
namespace {

using namespace std::chrono_literals;
using Cause = WorkerExit::Cause;

class Exits final : public WorkerEvents {
 public:
  void worker_exited(uint64_t worker, WorkerExit exit) override {
    std::lock_guard lock(mu_);
    exits_[worker] = exit;
    cv_.notify_all();
  }
  /// Waits (up to 10 s: a hang, not a timing) for the worker's exit.
  std::optional<WorkerExit> wait(uint64_t worker) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 10s, [&] { return exits_.count(worker) > 0; })) return std::nullopt;
    return exits_[worker];
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return exits_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, WorkerExit> exits_;
};

class LocalBackendTest : public ::testing::Test {
 protected:
  // A stand-in worker: runs `body` (sh), with the worker's arguments in "$@".
  std::string script(const std::string& body) {
    std::string path = dir / "worker.sh";
    testing::write_file(path, "#!/bin/sh\n" + body + "\n");
    chmod(path.c_str(), 0755);
    return path;
  }
  std::unique_ptr<Backend> backend(const std::string& exe, double time_limit = 0,
                                   double chaos = 0) {
    BackendConfig c;
    c.executable = exe;
    c.worker_args = {"--store", "file:///nowhere"};
    c.time_limit = time_limit;
    c.chaos_kill = chaos;
    c.seed = 7;
    return make_backend("local", c, &exits);
  }
  testing::TempDir dir;
  Exits exits;
};

TEST_F(LocalBackendTest, ReportsAnExitWithItsStatusAndPassesTheArguments) {
  auto b = backend(script("echo \"$@\" > " + dir / "args; exit 3"));
  b->launch_worker(5, false);
  auto e = exits.wait(5);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kExited);
  EXPECT_EQ(e->status, 3);
  EXPECT_EQ(testing::read_file(dir / "args"), "worker --worker-id 5 --watch-parent " +
                                                  std::to_string(getpid()) +
                                                  " --store file:///nowhere\n");
}

TEST_F(LocalBackendTest, ACrashIsReportedWithItsSignal) {
  auto b = backend(script("kill -SEGV $$"));
  b->launch_worker(1, false);
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kCrashed);
  EXPECT_EQ(e->signal, SIGSEGV);
  EXPECT_TRUE(e->deterministic_crash());
  EXPECT_EQ(e->describe(), "killed by SIGSEGV (Segmentation fault)");
}

TEST_F(LocalBackendTest, AnInvocationIsKilledAtItsTimeLimit) {
  auto b = backend(script("exec sleep 60"), /*time_limit=*/0.2);
  b->launch_worker(1, false);
  b->invocation_started(1);
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kTimeLimit);
  EXPECT_EQ(e->signal, SIGKILL);
}

TEST_F(LocalBackendTest, AnEndedInvocationIsNotKilled) {
  auto b = backend(script("exec sleep 1"), /*time_limit=*/0.2);
  b->launch_worker(1, false);
  b->invocation_started(1);
  b->invocation_ended(1);  // the time limit is off again
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kExited);
}

TEST_F(LocalBackendTest, OnCoordinatorWorkersHaveNoTimeLimitAndNoChaos) {
  auto b = backend(script("exec sleep 0.5"), /*time_limit=*/0.1, /*chaos=*/1);
  EXPECT_EQ(b->time_limit(true), 0);
  EXPECT_EQ(b->time_limit(false), 0.1);
  b->launch_worker(1, /*on_coordinator=*/true);
  b->invocation_started(1);
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kExited);
  EXPECT_EQ(b->chaos_kills(), 0u);
}

TEST_F(LocalBackendTest, ChaosKillsAreReportedAsSuch) {
  auto b = backend(script("exec sleep 60"), /*time_limit=*/0, /*chaos=*/1);
  b->launch_worker(1, false);
  b->invocation_started(1);  // no invocation seen yet: killed within a second
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kChaosKill);
  EXPECT_EQ(b->chaos_kills(), 1u);
}

// The window a chaos kill is drawn in: twice the mean invocation once one has
// ended, a second before (a job's first, long invocation can be killed after
// its first checkpoint), never past the time left or under the floor.
TEST(ChaosKillSpan, TwiceTheMeanOrASecondBeforeAnyEndedWithinTheTimeLeft) {
  EXPECT_DOUBLE_EQ(chaos_kill_span(0, 0, 0.001), 1.0);
  EXPECT_DOUBLE_EQ(chaos_kill_span(0, 0.25, 0.001), 0.25);
  EXPECT_DOUBLE_EQ(chaos_kill_span(0.2, 0, 0.001), 0.4);
  EXPECT_DOUBLE_EQ(chaos_kill_span(0.2, 0.3, 0.001), 0.3);
  EXPECT_DOUBLE_EQ(chaos_kill_span(0.0001, 0, 0.05), 0.05);
}

TEST_F(LocalBackendTest, AHungWorkerIsKilledWhenAskedWithThatCause) {
  auto b = backend(script("exec sleep 60"));
  b->launch_worker(1, false);
  b->kill_worker(1, Cause::kHung);
  auto e = exits.wait(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cause, Cause::kHung);
}

TEST_F(LocalBackendTest, AMissingExecutableIsALaunchError) {
  auto b = backend(dir / "no-such-binary");
  try {
    b->launch_worker(1, false);
    FAIL() << "launched nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-binary"), std::string::npos) << e.what();
  }
}

TEST_F(LocalBackendTest, ShutdownKillsWorkersAndReportsNothingAfter) {
  auto b = backend(script("exec sleep 60"));
  b->launch_worker(1, false);
  b->launch_worker(2, false);
  auto started = std::chrono::steady_clock::now();
  b->shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);  // not the workers' 60 s
  EXPECT_EQ(exits.count(), 0u);
  EXPECT_THROW(b->launch_worker(3, false), Error);
}

TEST(BackendFactory, NamesTheBackendsItKnows) {
  EXPECT_EQ(backend_names(), (std::vector<std::string>{"local", "slurm", "aws"}));
  try {
    make_backend("mainframe", BackendConfig{}, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(
        e.what(),
        "backend 'mainframe' is not available in this build (supported: local, slurm, aws)");
  }
}

}  // namespace
}  // namespace kappa::detail
