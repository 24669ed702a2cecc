// Counting primes: a long computation that outlives many worker time limits.
//
//   primes run --event '{"n": 10000000000}' --time-limit 2
//   -> {"n":10000000000,"primes":455052511,"tasks":8,...}
//
// The handler splits [2, n) into `tasks` ranges and starts one task per range
// (map_spawn). Each task counts the primes of its range with a segmented sieve
// of Eratosthenes (primes_kernel.h) and reaches kappa::maybe_checkpoint() once
// per segment: the sieve's state (its segment, its sieving primes with their
// next multiples) lives in the task's arena, so when the checkpoint interval
// has passed, or the worker's time limit is near, the task is checkpointed
// there and goes on, here or in a fresh worker, from the next segment. With
// --time-limit 2 a task is cut every two seconds and resumed elsewhere; the
// answer is the same as without a limit. The handler sums the counts.
//
// Event fields (all optional):
//   "n"           count the primes below n (default 10^9); at most 2^62
//   "tasks"       how many tasks split [2, n) (default 8)
//   "segment_kb"  the sieve's segment in KiB, a mod-30 wheel (a byte holds
//                 the 8 numbers coprime to 30 of 30 numbers): 30 Ki numbers
//                 per KiB (default 256: it fits L2, and beat 32 KiB (L1) in
//                 bench/primes_kernel_bench.cc)
//
// Result fields:
//   "n"           the event's n
//   "primes"      pi(n - 1): how many primes p satisfy p < n (0 for n <= 2);
//                 pi(10^9) = 50847534, pi(10^10) = 455052511
//   "tasks", "segment_kb": as used
//   "seconds"     the handler's wall time
#include <kappa/kappa.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "primes_kernel.h"

namespace {

using kappa::Future;
using kappa::Task;
using kappa_examples::PrimeCounter;

struct Range {
  uint64_t lo = 0, hi = 0;
  template <class A>
  void serialize(A& a) {
    a(lo, hi);
  }
};

// Counts the primes in [lo, hi), one segment between two pause points.
Task<uint64_t> count_range(Range r, uint64_t segment_bytes) {
  PrimeCounter counter(r.lo, r.hi, segment_bytes);
  while (!counter.done()) {
    counter.sieve_next_segment();
    co_await kappa::maybe_checkpoint();
  }
  co_return counter.count();
}

Task<nlohmann::json> handler(nlohmann::json event) {
  auto t0 = std::chrono::system_clock::now();  // the handler may resume elsewhere
  const uint64_t n = event.value("n", uint64_t{1000000000});
  const uint64_t tasks = std::max<uint64_t>(1, event.value("tasks", uint64_t{8}));
  const uint64_t segment_kb = std::max<uint64_t>(1, event.value("segment_kb", uint64_t{256}));
  if (n > (uint64_t{1} << 62)) throw kappa::Error("n is above 2^62");

  std::vector<Range> ranges;
  for (uint64_t i = 0; i < tasks; ++i)
    ranges.push_back(
        {kappa_examples::range_begin(n, tasks, i), kappa_examples::range_begin(n, tasks, i + 1)});
  std::vector<Future<uint64_t>> counts =
      co_await kappa::map_spawn(count_range, ranges, segment_kb << 10);
  uint64_t primes = 0;
  for (uint64_t c : co_await kappa::wait_all(counts)) primes += c;

  nlohmann::json out;
  out["n"] = n;
  out["primes"] = primes;
  out["tasks"] = tasks;
  out["segment_kb"] = segment_kb;
  out["seconds"] = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
