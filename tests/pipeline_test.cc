// The pipeline example end to end: the consumer's count, sum and
// order-sensitive checksum against the same computed here, normally and with
// workers killed at random (every item still consumed exactly once, in order).
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

// What the consumer must see: the squares of 1..items, in order.
nlohmann::json expected(uint64_t items) {
  uint64_t sum = 0, checksum = 0xcbf29ce484222325ull;
  for (uint64_t i = 1; i <= items; ++i) {
    sum += i * i;
    checksum = (checksum ^ (i * i)) * 0x100000001b3ull;
  }
  return {{"items", items},    {"produced", items}, {"transformed", items},
          {"consumed", items}, {"sum", sum},        {"checksum", checksum}};
}

nlohmann::json run_pipeline(const nlohmann::json& event, const std::vector<std::string>& options,
                            std::string* err = nullptr) {
  std::vector<std::string> argv = {PIPELINE_APP, "run", "--event", event.dump()};
  argv.insert(argv.end(), options.begin(), options.end());
  ProcessResult r = run_process(argv);
  if (err) *err = r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
}

TEST(Pipeline, ConsumesEveryItemOnceInOrder) {
  for (auto [items, capacity] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 4}, {1, 4}, {1000, 4}, {300, 1}, {300, 0}, {300, 1000}}) {
    nlohmann::json out = run_pipeline({{"items", items}, {"capacity", capacity}}, {});
    if (HasFailure()) return;
    EXPECT_EQ(out, expected(items)) << "capacity " << capacity;
  }
}

// Workers killed at random: a task restarted from its last checkpoint
// neither enqueues nor dequeues an item twice, nor loses one.
TEST(PipelineChaos, ConsumesEveryItemOnceWhenWorkersAreKilled) {
  int runs_with_kills = 0;
  for (int seed = 1; seed <= 3; ++seed) {
    std::string err;
    nlohmann::json out = run_pipeline(
        {{"items", 500}}, {"--chaos-kill", "0.3", "--seed", std::to_string(seed)}, &err);
    if (HasFailure()) return;
    EXPECT_EQ(out, expected(500)) << "seed " << seed;
    runs_with_kills += err.find("by --chaos-kill") != std::string::npos;
  }
  EXPECT_GT(runs_with_kills, 0) << "no run killed a worker";
}

}  // namespace
}  // namespace kappa::testing
