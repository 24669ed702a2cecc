// The fib example end to end: fib(n) from a tree of spawned tasks against an
// iterative fib computed here, normally and with workers killed at random.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

uint64_t fib_iterative(int n) {
  uint64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    uint64_t next = a + b;
    a = b;
    b = next;
  }
  return a;
}

// Runs the example; returns its result and its stderr (the summary line).
nlohmann::json run_fib(int n, int cutoff, const std::vector<std::string>& options,
                       std::string* err = nullptr) {
  nlohmann::json event = {{"n", n}, {"cutoff", cutoff}};
  std::vector<std::string> argv = {FIB_APP, "run", "--event", event.dump()};
  argv.insert(argv.end(), options.begin(), options.end());
  ProcessResult r = run_process(argv);
  if (err) *err = r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
}

TEST(Fib, MatchesAnIterativeFib) {
  for (auto [n, cutoff] :
       std::vector<std::pair<int, int>>{{0, 0}, {1, 0}, {2, 0}, {10, 3}, {25, 15}, {30, 24}}) {
    nlohmann::json out = run_fib(n, cutoff, {});
    if (HasFailure()) return;
    EXPECT_EQ(out["fib"], fib_iterative(n)) << "n = " << n << ", cutoff = " << cutoff;
    EXPECT_EQ(out["n"], n);
    EXPECT_EQ(out["cutoff"], cutoff);
  }
}

// Workers killed at random while the tree of tasks runs: every task that
// dies is restarted from its last checkpoint, and the sum is still exact.
TEST(FibChaos, MatchesAnIterativeFibWhenWorkersAreKilled) {
  int runs_with_kills = 0;
  for (int seed = 1; seed <= 3; ++seed) {
    std::string err;
    nlohmann::json out =
        run_fib(20, 12, {"--chaos-kill", "0.3", "--seed", std::to_string(seed)}, &err);
    if (HasFailure()) return;
    EXPECT_EQ(out["fib"], fib_iterative(20)) << "seed " << seed;
    runs_with_kills += err.find("by --chaos-kill") != std::string::npos;
  }
  EXPECT_GT(runs_with_kills, 0) << "no run killed a worker";
}

}  // namespace
}  // namespace kappa::testing
