// The reference implementation's semantic test programs (semantics_app.cc),
// each run end to end with `APP run`: normally, with --chaos-kill 0.3, with a
// --time-limit of one second, and under chaos over the gRPC transport. Every
// run must give the exact result.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/semantic_programs.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

struct Mode {
  std::string name;
  std::vector<std::string> args;
};

std::vector<Mode> modes() {
  return {{"normal", {}},
          {"chaos", {"--chaos-kill", "0.3"}},
          {"time_limit", {"--time-limit", "1"}},
          // The gRPC transport (the others use the local Unix socket).
          {"grpc_chaos", {"--listen", "127.0.0.1:0", "--chaos-kill", "0.3"}}};
}

class Semantics : public ::testing::TestWithParam<std::tuple<Program, Mode>> {};

TEST_P(Semantics, ExactResult) {
  const auto& [program, mode] = GetParam();
  std::vector<std::string> argv = {SEMANTICS_APP, "run", "--event", program.event.dump()};
  argv.insert(argv.end(), mode.args.begin(), mode.args.end());
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), program.expected()) << r.err;
}

TEST_P(Semantics, AwaitsStartsAfterTheAwaitedTask) {
  const auto& mode = std::get<1>(GetParam());
  if (std::get<0>(GetParam()).name != "fib") return;  // once per mode
  std::vector<std::string> argv = {SEMANTICS_APP, "run", "--event", R"({"program":"awaits"})"};
  argv.insert(argv.end(), mode.args.begin(), mode.args.end());
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).value("ordered", false), true) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Programs, Semantics,
                         ::testing::Combine(::testing::ValuesIn(programs()),
                                            ::testing::ValuesIn(modes())),
                         [](const auto& info) {
                           return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
                         });

TEST(Failures, ChildExceptionReachesTheParentAsTaskFailed) {
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"child_failure"})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).value("caught", ""),
            "task 2 (thrower) failed: child says no to 7");
}

TEST(Failures, UncaughtFailureFailsTheJobNamingTheTask) {
  TempDir dir;
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"uncaught_child_failure"})",
                   "--store", "file://" + dir / "store"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("task 1 (handler) failed: task 2 (thrower) failed: child says no to 3"),
            std::string::npos)
      << r.err;
  // Every image was small enough to travel inline: none was left behind, and
  // the job does not claim to keep any.
  EXPECT_EQ(r.err.find("checkpoints kept"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "store"));
}

// The job fails while a task holds an image in the store: the image stays,
// and the job says where.
TEST(Failures, AFailedJobKeepsTheImagesOfItsUnfinishedTasks) {
  TempDir dir;
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"large_state","fail":true})",
                   "--store", "file://" + dir / "store"});
  EXPECT_EQ(r.exit_code, 1);
  size_t at = r.err.find("checkpoints kept in file://" + dir / "store" + "/");
  ASSERT_NE(at, std::string::npos) << r.err;
  size_t images = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir / "store"))
    images += e.path().extension() == ".kpk";
  EXPECT_GE(images, 1u);
  // `inspect` of where it says they are verifies each of them.
  size_t from = at + std::string("checkpoints kept in ").size();
  std::string kept = r.err.substr(from, r.err.find_first_of("\n ", from) - from);
  ProcessResult inspected = run_process({SEMANTICS_APP, "inspect", kept});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  size_t lines = 0;
  std::istringstream out(inspected.out);
  for (std::string line; std::getline(out, line); ++lines) {
    nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.value("file", "").starts_with(kept)) << line;
    EXPECT_GE(j.value("raw_bytes", uint64_t(0)), uint64_t(1) << 20) << line;  // the holder's state
  }
  EXPECT_EQ(lines, images);
}

// A default store (in /dev/shm) of a job that failed with nothing in it is
// removed, rather than left empty.
TEST(Failures, AFailedJobLeavesNoEmptyDefaultStore) {
  // The job says where its store is at debug level: other tests running
  // meanwhile make job directories of their own in /dev/shm.
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"uncaught_child_failure"})"},
                  {"KAPPA_LOG_LEVEL=debug"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find("checkpoints kept"), std::string::npos) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("checkpoints in file://(\\S+),"))) << r.err;
  EXPECT_TRUE(m[1].str().starts_with("/dev/shm/kappa-job-")) << m[1];
  EXPECT_FALSE(std::filesystem::exists(m[1].str())) << m[1] << " was left behind";
}

// A deterministic crash (here SIGABRT) is retried twice, then fails the task
// with the signal and the worker's backtrace.
TEST(Failures, ACrashingTaskFailsAfterTwoRetriesWithItsBacktrace) {
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--event", R"({"program":"crash_child"})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string caught = nlohmann::json::parse(r.out).value("caught", "");
  EXPECT_NE(caught.find("task 2 (crasher) crashed 3 times in a row (last: killed by SIGABRT"),
            std::string::npos)
      << caught;
  EXPECT_NE(caught.find("backtrace:\n"), std::string::npos) << caught;
  EXPECT_NE(caught.find("abort"), std::string::npos) << caught;  // a frame of the crash
}

TEST(Failures, AFailedAsynchronousCallFailsTheTask) {
  TempDir dir;
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--event", R"({"program":"async_error"})",
                                 "--store", "file://" + dir / "store"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("an asynchronous call (seqno 0) failed: unknown queue 999999"),
            std::string::npos)
      << r.err;
}

TEST(Trace, OneSpanPerInvocation) {
  TempDir dir;
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--event", R"({"program":"fib","n":6})",
                                 "--trace", dir / "trace.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto trace = nlohmann::json::parse(read_file(dir / "trace.json"));
  std::map<uint64_t, int> finished;  // task -> spans that ended with "finished"
  size_t spans = 0;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X" || e.at("cat") == "checkpoint") continue;  // invocations only
    ++spans;
    EXPECT_GE(e.at("dur").get<double>(), 0);
    if (e.at("args").at("outcome") == "finished") ++finished[e.at("args").at("task")];
  }
  EXPECT_EQ(finished.size(), 25u);  // fib(6) spawns 25 tasks in all
  for (auto [task, n] : finished) EXPECT_EQ(n, 1) << "task " << task;
  EXPECT_GE(spans, 25u);  // plus one per park
}

TEST(RunCommandLine, MalformedEventAndUnknownOption) {
  ProcessResult bad = run_process({SEMANTICS_APP, "run", "--event", "{oops"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("malformed JSON"), std::string::npos) << bad.err;
  ProcessResult unknown = run_process({SEMANTICS_APP, "run", "--frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("--frobnicate"), std::string::npos) << unknown.err;
  ProcessResult backend = run_process({SEMANTICS_APP, "run", "--backend", "mainframe"});
  EXPECT_EQ(backend.exit_code, 1);
  EXPECT_NE(backend.err.find("backend 'mainframe' is not available"), std::string::npos)
      << backend.err;
}

}  // namespace
}  // namespace kappa::testing
