// Checkpoints restored in fresh processes of the same binary: at every pause
// point, after SIGKILL at random moments, with big states, with task threads;
// and the failure paths of the command line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "apps/state_workload.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

constexpr int kExitStopped = 75;

bool has_checkpoint(const std::string& dir) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".kpk") return true;
  return false;
}

// Runs the job one pause point per process: `solo` stops after its first
// checkpoint, then each `resume` restores, runs to the next pause point,
// persists it and exits. Returns the final JSON and the number of processes.
std::pair<nlohmann::json, int> run_one_pause_per_process(const std::string& event,
                                                         const std::string& dir,
                                                         const std::string& compression) {
  std::vector<std::string> common = {"--max-checkpoints", "1", "--compression", compression};
  std::vector<std::string> argv = {STATE_APP, "solo", "--dir", dir, "--event", event};
  argv.insert(argv.end(), common.begin(), common.end());
  for (int processes = 1; processes < 10000; ++processes) {
    ProcessResult r = run_process(argv);
    if (r.exit_code == 0) return {nlohmann::json::parse(r.out), processes};
    if (r.exit_code != kExitStopped) {
      ADD_FAILURE() << "process " << processes << " exited " << r.exit_code << " signal "
                    << r.signal << ": " << r.err;
      return {{}, processes};
    }
    argv = {STATE_APP, "resume", dir};
    argv.insert(argv.end(), common.begin(), common.end());
  }
  ADD_FAILURE() << "did not finish";
  return {};
}

// Starts a small job in `dir` and stops it after its first checkpoint.
::testing::AssertionResult start_stopped_job(
    const std::string& dir, const std::string& event = R"({"mode":"types","steps":2})") {
  ProcessResult r =
      run_process({STATE_APP, "solo", "--dir", dir, "--event", event, "--max-checkpoints", "1"});
  if (r.exit_code == kExitStopped) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "solo exited " << r.exit_code << ": " << r.err;
}

class EveryPausePoint : public ::testing::TestWithParam<std::string> {};

// With a 1 MiB buffer beside them, so that the images are compressed (small
// states are stored as they are, whatever the codec).
TEST_P(EveryPausePoint, AllKindsOfStateMatchThePlainComputation) {
  TempDir dir;
  const int steps = 12;
  auto [result, processes] = run_one_pause_per_process(R"({"mode":"types","steps":12,"big_mb":1})",
                                                       dir / "ckpt", GetParam());
  // One process per pause point: the start, one in run_task, three per step.
  EXPECT_EQ(processes, 2 + 3 * steps);
  EXPECT_EQ(result.value("digest", ""), workload::run_plain(steps, 1));
  EXPECT_FALSE(has_checkpoint(dir / "ckpt")) << "checkpoints are removed once the job is done";
}

INSTANTIATE_TEST_SUITE_P(Compression, EveryPausePoint, ::testing::Values("lz4", "zstd", "none"));

TEST(RestoreProcess, BufferLargerThan100MB) {
  TempDir dir;
  auto [result, processes] =
      run_one_pause_per_process(R"({"mode":"types","steps":2,"big_mb":112})", dir / "ckpt", "lz4");
  EXPECT_EQ(processes, 2 + 3 * 2);
  EXPECT_EQ(result.value("digest", ""), workload::run_plain(2, 112));
}

TEST(RestoreProcess, AllocatorStressAcrossProcesses) {
  TempDir dir;
  auto [result, processes] =
      run_one_pause_per_process(R"({"mode":"stress","rounds":4,"seed":7})", dir / "ckpt", "lz4");
  EXPECT_EQ(processes, 5);
  EXPECT_GT(result.value("allocs", 0), 1000);
  EXPECT_GT(result.value("frees", 0), 300);
  EXPECT_GT(result.value("checks", 0), 100);  // live blocks checked after each restore
}

