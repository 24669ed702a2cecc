// The primes example end to end: its count of the primes below n against
// counts made here by two other methods (a plain sieve for small n, Lucy
// Hedgehog's prime-counting recurrence for large n), with and without
// workers cut by a short time limit, and the hand-written baseline's count.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/prime_counts.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

// The primes below n, by the plain sieve of Eratosthenes over [0, n).
uint64_t primes_below_by_sieve(uint64_t n) {
  if (n < 3) return 0;
  std::vector<bool> composite(n);
  uint64_t count = 0;
  for (uint64_t i = 2; i < n; ++i) {
    if (composite[i]) continue;
    ++count;
    for (uint64_t j = i * i; j < n; j += i) composite[j] = true;
  }
  return count;
}

nlohmann::json run_primes(const nlohmann::json& event, const std::vector<std::string>& options,
                          std::string* err = nullptr) {
  std::vector<std::string> argv = {PRIMES_APP, "run", "--event", event.dump()};
  argv.insert(argv.end(), options.begin(), options.end());
  ProcessResult r = run_process(argv);
  if (err) *err = r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out);
}

TEST(PrimesCounting, TheTwoMethodsOfThisTestAgree) {
  for (uint64_t n : {0, 1, 2, 3, 4, 5, 100, 101, 65536, 1000000})
    EXPECT_EQ(primes_below_by_sieve(n), primes_up_to_by_lucy(n == 0 ? 0 : n - 1)) << n;
}

// Small n, edge values, and n around the end of the first segments: with
// "segment_kb": 1 a segment holds 1024 bytes of the mod-30 wheel, the
// numbers 0..30719 the first.
TEST(Primes, CountsThePrimesBelowNAsAPlainSieveDoes) {
  struct Case {
    uint64_t n, tasks, segment_kb;
  };
  for (Case c : std::vector<Case>{{2, 1, 1},
                                  {3, 1, 1},
                                  {4, 2, 1},
                                  {100, 7, 1},
                                  {30720, 1, 1},
                                  {30721, 1, 1},
                                  {30722, 3, 1},
                                  {61447, 2, 1},
                                  {10000000, 4, 256}}) {
    nlohmann::json out =
        run_primes({{"n", c.n}, {"tasks", c.tasks}, {"segment_kb", c.segment_kb}}, {});
    if (HasFailure()) return;
    EXPECT_EQ(out["n"], c.n);
    EXPECT_EQ(out["primes"], primes_below_by_sieve(c.n)) << "n = " << c.n;
    EXPECT_EQ(out["tasks"], c.tasks);
  }
}

// A computation several times the time limit: the workers are cut at 1 s
// (each task takes seconds: about 3 s of CPU with the mod-30 wheel), the
// tasks handed over at their checkpoints and resumed elsewhere, and the count
// is still exact.
TEST(Primes, GivesTheSameCountWhenWorkersAreCutByTheTimeLimit) {
  TempDir dir;
  const uint64_t n = 40000000000;
  std::string err;
  nlohmann::json out = run_primes({{"n", n}, {"tasks", 2}},
                                  {"--time-limit", "1", "--trace", dir / "trace.json"}, &err);
  if (HasFailure()) return;
  EXPECT_EQ(out["primes"], primes_up_to_by_lucy(n - 1));
  // The trace: one span per invocation (categories start and resume), ended by "yield" where a
  // worker handed its task over at its time limit. Each task that did must have run again
  // afterwards, to its end.
  auto events = nlohmann::json::parse(read_file(dir / "trace.json"))["traceEvents"];
  std::map<uint64_t, std::vector<std::string>> outcomes;  // per counting task
  for (const auto& e : events)
    if (e.value("ph", "") == "X" && e.value("name", "") != "handler" &&
        (e.value("cat", "") == "start" || e.value("cat", "") == "resume"))  // invocations
      outcomes[e["args"]["task"].get<uint64_t>()].push_back(e["args"].value("outcome", ""));
  ASSERT_EQ(outcomes.size(), 2u) << events;
  size_t yields = 0;
  for (const auto& [task, list] : outcomes) {
    EXPECT_EQ(list.back(), "finished") << "task " << task;
    for (const std::string& o : list) yields += o == "yield";
  }
  EXPECT_GE(yields, 2u) << "the workers were not cut: " << events;
  EXPECT_NE(err.find("parks"), std::string::npos) << err;  // the summary line
}

TEST(Primes, TheBaselineCountsAsTheAppDoes) {
  nlohmann::json event = {{"n", 30000000}, {"tasks", 5}, {"segment_kb", 32}};
  nlohmann::json app = run_primes(event, {});
  if (HasFailure()) return;
  for (const char* procs : {"1", "2"}) {
    ProcessResult r = run_process({PRIMES_BASELINE, "--procs", procs, "--event", event.dump()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["primes"], app["primes"]) << "--procs " << procs;
    EXPECT_EQ(out["n"], app["n"]);
  }
  EXPECT_EQ(app["primes"], primes_up_to_by_lucy(30000000 - 1));
}

}  // namespace
}  // namespace kappa::testing
