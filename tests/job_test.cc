// Whole jobs (APP run) and the promises that only show at that scale: jobs
// sharing a store, workers that hang or outlive their coordinator, events too
// large for the command line, and the command line's own messages.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <regex>

#include "kappa.grpc.pb.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> files_under(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[e.path()] = read_file(e.path());
  return files;
}

// Waits (up to `limit`) for `pred`; returns how long it took, or nullopt.
template <class Pred>
std::optional<Clock::duration> wait_until(Pred pred, Clock::duration limit) {
  auto start = Clock::now();
  while (!pred()) {
    if (Clock::now() - start > limit) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
  return Clock::now() - start;
}

// The first worker process `run` (pid) starts.
pid_t first_worker(pid_t run) {
  pid_t worker = 0;
  wait_until(
      [&] {
        auto kids = child_processes(run);
        if (!kids.empty()) worker = kids[0];
        return worker != 0;
      },
      20s);
  return worker;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A job that failed keeps its images; a second job on the same store, whose
// tasks have the same ids and write images under the same names, must leave
// them as they were (measured before the fix: two jobs sharing a store with
// chaos failed in 2 of 3 trials).
TEST(SharedStore, AJobNeverTouchesAnotherJobsImages) {
  TempDir dir;
  std::string store = "file://" + dir / "store";
  ProcessResult failed =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"large_state","fail":true})",
                   "--store", store});
  ASSERT_EQ(failed.exit_code, 1) << failed.err;
  std::map<std::string, std::string> kept = files_under(dir / "store");
  ASSERT_FALSE(kept.empty());
  ProcessResult ok = run_process(
      {SEMANTICS_APP, "run", "--event", R"({"program":"large_state"})", "--store", store});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out), (nlohmann::json{{"ok", true}}));
  EXPECT_EQ(files_under(dir / "store"), kept);  // the same files, byte for byte
}

TEST(SharedStore, ConcurrentJobsUnderChaosAreBothExact) {
  TempDir dir;
  std::vector<std::string> chaos = {
      "--store", "file://" + dir / "store", "--chaos-kill", "0.5", "--time-limit", "0.4"};
  auto job = [&](const std::string& event, const std::string& name) {
    std::vector<std::string> argv = {SEMANTICS_APP, "run", "--event", event};
    argv.insert(argv.end(), chaos.begin(), chaos.end());
    return spawn_process(argv, {}, dir / (name + ".out"), dir / (name + ".err"));
  };
  pid_t a = job(R"({"program":"large_state"})", "a");
  pid_t b = job(R"({"program":"work_queue","n":200,"m":4})", "b");
  EXPECT_EQ(wait_process(a), 0) << read_file(dir / "a.err");
  EXPECT_EQ(wait_process(b), 0) << read_file(dir / "b.err");
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "a.out")), (nlohmann::json{{"ok", true}}));
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "b.out")),
            (nlohmann::json{{"sum", 200 * 199 / 2}, {"count", 200}}));
  EXPECT_TRUE(files_under(dir / "store").empty());  // both cleaned up after themselves
}

// A worker that stops (SIGSTOP: no heartbeats) is noticed within the
// liveness timeout, killed, and its task restarted elsewhere: the job ends
// long before the 300 s time limit would have freed the task.
TEST(Liveness, AStoppedWorkerIsKilledAndItsTaskRestarted) {
  TempDir dir;
  auto started = Clock::now();
  pid_t run = spawn_process({SEMANTICS_APP, "run", "--event", R"({"program":"spin","seconds":3})",
                             "--liveness-timeout", "1", "--workers", "1"},
                            {}, dir / "out", dir / "err");
  pid_t worker = first_worker(run);
  ASSERT_NE(worker, 0);
  std::this_thread::sleep_for(500ms);  // into the task
  ASSERT_FALSE(process_gone(run)) << read_file(dir / "err");
  kill(worker, SIGSTOP);
  auto killed = wait_until([&] { return process_gone(worker); }, 30s);
  ASSERT_TRUE(killed) << "the stopped worker was never killed";
  EXPECT_EQ(wait_process(run), 0) << read_file(dir / "err");
  std::string err = read_file(dir / "err");
  EXPECT_NE(err.find("(1 hung)"), std::string::npos) << err;
  EXPECT_NE(err.find("stopped sending heartbeats"), std::string::npos) << err;
  std::printf(
      "[ figure ] stopped worker killed %.2f s after SIGSTOP (liveness timeout 1 s); job "
      "took %.1f s\n",
      seconds(*killed), seconds(Clock::now() - started));
}

// SIGKILL the coordinator (`run`): its workers end with it, instead of going
// on computing and writing checkpoints for nobody.
TEST(Orphans, WorkersDieWithTheirCoordinator) {
  TempDir dir;
  pid_t run = spawn_process({SEMANTICS_APP, "run", "--event", R"({"program":"spin","seconds":60})"},
                            {}, dir / "out", dir / "err");
  pid_t worker = first_worker(run);
  ASSERT_NE(worker, 0);
  std::this_thread::sleep_for(300ms);
  kill(run, SIGKILL);
  wait_process(run);
  auto gone = wait_until([&] { return process_gone(worker); }, 10s);
  ASSERT_TRUE(gone) << "the worker outlived its coordinator by 10 s";
  EXPECT_LT(*gone, 1s);
  std::printf("[ figure ] worker gone %.3f s after its coordinator's SIGKILL\n", seconds(*gone));
}

