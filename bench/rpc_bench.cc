// Worker <-> coordinator round trips: one checkpoint call through the real
// transport and coordinator, as a worker makes at every blocking pause point.
// Client and server share this process; the figures bound what the queue and
// spawn round trips of bench/run_app_bench.py can reach.
#include <benchmark/benchmark.h>

#include <string>

#include "coordinator/coordinator.h"
#include "kappa/detail/calls.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "runtime/runtime.h"

namespace kappa::detail {
namespace {

// Arg 0: transport (0: Unix socket, 1: gRPC); arg 1: image bytes sent
// inline; arg 2: request bytes.
void BM_CheckpointCall(benchmark::State& state) {
  runtime_init();  // as in every Kappa process (heap settings for large values)
  Coordinator coordinator(JobStateOptions{}, nullptr);
  coordinator.spawn_root(SpawnSpec{});
  CoordinatorServer server(
      &coordinator,
      ServerOptions{.listen = state.range(0) ? "127.0.0.1:0" : "unix:@kappa-rpc-bench",
                    .token = "token"});
  CoordinatorClient client(server.address(), "token", 1);
  Assignment a = client.next();
  if (a.kind != Assignment::Kind::kStart) state.SkipWithError("no assignment");
  std::string image(size_t(state.range(1)), 'i'), request(size_t(state.range(2)), 'r');
  uint64_t seqno = 0;
  for (auto _ : state) {
    CallInfo info;
    info.task_id = a.task_id;
    info.seqno = seqno++;
    info.image = image;
    info.op = Op::kCheckpoint;
    info.request = request;
    CallOutcome o = client.call(std::move(info));
    if (o.kind != CallOutcome::Kind::kResult) state.SkipWithError("call not applied");
  }
  coordinator.shutdown();
}
BENCHMARK(BM_CheckpointCall)
    ->ArgNames({"grpc", "image", "request"})
    ->ArgsProduct({{0, 1}, {4 << 10}, {0, 1 << 20}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kappa::detail

BENCHMARK_MAIN();
