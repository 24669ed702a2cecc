// The primes example (examples/primes) without Kappa: the same ranges and the
// same sieve (primes_kernel.h), in one process (--procs 1) or in forked
// workers that take the ranges in turn and send their counts through pipes.
//
//   primes_baseline --procs 2 --event '{"n": 10000000000}'
//   -> {"n":10000000000,"primes":455052511,"tasks":8,"segment_kb":256,...}
#include <cstdint>
#include <string>

#include "baseline.h"
#include "primes/primes_kernel.h"

int main(int argc, char** argv) {
  return kappa_baselines::baseline_main(argc, argv, [](const nlohmann::json& event, int procs) {
    const uint64_t n = event.value("n", uint64_t{1000000000});
    const uint64_t tasks = std::max<uint64_t>(1, event.value("tasks", uint64_t{8}));
    const uint64_t segment_kb = std::max<uint64_t>(1, event.value("segment_kb", uint64_t{256}));
    if (n > (uint64_t{1} << 62)) throw std::invalid_argument("n is above 2^62");
    // Worker w counts the ranges w, w + procs, w + 2 procs, ...: the ranges
    // cost about the same, so a static split balances.
    std::vector<std::string> outs = kappa_baselines::run_forked(procs, [&](int w) {
      uint64_t count = 0;
      for (uint64_t i = uint64_t(w); i < tasks; i += uint64_t(procs))
        count += kappa_examples::count_primes(kappa_examples::range_begin(n, tasks, i),
                                              kappa_examples::range_begin(n, tasks, i + 1),
                                              segment_kb << 10);
      return std::to_string(count);
    });
    uint64_t primes = 0;
    for (const std::string& s : outs) primes += std::stoull(s);
    return nlohmann::json{
        {"n", n}, {"primes", primes}, {"tasks", tasks}, {"segment_kb", segment_kb}};
  });
}
