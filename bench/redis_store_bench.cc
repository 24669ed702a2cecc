// The Redis checkpoint store against the raw server: a put and a get through
// RedisStore (what a worker does with an image), beside a plain hiredis SET
// and GET of the same bytes on a connection of their own (no store layer),
// at 4 KiB, 1 MiB and 100 MiB, against the redis-server at $KAPPA_BENCH_REDIS
// (redis://HOST:PORT). Each benchmark runs one operation per repetition: run
// it with --benchmark_repetitions=N for the median of N operations.
// bench/redis_store_bench.py starts a server, runs this and redis-benchmark
// against it in alternation, and prints the medians as a table.
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "stores/checkpoint_store.h"

namespace kappa::detail {
namespace {

std::string redis_url() {
  const char* url = std::getenv("KAPPA_BENCH_REDIS");
  return url && *url ? url : "redis://127.0.0.1:6379";
}

// The bytes written at `size` (made once: the benchmarks are repeated with
// one iteration each, so that their median is the median operation).
const std::string& value_of(size_t size) {
  static std::map<size_t, std::string> values;
  std::string& v = values[size];
  if (v.size() != size) {
    v.resize(size);
    for (size_t i = 0; i < size; ++i) v[i] = char(i * 131 + (i >> 13));
  }
  return v;
}

// Whether `key` was written already by this process.
bool first_time(const std::string& key) {
  static std::set<std::string> written;
  return written.insert(key).second;
}

CheckpointStore& store() {
  static std::unique_ptr<CheckpointStore> s = open_store(redis_url());
  return *s;
}

// A plain hiredis connection to the same server.
redisContext* raw() {
  static redisContext* c = [] {
    std::string rest = redis_url().substr(std::strlen("redis://"));
    size_t colon = rest.rfind(':');
    redisContext* ctx =
        redisConnect(rest.substr(0, colon).c_str(), std::atoi(rest.substr(colon + 1).c_str()));
    if (!ctx || ctx->err) std::abort();
    return ctx;
  }();
  return c;
}

void BM_StorePut(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  for (auto _ : state) store().put("bench/store", v);
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}

void BM_StoreGet(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  std::string key = "bench/store-get-" + std::to_string(v.size());
  if (first_time(key)) store().put(key, v);
  for (auto _ : state) {
    std::optional<std::string> got = store().get(key);
    if (!got || got->size() != v.size()) state.SkipWithError("wrong value");
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}

void BM_RawSet(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  const char* argv[] = {"SET", "bench/raw", v.data()};
  size_t argvlen[] = {3, 9, v.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw(), 3, argv, argvlen));
    if (!r || r->type != REDIS_REPLY_STATUS) state.SkipWithError("SET failed");
    freeReplyObject(r);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}

void BM_RawGet(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  std::string key = "bench/raw-get-" + std::to_string(v.size());
  const char* set[] = {"SET", key.c_str(), v.data()};
  size_t setlen[] = {3, key.size(), v.size()};
  if (first_time(key)) freeReplyObject(redisCommandArgv(raw(), 3, set, setlen));
  const char* get[] = {"GET", key.c_str()};
  size_t getlen[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw(), 2, get, getlen));
    if (!r || r->type != REDIS_REPLY_STRING || r->len != v.size())
      state.SkipWithError("GET failed");
    freeReplyObject(r);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("bytes")
      ->Arg(4 << 10)
      ->Arg(1 << 20)
      ->Arg(100 << 20)
      ->Iterations(1)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_StorePut)->Apply(sizes);
BENCHMARK(BM_RawSet)->Apply(sizes);
BENCHMARK(BM_StoreGet)->Apply(sizes);
BENCHMARK(BM_RawGet)->Apply(sizes);

}  // namespace
}  // namespace kappa::detail

BENCHMARK_MAIN();
