// The reference implementation's semantic test programs (tests/apps/
// semantics_app.cc) with their expected results: run by every backend's
// tests (semantics_test.cc: local, in several modes; slurm_job_test.cc: a
// Slurm cluster; aws_test.cc: the Lambda fixture).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/changing_state.h"

namespace kappa::testing {

struct Program {
  std::string name;
  nlohmann::json event;
  // Computed in the test, not at registration: some take seconds.
  std::function<nlohmann::json()> expected;
};

inline uint64_t factorial_mod(uint64_t n) {
  uint64_t acc = 1;
  for (uint64_t i = 2; i <= n; ++i) acc = acc * i % 1'000'000'007;
  return acc;
}

inline int64_t fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

inline uint64_t long_loop(uint64_t iterations) {
  uint64_t x = 1;
  for (uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    x ^= x >> 29;
  }
  return x;
}

// About six seconds of work here (clang 16 build): over five times the
// one-second time limit.
constexpr uint64_t kLongLoop = 1'500'000'000;

inline std::vector<Program> programs() {
  return {
      {"factorial", {{"program", "factorial"}, {"n", 20000}}, [] { return factorial_mod(20000); }},
      {"fib", {{"program", "fib"}, {"n", 10}}, [] { return fib(10); }},
      {"tree_sum", {{"program", "tree_sum"}, {"n", 32}}, [] { return 32 * 33 / 2; }},
      {"odd_sum", {{"program", "odd_sum"}, {"n", 50}}, [] { return 50 * 50; }},
      {"ping_pong_rendezvous",
       {{"program", "ping_pong"}, {"max_size", 0}, {"rounds", 5}},
       [] { return std::vector<std::string>(5, "pingpong"); }},
      {"ping_pong_bounded",
       {{"program", "ping_pong"}, {"max_size", 1}, {"rounds", 5}},
       [] { return std::vector<std::string>(5, "pingpong"); }},
      {"work_queue",
       {{"program", "work_queue"}, {"n", 200}, {"m", 4}},
       [] {
         return nlohmann::json{{"sum", 200 * 199 / 2}, {"count", 200}};
       }},
      {"work_queue_async_enqueue",
       {{"program", "work_queue"}, {"n", 200}, {"m", 4}, {"async", true}},
       [] {
         return nlohmann::json{{"sum", 200 * 199 / 2}, {"count", 200}};
       }},
      {"long_loop",
       {{"program", "long_loop"}, {"iterations", kLongLoop}},
       [] { return long_loop(kLongLoop); }},
      // 8-12 MiB changing a little at each of 60 checkpoints: chains of
      // delta images, growing and shrinking.
      {"changing_state",
       {{"program", "changing_state"}, {"rounds", 60}},
       [] { return changing_state::run_plain(60); }},
      // Two words a round: deltas of a few pages, which travel inline on
      // top of the stored links until they add up to more than fits.
      {"changing_state_small_deltas",
       {{"program", "changing_state"}, {"rounds", 60}, {"words", 2}},
       [] { return changing_state::run_plain(60, 8, 2); }},
      // 40 MiB: its full images (more than 32 MiB of state) are streamed to
      // the store and restored by ranges.
      {"changing_state_streamed",
       {{"program", "changing_state"}, {"rounds", 20}, {"mib", 40}},
       [] { return changing_state::run_plain(20, 40); }},
  };
}

}  // namespace kappa::testing
