// What a user sees of a whole job (issue 12): the summary line with its cost
// estimate, the progress line on a terminal (a real pseudo-terminal), and
// the --trace file's structure. Real `APP run` processes of the semantics
// app.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

// Runs argv on a pseudo-terminal `cols` columns wide (stdin, stdout and
// stderr all on it); returns everything it wrote, and its exit code.
std::pair<std::string, int> run_on_terminal(const std::vector<std::string>& argv,
                                            unsigned short cols) {
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = cols;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, size_t(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child side is closed
    }
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

const char* kZoo = R"({"program":"durable_zoo","n":150})";

std::vector<std::string> zoo(const TempDir& dir, std::vector<std::string> more = {}) {
  std::vector<std::string> argv = {SEMANTICS_APP, "run",    "--event",
                                   kZoo,          "--data", "file://" + dir / "data"};
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

TEST(ProgressLine, IsDrawnInPlaceOnATerminalNeverWiderThanItAndErasedBeforeTheResult) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir), 60);
  ASSERT_EQ(code, 0) << out;
  // Each redraw: carriage return, the text, clear to the end of the line.
  std::regex draw("\r(kappa: [^\r\n\x1b]*)\x1b\\[K");
  size_t draws = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), draw); it != std::sregex_iterator();
       ++it) {
    ++draws;
    std::string text = (*it)[1];
    EXPECT_LE(text.size(), 59u) << text;  // one column short of the width: never wraps
    EXPECT_EQ(text.rfind("kappa: ", 0), 0u) << text;
  }
  EXPECT_GE(draws, 2u) << out;  // the job runs for more than half a second
  EXPECT_NE(out.find("tasks done"), std::string::npos) << out;
  // Erased (an empty redraw) before the result line, and never drawn after it.
  size_t result = out.find("{\"parts\"");
  ASSERT_NE(result, std::string::npos) << out;
  size_t erase = out.rfind("\r\x1b[K", result);
  ASSERT_NE(erase, std::string::npos) << out;
  EXPECT_EQ(out.find("tasks done", erase), std::string::npos) << out;
}

TEST(ProgressLine, ShowsEveryCountAtFullWidth) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir), 200);
  ASSERT_EQ(code, 0) << out;
  std::regex full(
      R"(kappa: \d+/\d+ tasks done, \d+ running, \d+ parked, \d+ workers, \d+ checkpoints/s, \d+\.\d s)");
  EXPECT_TRUE(std::regex_search(out, full)) << out;
}

TEST(ProgressLine, IsAbsentWithQuietOrWhenStderrIsNoTerminal) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir, {"--quiet"}), 80);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("tasks done"), std::string::npos) << out;
  EXPECT_EQ(out.find("\x1b[K"), std::string::npos) << out;
  EXPECT_NE(out.find("done in"), std::string::npos) << out;  // the summary stays

  ProcessResult piped = run_process(zoo(dir));  // stderr is a pipe
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.err.find("tasks done"), std::string::npos) << piped.err;
  EXPECT_EQ(piped.err.find('\r'), std::string::npos) << piped.err;
  EXPECT_NE(piped.err.find("done in"), std::string::npos) << piped.err;
}

// The summary's estimate follows the flags: with only requests priced (at
// $1 each), it is the number of invocations the summary reports.
TEST(Summary, CarriesTheCostEstimateWithThePricesGiven) {
  TempDir dir;
  ProcessResult r =
      run_process(zoo(dir, {"--lambda-memory", "2048", "--price-gb-s", "0", "--price-request", "1",
                            "--price-s3-put", "0", "--price-s3-get", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex line(
      R"((\d+) checkpoints \([^)]*\), (\d+) invocations; ~\$([0-9.]+) on Lambda \(2048 MB\); \$([0-9.]+) if blocked waits were billed)");
  ASSERT_TRUE(std::regex_search(r.err, m, line)) << r.err;
  EXPECT_GT(std::stoull(m[1]), 0u);
  uint64_t invocations = std::stoull(m[2]);
  EXPECT_GE(invocations, 155u);  // every task ran at least once
  EXPECT_DOUBLE_EQ(std::stod(m[3]), double(invocations));
  EXPECT_DOUBLE_EQ(std::stod(m[4]), double(invocations));  // waits priced at $0 too

  // Default prices: a few hundred invocations of a second or less cost far
  // less than a cent, and a parked wait can only add to it.
  ProcessResult d = run_process(zoo(dir, {"--workers", "1", "--grace-ms", "0"}));
  ASSERT_EQ(d.exit_code, 0) << d.err;
  std::regex dflt(
      R"(~\$([0-9.]+) on Lambda \(1024 MB\); \$([0-9.]+) if blocked waits were billed)");
  ASSERT_TRUE(std::regex_search(d.err, m, dflt)) << d.err;
  double usd = std::stod(m[1]), blocked = std::stod(m[2]);
  EXPECT_GT(usd, 0);
  EXPECT_LT(usd, 0.01);
  EXPECT_GT(blocked, usd);  // one worker, no grace: the producer and consumer park
}

}  // namespace
}  // namespace kappa::testing

int main(int argc, char** argv) {
  setenv("KAPPA_KEY", "kappa-tests-key-0123456789abcdef", 1);  // as test_main.cc, for the apps
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