// A worker reaching its coordinator over gRPC, whose coordinator stops
// answering (SIGSTOP: the connection stays open), gives up in bounded time
// even while its task computes without a pause point.
TEST(Orphans, AGrpcWorkerGivesUpOnAnUnresponsiveCoordinator) {
  TempDir dir;
  pid_t run = spawn_process({SEMANTICS_APP, "run", "--listen", "127.0.0.1:0", "--event",
                             R"({"program":"spin","seconds":120})"},
                            {}, dir / "out", dir / "err");
  pid_t worker = first_worker(run);
  ASSERT_NE(worker, 0);
  std::this_thread::sleep_for(1s);  // connected, and spinning
  kill(run, SIGSTOP);
  auto gone = wait_until([&] { return process_gone(worker); }, 60s);
  kill(run, SIGKILL);
  kill(run, SIGCONT);
  wait_process(run);
  ASSERT_TRUE(gone) << "the worker waited over a minute for a stopped coordinator";
  std::printf("[ figure ] gRPC worker gave up %.1f s after its coordinator stopped\n",
              seconds(*gone));
}

size_t peak_rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

// A stranger without the token sends one huge message over gRPC: it is
// refused before it is read (measured before the fix: a 1 GB message took the
// coordinator to 2.57 GB RSS before it was refused).
TEST(Unauthenticated, AHugeGrpcMessageWithABadTokenIsNeverRead) {
  TempDir dir;
  pid_t coord = spawn_process({SEMANTICS_APP, "coordinator", "--listen", "127.0.0.1:0", "--event",
                               R"({"program":"spin","seconds":60})"},
                              {}, dir / "out", dir / "err");
  std::smatch m;
  std::string err;
  wait_until(
      [&] {
        err = read_file(dir / "err");
        return std::regex_search(err, m, std::regex("serving workers on (127.0.0.1:[0-9]+)"));
      },
      20s);
  ASSERT_FALSE(m.empty()) << err;
  size_t before_kb = peak_rss_kb(coord);
  auto stub = kappa::rpc::Coordinator::NewStub(
      grpc::CreateChannel(m[1].str(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("kappa-token", "not the token");
  ctx.AddMetadata("kappa-worker", "1");
  auto stream = stub->Session(&ctx);
  kappa::rpc::WorkerMessage huge;
  huge.mutable_call()->mutable_request()->assign(size_t(256) << 20, 'x');
  grpc::WriteOptions last;
  last.set_last_message();
  stream->Write(huge, last);
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  size_t after_kb = peak_rss_kb(coord);
  kill(coord, SIGKILL);
  wait_process(coord);
  EXPECT_LT(after_kb, before_kb + 64 * 1024)
      << "peak RSS went from " << before_kb << " to " << after_kb << " kB";
  std::printf(
      "[ figure ] coordinator peak RSS %zu kB before, %zu kB after a refused 256 MiB "
      "message\n",
      before_kb, after_kb);
}

TEST(Events, ComeFromAFileOrStandardInputWhenTooLargeForTheCommandLine) {
  TempDir dir;
  // 200 KB: more than the kernel's 128 KiB limit on one argument.
  nlohmann::json event = {{"program", "fib"}, {"n", 10}, {"pad", std::string(200'000, 'x')}};
  write_file(dir / "event.json", event.dump());
  ProcessResult from_file = run_process({SEMANTICS_APP, "run", "--event-file", dir / "event.json"});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, "55\n");
  ProcessResult from_stdin = run_process(
      {"/bin/sh", "-c", std::string(SEMANTICS_APP) + " run --event - < " + dir / "event.json"});
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out, "55\n");
  ProcessResult missing = run_process({SEMANTICS_APP, "run", "--event-file", dir / "nope.json"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot read " + dir / "nope.json"), std::string::npos) << missing.err;
}

TEST(Cli, SaysPlainlyThatWorkersMustBeAtLeastOne) {
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--workers", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("must be a whole number of at least 1 (got 0)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("1797693"), std::string::npos) << r.err;
}

TEST(Cli, TheSummaryCountsDeathsByCause) {
  // "kappa: done in 0.8 s: 9 tasks, 3 parks, 5 worker deaths (5 by --chaos-kill)".
  // Chaos kills land at random moments: some runs kill no task at all.
  std::regex deaths(R"((\d+) worker deaths? \((\d+) by --chaos-kill\))");
  std::string err;
  std::smatch m;
  for (int seed = 1; seed <= 20 && !std::regex_search(err, m, deaths); ++seed) {
    ProcessResult r =
        run_process({SEMANTICS_APP, "run", "--event", R"({"program":"work_queue","n":100,"m":4})",
                     "--chaos-kill", "0.5", "--seed", std::to_string(seed)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    err = r.err;
  }
  ASSERT_TRUE(std::regex_search(err, m, deaths)) << err;
  EXPECT_EQ(m[1], m[2]);  // chaos was the only cause
}

}  // namespace
}  // namespace kappa::testing
