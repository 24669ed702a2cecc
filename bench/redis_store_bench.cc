// The Redis checkpoint store against the raw server: put, get and get_checked
// through RedisStore (what workers do with images), beside the same SET and
// GET without the store layer: a plain hiredis client, and the least a client
// can do on its own socket. At 4 KiB, 1 MiB and 100 MiB, against the
// redis-server at $KAPPA_BENCH_REDIS (redis://HOST:PORT). Each benchmark runs one operation per
// repetition: run it with --benchmark_repetitions=N for the median of N operations.
// bench/redis_store_bench.py starts a server, runs this and redis-benchmark
// against it in alternation, and prints the medians as a table.
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "runtime/runtime.h"
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
  runtime_init();  // as in every Kappa process (heap settings for large values)
  static std::unique_ptr<CheckpointStore> s = open_store(redis_url());
  return *s;
}

// A plain hiredis connection to the same server.
redisContext* raw() {
  runtime_init();
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

// The least a client can do on its own socket: SET sent from the caller's
// bytes with one sendmsg, GET received into a buffer reused from one call to
// the next (no allocation, no page to fault in), each up to its last byte.
// A lower bound for the store, which returns every value in a new string.
class RawSocket {
 public:
  RawSocket() : fd_(raw_socket_context()->fd) {}

  void set(const std::string& key, std::string_view value) {
    std::string header = "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key +
                         "\r\n$" + std::to_string(value.size()) + "\r\n";
    iovec iov[3] = {{header.data(), header.size()},
                    {const_cast<char*>(value.data()), value.size()},
                    {const_cast<char*>("\r\n"), 2}};
    send_all(iov, 3);
    receive(5);  // +OK\r\n
  }

  // The value's size.
  size_t get(const std::string& key, size_t expected) {
    std::string cmd = "*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
    iovec iov{cmd.data(), cmd.size()};
    send_all(&iov, 1);
    std::string header = "$" + std::to_string(expected) + "\r\n";
    receive(header.size() + expected + 2);
    return buffer_.compare(0, header.size(), header) == 0 ? expected : 0;
  }

 private:
  static redisContext* raw_socket_context() {
    std::string rest = redis_url().substr(std::strlen("redis://"));
    size_t colon = rest.rfind(':');
    redisContext* ctx =
        redisConnect(rest.substr(0, colon).c_str(), std::atoi(rest.substr(colon + 1).c_str()));
    if (!ctx || ctx->err) std::abort();
    return ctx;  // kept open for the process's life
  }
  void send_all(iovec* iov, int count) {
    while (count > 0) {
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = size_t(count);
      ssize_t n = sendmsg(fd_, &m, MSG_NOSIGNAL);
      if (n < 0) std::abort();
      for (size_t left = size_t(n); count > 0 && left > 0;) {
        size_t step = std::min(left, iov->iov_len);
        iov->iov_base = static_cast<char*>(iov->iov_base) + step;
        iov->iov_len -= step;
        left -= step;
        if (iov->iov_len == 0) ++iov, --count;
      }
      while (count > 0 && iov->iov_len == 0) ++iov, --count;
    }
  }
  void receive(size_t n) {
    if (buffer_.size() < n) buffer_.resize(n);
    for (size_t got = 0; got < n;) {
      ssize_t r = recv(fd_, buffer_.data() + got, n - got, MSG_WAITALL);
      if (r <= 0) std::abort();
      got += size_t(r);
    }
  }
  int fd_;
  std::string buffer_;
};

RawSocket& raw_socket() {
  runtime_init();
  static RawSocket s;
  return s;
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

// What a worker does to restore an image: the head and size first (here a
// check that accepts anything), then the value.
void BM_StoreGetChecked(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  std::string key = "bench/store-get-" + std::to_string(v.size());
  if (first_time(key)) store().put(key, v);
  for (auto _ : state) {
    std::optional<std::string> got =
        store().get_checked(key, 256, [](std::string_view, uint64_t) {});
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

void BM_RawSocketSet(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  for (auto _ : state) raw_socket().set("bench/socket", v);
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}

void BM_RawSocketGet(benchmark::State& state) {
  const std::string& v = value_of(size_t(state.range(0)));
  std::string key = "bench/socket-get-" + std::to_string(v.size());
  if (first_time(key)) raw_socket().set(key, v);
  for (auto _ : state)
    if (raw_socket().get(key, v.size()) != v.size()) state.SkipWithError("GET failed");
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
BENCHMARK(BM_StoreGetChecked)->Apply(sizes);
BENCHMARK(BM_RawGet)->Apply(sizes);
BENCHMARK(BM_RawSocketSet)->Apply(sizes);
BENCHMARK(BM_RawSocketGet)->Apply(sizes);

}  // namespace
}  // namespace kappa::detail

BENCHMARK_MAIN();
