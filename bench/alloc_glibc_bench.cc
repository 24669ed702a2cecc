// Baseline for the allocator benchmark: the same workload in a binary without
// Kappa's allocator hooks, i.e. plain glibc malloc.
#include <benchmark/benchmark.h>

#include "alloc_workload.h"

static void BM_MapWorkload_PureGlibc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(kappa::bench::build_and_tear_down_map(1'000'000));
}
BENCHMARK(BM_MapWorkload_PureGlibc)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

BENCHMARK_MAIN();