TEST(RestoreProcess, TaskThreadsJoinedBeforeAPause) {
  TempDir dir;
  auto [result, processes] = run_one_pause_per_process(R"({"mode":"threads"})", dir / "c", "lz4");
  EXPECT_EQ(processes, 2);
  EXPECT_EQ(result.value("sum", int64_t{0}), int64_t{332833500});
}

TEST(RestoreProcess, SigkillAtRandomMomentsFiftyTimes) {
  // ~4 s of work in one go; each attempt is killed 5..70 ms after it starts.
  const uint64_t n = 1'000'000'000;
  TempDir dir;
  std::string ckpt = dir / "ckpt";
  std::mt19937 rng(2026);
  int kills = 0, finished_early = 0;
  while (kills < 50) {
    std::vector<std::string> argv =
        has_checkpoint(ckpt)
            ? std::vector<std::string>{STATE_APP, "resume", ckpt}
            : std::vector<std::string>{
                  STATE_APP, "solo",    "--dir",
                  ckpt,      "--event", R"({"mode":"spin","n":)" + std::to_string(n) + "}"};
    argv.insert(argv.end(), {"--checkpoint-interval", "0.002"});
    pid_t pid = spawn_process(argv);
    if (!has_checkpoint(ckpt)) {
      // The first attempt runs until its first checkpoint: on a loaded
      // machine (or a sanitizer build) starting up can take longer than the
      // kill delay, and 50 attempts could all die before it.
      for (int i = 0; i < 2000 && !has_checkpoint(ckpt); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(5000 + rng() % 65000));
    kill(pid, SIGKILL);
    int code = wait_process(pid);
    if (code == -SIGKILL) {
      ++kills;
    } else {
      ASSERT_EQ(code, 0) << "an attempt failed";
      ++finished_early;
      break;
    }
  }
  ASSERT_EQ(finished_early, 0) << "the job finished after " << kills << " kills: make n larger";
  ASSERT_TRUE(has_checkpoint(ckpt));
  ProcessResult r = run_process({STATE_APP, "resume", ckpt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).value("digest", ""), workload::spin_plain(n));
}

// A call created before a checkpoint and awaited after it, in another
// process: its request was built on the heap, and the checkpoint must have
// moved it into the arena (else the restored task holds a pointer into a
// dead process's heap, and freeing it corrupts this one's).
TEST(RestoreProcess, ACallCreatedBeforeACheckpointIsAwaitedAfterIt) {
  TempDir dir;
  auto [result, processes] =
      run_one_pause_per_process(R"({"mode":"call_across_pause"})", dir / "ckpt", "zstd");
  EXPECT_EQ(processes, 2);
  EXPECT_NE(result.value("error", "").find("needs a coordinator"), std::string::npos) << result;
}

TEST(RestoreProcess, ThreadStillRunningAtAPauseFailsTheTask) {
  TempDir dir;
  ProcessResult r =
      run_process({STATE_APP, "solo", "--dir", dir / "c", "--event", R"({"mode":"thread_alive"})"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("still running at a pause point"), std::string::npos) << r.err;
}

TEST(RestoreProcess, ExceptionEscapingTheTaskFailsTheJob) {
  TempDir dir;
  ProcessResult r =
      run_process({STATE_APP, "solo", "--dir", dir / "c", "--event", R"({"mode":"fail"})"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("deliberate failure in the task"), std::string::npos) << r.err;
}

TEST(RestoreProcess, CheckpointOfAnotherBinaryIsRejected) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  ProcessResult r = run_process({DEMO_APP, "resume", dir / "c"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("written by another binary"), std::string::npos) << r.err;
  // Still resumable by the right binary: nothing was lost.
  ProcessResult ok = run_process({STATE_APP, "resume", dir / "c"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(RestoreProcess, RandomizedAddressLayoutIsRefused) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  // KAPPA_ALLOW_ASLR=1: no re-exec with ADDR_NO_RANDOMIZE, so libraries land
  // elsewhere (when the kernel randomizes at all).
  ProcessResult r = run_process({STATE_APP, "resume", dir / "c"}, {"KAPPA_ALLOW_ASLR=1"});
  if (read_file("/proc/sys/kernel/randomize_va_space").rfind("0", 0) == 0) {
    EXPECT_EQ(r.exit_code, 0) << "ASLR is off machine-wide, so the layout matches: " << r.err;
  } else {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("another address layout"), std::string::npos) << r.err;
  }
}

// `run` runs no task itself: it starts without re-executing (its
// personality is the one it inherited) and starts its workers with ASLR off,
// in which an image made by one worker restores in another (as every chaos
// test's restores show).
TEST(RestoreProcess, RunStartsItsWorkersWithASLROffWithoutReexecutingItself) {
  constexpr unsigned long kNoRandomize = 0x0040000;  // ADDR_NO_RANDOMIZE
  auto personality_of = [](pid_t pid) {
    return std::stoul(read_file("/proc/" + std::to_string(pid) + "/personality"), nullptr, 16);
  };
  ASSERT_EQ(personality_of(getpid()) & kNoRandomize, 0u) << "needs ASLR on in the test process";
  // About a second of work (kLongLoop / 6) on one worker.
  pid_t run = spawn_process({SEMANTICS_APP, "run", "--workers", "1", "--event",
                             R"({"program": "long_loop", "iterations": 250000000})"});
  std::vector<pid_t> workers;
  for (int i = 0; i < 500 && workers.empty() && !process_gone(run); ++i) {
    workers = child_processes(run);
    if (workers.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  unsigned long coordinator = personality_of(run), worker = 0;
  if (!workers.empty()) worker = personality_of(workers[0]);
  EXPECT_EQ(wait_process(run), 0);
  ASSERT_FALSE(workers.empty()) << "no worker seen";
  EXPECT_EQ(coordinator, personality_of(getpid())) << "run re-executed itself";
  EXPECT_NE(worker & kNoRandomize, 0u) << std::hex << worker;
}

TEST(CommandLine, MalformedEventIsAUsageError) {
  TempDir dir;
  ProcessResult r = run_process({STATE_APP, "solo", "--dir", dir / "c", "--event", "{\"mode\":"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("malformed JSON"), std::string::npos) << r.err;
  EXPECT_FALSE(has_checkpoint(dir / "c"));
}

TEST(CommandLine, UnknownOptionIsAUsageError) {
  ProcessResult r = run_process({STATE_APP, "solo", "--dir", "/tmp/x", "--no-such-option"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--no-such-option"), std::string::npos) << r.err;
}

TEST(CommandLine, ResumeWithoutACheckpoint) {
  TempDir dir;
  ProcessResult r = run_process({STATE_APP, "resume", dir.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no checkpoint to resume"), std::string::npos) << r.err;
}

TEST(CommandLine, SoloRefusesADirectoryThatHoldsAJob) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  ProcessResult r = run_process({STATE_APP, "solo", "--dir", dir / "c"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already holds checkpoints"), std::string::npos) << r.err;
}

TEST(CommandLine, InspectPrintsTheVerifiedHeader) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c", R"({"mode":"types","steps":2,"big_mb":1})"));
  std::string image;
  for (auto& e : std::filesystem::directory_iterator(dir / "c")) image = e.path();
  ProcessResult r = run_process({STATE_APP, "inspect", image});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.value("codec", ""), "zstd");
  EXPECT_EQ(j.value("pending_op", 0), 1);
  EXPECT_GT(j.value("raw_bytes", 0), 0);
  EXPECT_EQ(j.value("chain_depth", -1), 0);  // solo writes full images
}

TEST(CommandLine, ResumeOfAMissingDirectorySaysSoAndCreatesNothing) {
  TempDir dir;
  ProcessResult r = run_process({STATE_APP, "resume", dir / "missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "missing"));
}

TEST(CommandLine, ResumeIgnoresSymlinkLoopsInTheDirectory) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  std::filesystem::create_symlink("loop", dir / "c/loop");
  // Named like checkpoints, and later than the real one in their order.
  std::filesystem::create_symlink("ckpt-b.kpk", dir / "c/ckpt-a.kpk");
  std::filesystem::create_symlink("ckpt-a.kpk", dir / "c/ckpt-b.kpk");
  ProcessResult r = run_process({STATE_APP, "resume", dir / "c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).value("digest", ""), workload::run_plain(2, 0));
}

// `inspect` and `resume` may be handed anything. They refuse what is not a
// checkpoint image from its file type and its header, without blocking,
// reading it whole or growing.
constexpr auto kQuickly = std::chrono::seconds(20);
constexpr size_t kLittleMemory = size_t{256} << 20;
constexpr off_t kTenGiB = off_t{10} << 30;

void expect_refused_quickly(const std::vector<std::string>& argv, const std::string& why) {
  ProcessResult r = run_process_bounded(argv, kQuickly, kLittleMemory);
  EXPECT_EQ(r.killed_for, "") << argv[1] << " " << argv[2] << " was killed";
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  EXPECT_LT(r.max_rss_bytes, kLittleMemory);
}

// A sparse file of `bytes` bytes that starts with `head`.
void write_sparse_file(const std::string& path, const std::string& head, off_t bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0) << path;
  EXPECT_EQ(write(fd, head.data(), head.size()), ssize_t(head.size()));
  EXPECT_EQ(ftruncate(fd, bytes), 0);
  close(fd);
}

std::string only_checkpoint_in(const std::string& dir) {
  std::vector<std::string> images;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".kpk") images.push_back(e.path());
  EXPECT_EQ(images.size(), 1u);
  return images.empty() ? "" : images[0];
}

TEST(CommandLine, InspectRefusesWhatIsNotARegularFile) {
  TempDir dir;
  std::filesystem::create_symlink("/dev/zero", dir / "zero.kpk");
  ASSERT_EQ(mkfifo((dir / "fifo.kpk").c_str(), 0600), 0);
  expect_refused_quickly({STATE_APP, "inspect", dir / "zero.kpk"},
                         dir / "zero.kpk: not a regular file (a character device)");
  expect_refused_quickly({STATE_APP, "inspect", dir / "fifo.kpk"},
                         dir / "fifo.kpk: not a regular file (a FIFO)");
}

TEST(CommandLine, InspectRefusesAHugeFileFromItsHeader) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  std::string image = read_file(only_checkpoint_in(dir / "c"));
  ASSERT_GT(image.size(), 4096u);
  write_sparse_file(dir / "zeros.kpk", "", kTenGiB);
  expect_refused_quickly({STATE_APP, "inspect", dir / "zeros.kpk"}, "bad magic");
  write_sparse_file(dir / "magic.kpk", "KAPPACKP", kTenGiB);
  expect_refused_quickly({STATE_APP, "inspect", dir / "magic.kpk"}, "unsupported format version 0");
  // A genuine header, and the file is not the size it announces.
  write_sparse_file(dir / "header.kpk", image.substr(0, 4096), kTenGiB);
  expect_refused_quickly(
      {STATE_APP, "inspect", dir / "header.kpk"},
      "trailing garbage: 10737418240 bytes, expected " + std::to_string(image.size()));
}

TEST(CommandLine, ResumeRefusesAHugeCheckpointFromItsHeader) {
  TempDir dir;
  ASSERT_TRUE(start_stopped_job(dir / "c"));
  std::string path = only_checkpoint_in(dir / "c");
  std::string image = read_file(path);
  write_sparse_file(path, image.substr(0, 4096), kTenGiB);
  expect_refused_quickly(
      {STATE_APP, "resume", dir / "c"},
      "trailing garbage: 10737418240 bytes, expected " + std::to_string(image.size()));
}

}  // namespace
}  // namespace kappa::testing
