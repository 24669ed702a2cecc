// The primes example's kernel alone (examples/primes/primes_kernel.h): the
// primes below n counted on one core, for segments of 32 KiB (L1), 256 KiB
// (the app's default) and 1 MiB (L2 here). bench/peers/dask_primes.py's count_range is the same
// work in numpy; compare on the same machine in the same run:
//
//   build/bench/kappa_primes_kernel_bench --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
//   /usr/bin/python3 -c 'import sys, time; sys.path.insert(0, "bench/peers"); import dask_primes as
//   d;
//     t = time.process_time(); d.count_range(2, 10**9); print(time.process_time() - t)'
#include <benchmark/benchmark.h>

#include <cstdint>

#include "primes/primes_kernel.h"

namespace {

// Arguments: log10(n), segment in KiB.
void BM_CountPrimesBelow(benchmark::State& state) {
  uint64_t n = 1;
  for (int64_t k = 0; k < state.range(0); ++k) n *= 10;
  const uint64_t segment_bytes = uint64_t(state.range(1)) << 10;
  for (auto _ : state) benchmark::DoNotOptimize(kappa_examples::count_primes(2, n, segment_bytes));
  state.counters["n"] = double(n);
}
BENCHMARK(BM_CountPrimesBelow)
    ->ArgNames({"log10n", "segment_kb"})
    ->ArgsProduct({{9, 10}, {32, 256, 1024}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
