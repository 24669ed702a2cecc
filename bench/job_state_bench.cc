// JobState alone, with no threads, transport or processes: the cost per task
// of the coordinator's decisions, at growing job sizes. The time per task
// must stay flat as n grows (it grew with n before the state machine:
// wait_all rescanned its futures at each resolution).
//
//   build/bench/kappa_job_state_bench
#include <benchmark/benchmark.h>

#include "coordinator/job_state.h"

namespace kappa::detail {
namespace {

SpawnSpec trivial() {
  SpawnSpec s;
  s.fn = 0x1000;
  s.trampoline = 0x2000;
  s.args.push_back({0, encode(int64_t{1})});
  return s;
}

// The root map_spawns n trivial tasks and waits for all of them (one
// wait_all); worker 2 runs them one after another.
void BM_MapSpawnWaitAll(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  for (auto _ : state) {
    JobStateOptions o;
    o.max_workers = 2;
    JobState s(o);
    TimePoint now{};
    Effects fx;
    s.spawn_root(trivial(), now, fx);
    fx.clear();
    s.next(1, now, fx);
    fx.clear();
    std::vector<SpawnSpec> specs(n, trivial());
    s.call(
        CallInfo{
            .worker_id = 1, .task_id = 1, .seqno = 0, .op = Op::kSpawn, .request = encode(specs)},
        now, fx);
    std::vector<uint64_t> ids =
        decode<std::vector<uint64_t>>(std::get<CallOutcome>(fx.answers.back().body).reply);
    fx.clear();
    s.call(
        CallInfo{.worker_id = 1, .task_id = 1, .seqno = 1, .op = Op::kWait, .request = encode(ids)},
        now, fx);
    fx.clear();
    s.next(2, now, fx);
    for (size_t i = 0; i < n; ++i) {
      auto& a = std::get<Assignment>(fx.answers.back().body);
      uint64_t task = a.task_id;
      fx.clear();
      s.finish(FinishInfo{2, task, 0, false, encode(int64_t(task)), "", true}, now, fx);
    }
    if (s.stats().finished != n) state.SkipWithError("not all tasks finished");
    benchmark::DoNotOptimize(fx);
  }
  state.counters["per_task"] =
      benchmark::Counter(double(n) * double(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_MapSpawnWaitAll)
    ->Arg(10'000)
    ->Arg(40'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kappa::detail

BENCHMARK_MAIN();
