// JobState alone, with no threads, transport or processes: the cost per task
// of the coordinator's decisions, at growing job sizes. The time per task
// must stay flat as n grows (it grew with n before the state machine:
// wait_all rescanned its futures at each resolution).
//
//   build/bench/kappa_job_state_bench
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <string>

#include "coordinator/job_state.h"
#include "coordinator/journal.h"
#include "journals/journal_factory.h"
#include "kappa/detail/calls.h"

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

// The empty queue round trip of bench/apps/bench_app.cc (queue_rtt) as the
// coordinator sees it, without processes or transport: task 1 enqueues on
// q1, which task 2 waits on, and waits on q2, which task 2 then enqueues on;
// four calls, each with an inline image of 3 KB (the size of the bench app's
// images), per round trip. Arg: 0 no journal, 1 the SQLite journal on the
// disk (/var/tmp), 2 on a tmpfs (/dev/shm): what the journal adds to each
// event, as CPU and system time on this thread.
void BM_QueueRoundTripEvents(benchmark::State& state) {
  std::unique_ptr<Journal> journal;
  std::string path;
  if (state.range(0)) {
    path = std::string(state.range(0) == 1 ? "/var/tmp" : "/dev/shm") + "/kappa-bench-" +
           std::to_string(getpid()) + ".db";
    journal = open_journal("sqlite://" + path);
    journal->begin(JobIdentity{.job = "bench"});
  }
  JobStateOptions o;
  o.max_workers = 2;
  o.grace = std::chrono::hours(1);  // blocked calls wait where they are
  JobState s(o);
  TimePoint now{};
  Effects fx;
  auto event = [&](auto&& apply) {
    fx.clear();
    apply();
    if (journal) journal->record(s, fx.changes);
  };
  const std::string image(3 << 10, 'i');
  uint64_t seq[3] = {0, 0, 0};
  auto call = [&](uint64_t worker, uint64_t task, Op op, std::string request) {
    event([&] {
      s.call(CallInfo{.worker_id = worker,
                      .task_id = task,
                      .seqno = seq[task]++,
                      .image = image,
                      .op = op,
                      .request = std::move(request)},
             now, fx);
    });
  };
  event([&] { s.spawn_root(trivial(), now, fx); });
  event([&] { s.next(1, now, fx); });
  call(1, 1, Op::kMakeQueue, encode(uint64_t{1}));
  uint64_t q1 = decode<uint64_t>(std::get<CallOutcome>(fx.answers.back().body).reply);
  call(1, 1, Op::kMakeQueue, encode(uint64_t{1}));
  uint64_t q2 = decode<uint64_t>(std::get<CallOutcome>(fx.answers.back().body).reply);
  call(1, 1, Op::kSpawn, encode(std::vector<SpawnSpec>{trivial()}));
  event([&] { s.next(2, now, fx); });
  call(2, 2, Op::kDequeue, encode(q1));
  const std::string item;  // empty
  for (auto _ : state) {
    call(1, 1, Op::kEnqueue, enqueue_request(q1, item));  // hands it to task 2
    call(1, 1, Op::kDequeue, encode(q2));                 // waits
    call(2, 2, Op::kEnqueue, enqueue_request(q2, item));  // hands it to task 1
    call(2, 2, Op::kDequeue, encode(q1));                 // waits
  }
  if (s.stats().calls < 4 * uint64_t(state.iterations())) state.SkipWithError("calls were lost");
  journal.reset();
  if (!path.empty())
    for (const char* suffix : {"", "-wal", "-shm", "-log"}) std::filesystem::remove(path + suffix);
  state.counters["per_event"] = benchmark::Counter(
      4.0 * double(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_QueueRoundTripEvents)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kappa::detail

BENCHMARK_MAIN();
