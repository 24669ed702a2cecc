// Whole jobs (APP run) with their checkpoints in Redis (--store redis://):
// images over 64 KiB really go to the redis-server the test starts, the
// result is exact (also under --chaos-kill and with Redis restarting
// mid-job), a job that succeeds leaves no key behind, and a job that fails
// keeps its images there and says where.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "apps/changing_state.h"
#include "support/server_process.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

using namespace std::chrono_literals;

std::string store_url(const ServerProcess& redis) {
  return "redis://127.0.0.1:" + std::to_string(redis.port());
}

long long calls_of(int port, const std::string& command) {
  std::string info = redis_cli(port, {"INFO", "commandstats"});
  size_t at = info.find("cmdstat_" + command + ":calls=");
  if (at == std::string::npos) return 0;
  return std::atoll(info.c_str() + at + command.size() + 15);
}

std::vector<std::string> keys_in(int port) {
  std::istringstream lines(redis_cli(port, {"--scan"}));
  std::vector<std::string> keys;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) keys.push_back(line);
  return keys;
}

const nlohmann::json kOk = {{"ok", true}};

// One worker, and --grace-ms 0 (a blocked call parks at once): the task
// holding 1 MiB parks at its dequeue before the handler can enqueue, and is
// relaunched from its image, read back from Redis.
const std::vector<std::string> kMustRelaunch = {"--workers", "1", "--grace-ms", "0"};

TEST(RedisStoreJob, LargeStateIsExactAndLeavesNoKeys) {
  ServerProcess redis(redis_server());
  std::vector<std::string> argv = {
      SEMANTICS_APP, "run", "--event", R"({"program":"large_state"})", "--store", store_url(redis)};
  argv.insert(argv.end(), kMustRelaunch.begin(), kMustRelaunch.end());
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), kOk);
  EXPECT_GE(calls_of(redis.port(), "set"), 1);                   // the image went to Redis...
  EXPECT_GE(calls_of(redis.port(), "getrange"), 1);              // ...came back...
  EXPECT_EQ(keys_in(redis.port()), std::vector<std::string>{});  // ...and is gone
}

// put's output in Redis (--data redis://...): plain keys, written once
// though workers are killed, and nothing staged left.
TEST(RedisStoreJob, PutsArePlainKeysWrittenOnce) {
  ServerProcess redis(redis_server());
  TempDir dir;
  ProcessResult r = run_process(
      {SEMANTICS_APP, "run", "--event", R"({"program":"durable_zoo","n":12})", "--data",
       store_url(redis), "--store", "file://" + dir.path(), "--chaos-kill", "0.2", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> keys = keys_in(redis.port());
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> want;
  for (int p = 0; p < 4; ++p) want.push_back("zoo/part-" + std::to_string(p) + ".txt");
  EXPECT_EQ(keys, want);
  for (int p = 0; p < 4; ++p)
    EXPECT_EQ(redis_cli(redis.port(), {"GET", want[size_t(p)]}),
              "part " + std::to_string(p) + ", round 3");
}

// 40 MiB of state: full images streamed in pieces of 8 MiB (a SET each,
// made permanent at their commit, which sets the hash naming them), read
// back by GETRANGE; workers killed mid-stream leave pieces the job's end
// removes with the rest.
TEST(RedisStoreJob, StreamedImagesUnderChaosKill) {
  ServerProcess redis(redis_server());
  // One worker parked at each wait for its child: restored at least once.
  std::vector<std::string> argv = {
      SEMANTICS_APP,  "run",
      "--event",      R"({"program":"changing_state","rounds":12,"mib":40})",
      "--store",      store_url(redis),
      "--chaos-kill", "0.3",
      "--seed",       "2"};
  argv.insert(argv.end(), kMustRelaunch.begin(), kMustRelaunch.end());
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json(changing_state::run_plain(12, 40)));
  EXPECT_GE(calls_of(redis.port(), "persist"), 5);  // 40 MiB in pieces
  EXPECT_GE(calls_of(redis.port(), "hset"), 1);
  EXPECT_EQ(calls_of(redis.port(), "setrange"), 0);
  EXPECT_GE(calls_of(redis.port(), "getrange"), 1);
  EXPECT_EQ(keys_in(redis.port()), std::vector<std::string>{});
}

TEST(RedisStoreJob, LargeStateUnderChaosKill) {
  ServerProcess redis(redis_server());
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--event", R"({"program":"large_state"})",
                                 "--store", store_url(redis), "--chaos-kill", "0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), kOk);
  EXPECT_GE(calls_of(redis.port(), "set"), 1);
  EXPECT_EQ(keys_in(redis.port()), std::vector<std::string>{});
}

// The holder's 40 MiB image is streamed, in pieces; `inspect` of where the
// job says it kept them verifies each image, and of one image's URL, that
// image.
TEST(RedisStoreJob, AFailedJobKeepsItsImagesInRedis) {
  ServerProcess redis(redis_server());
  ProcessResult r = run_process({SEMANTICS_APP, "run", "--event",
                                 R"({"program":"large_state","fail":true,"mib":40})", "--store",
                                 store_url(redis)});
  EXPECT_EQ(r.exit_code, 1);
  std::string kept = "checkpoints kept in " + store_url(redis) + "/0/";
  size_t at = r.err.find(kept);
  ASSERT_NE(at, std::string::npos) << r.err;
  size_t job_at = at + kept.size();
  std::string job = r.err.substr(job_at, r.err.find_first_of("\n ", job_at) - job_at);
  ASSERT_FALSE(job.empty()) << r.err;
  std::vector<std::string> keys = keys_in(redis.port());
  ASSERT_FALSE(keys.empty());
  for (const std::string& k : keys) EXPECT_TRUE(k.starts_with(job + "/")) << k << " vs " << job;
  EXPECT_TRUE(std::any_of(keys.begin(), keys.end(),
                          [](const std::string& k) { return k.find(".part.") != k.npos; }));

  const std::string where = store_url(redis) + "/0/" + job + "/";
  ProcessResult all = run_process({SEMANTICS_APP, "inspect", where});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::string large;  // the holder's image
  std::istringstream lines(all.out);
  int images = 0;
  for (std::string line; std::getline(lines, line); ++images) {
    nlohmann::json j = nlohmann::json::parse(line);
    std::string file = j.value("file", "");
    EXPECT_TRUE(file.starts_with(where) && file.ends_with(".kpk")) << file;
    if (j.value("raw_bytes", uint64_t(0)) >= uint64_t(40) << 20) large = file;
  }
  EXPECT_GE(images, 1);
  ASSERT_FALSE(large.empty()) << all.out;
  ProcessResult one = run_process({SEMANTICS_APP, "inspect", large});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(nlohmann::json::parse(one.out).value("file", ""), large);
  ProcessResult none = run_process({SEMANTICS_APP, "inspect", large + ".absent.kpk"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("there is no such image"), std::string::npos) << none.err;
  ProcessResult no_db = run_process({SEMANTICS_APP, "inspect", store_url(redis) + "/" + job + "/"});
  EXPECT_NE(no_db.exit_code, 0);
  EXPECT_NE(no_db.err.find("name the database, redis://HOST:PORT/DB/KEY"), std::string::npos)
      << no_db.err;
}

// Waits (up to `limit`) until the Redis on `port` executes `command`, watched
// through MONITOR: within a millisecond or so of it.
bool wait_for_command(int port, const std::string& command, std::chrono::milliseconds limit) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{time_t(limit.count() / 1000), suseconds_t(limit.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool seen = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, "MONITOR\r\n", 9, MSG_NOSIGNAL) == 9) {
    std::string window, needle = "\"" + command + "\"";
    char buf[65536];
    ssize_t n;
    while (!seen && (n = recv(fd, buf, sizeof buf, 0)) > 0) {
      window.append(buf, size_t(n));
      seen = window.find(needle) != std::string::npos;
      if (window.size() > needle.size()) window.erase(0, window.size() - needle.size());
    }
  }
  close(fd);
  return seen;
}

// Redis crashes (SIGKILL) just as the first image is written, and comes back
// a second later (appendonly, fsync always): the task holding that image
// writes more and must be relaunched from the last one (kMustRelaunch), so
// its operations meet the stopped server, retry, and succeed. The job is
// exact and leaves nothing.
TEST(RedisStoreJob, RedisRestartingMidJob) {
  ServerProcess redis(redis_server({.persistent = true}));
  TempDir dir;
  std::vector<std::string> argv = {
      SEMANTICS_APP,    "run",       "--event",   R"({"program":"large_state"})", "--store",
      store_url(redis), "--log-dir", dir / "logs"};
  argv.insert(argv.end(), kMustRelaunch.begin(), kMustRelaunch.end());
  pid_t job = spawn_process(argv, {}, dir / "out", dir / "err");
  bool seen = wait_for_command(redis.port(), "SET", 20s);
  redis.stop(SIGKILL);
  ASSERT_TRUE(seen) << read_file(dir / "err");
  EXPECT_FALSE(process_gone(job));  // mid-job
  std::this_thread::sleep_for(1s);
  redis.start();
  ASSERT_EQ(wait_process(job), 0) << read_file(dir / "err");
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out")), kOk);
  EXPECT_EQ(keys_in(redis.port()), std::vector<std::string>{});
  // Some operation met the stopped server, and retried until it came back.
  std::string logs = read_file(dir / "err");
  for (auto& e : std::filesystem::directory_iterator(dir / "logs")) logs += read_file(e.path());
  EXPECT_NE(logs.find("retrying for up to 30.0 s"), std::string::npos) << logs;
}

}  // namespace
}  // namespace kappa::testing
