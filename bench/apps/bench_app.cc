// Whole-job benchmarks of the coordinator and the local backend (issue 3's
// goals). The event's "bench" picks a workload; the handler measures it from
// inside the job and returns the figures as JSON. Run through
// bench/run_app_bench.sh, which also records peak RSS and the peer figures.
#include <kappa/kappa.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using kappa::Future;
using kappa::Task;

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int64_t trivial(int64_t x) { return x; }

// Sequential spawn + wait of a trivial task.
Task<nlohmann::json> seq_spawn_wait(int n) {
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    double t0 = now_s();
    Future<int64_t> f = co_await kappa::spawn(trivial, int64_t(i));
    co_await f;
    samples.push_back((now_s() - t0) * 1e3);
  }
  co_return nlohmann::json{{"median_ms", median(samples)}, {"n", n}};
}

// Throughput of trivial tasks: map_spawn n of them, wait for all.
Task<nlohmann::json> spawn_throughput(int n) {
  std::vector<int64_t> xs(n);
  for (int i = 0; i < n; ++i) xs[i] = i;
  double t0 = now_s();
  auto fs = co_await kappa::map_spawn(trivial, xs);
  auto vs = co_await kappa::wait_all(fs);
  double dt = now_s() - t0;
  co_return nlohmann::json{
      {"tasks_per_s", n / dt}, {"n", n}, {"seconds", dt}, {"check", vs.back()}};
}

// Queue round trip: the handler enqueues, an echo task dequeues and enqueues back.
Task<int> echo(kappa::Queue<std::string> in, kappa::Queue<std::string> out, int n) {
  for (int i = 0; i < n; ++i) co_await out.enqueue(co_await in.dequeue());
  co_return n;
}

// With `random`, the message is incompressible bytes (else one repeated
// character, which the checkpoint compressor makes nearly free).
Task<nlohmann::json> queue_rtt(int n, size_t bytes, bool random) {
  auto q1 = co_await kappa::make_queue<std::string>(1);
  auto q2 = co_await kappa::make_queue<std::string>(1);
  auto done = co_await kappa::spawn(echo, q1, q2, n);
  std::string msg(bytes, 'x');
  if (random) {
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (char& c : msg) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
      c = char(x);
    }
  }
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    double t0 = now_s();
    co_await q1.enqueue(msg);
    std::string back = co_await q2.dequeue();
    samples.push_back((now_s() - t0) * 1e3);
    if (back.size() != bytes) throw std::runtime_error("echo lost bytes");
  }
  co_await done;
  co_return nlohmann::json{
      {"median_ms", median(samples)}, {"n", n}, {"bytes", bytes}, {"random", random}};
}

// n checkpoints in a loop.
Task<nlohmann::json> checkpoint_loop(int n) {
  double t0 = now_s();
  int64_t x = 0;
  for (int i = 0; i < n; ++i) {
    x += i;
    co_await kappa::checkpoint();
  }
  double dt = now_s() - t0;
  co_return nlohmann::json{{"seconds", dt}, {"n", n}, {"check", x}};
}

Task<int64_t> fib(int n) {
  if (n < 2) co_return n;
  Future<int64_t> a = co_await kappa::spawn(fib, n - 1);
  Future<int64_t> b = co_await kappa::spawn(fib, n - 2);
  int64_t x = co_await a;
  co_return x + co_await b;
}

Task<nlohmann::json> fib_bench(int n) {
  double t0 = now_s();
  int64_t v = co_await fib(n);
  co_return nlohmann::json{{"seconds", now_s() - t0}, {"value", v}};
}

// Restart time (bench/journal_bench.py): n tasks that each create the file
// `mark` as they start (a side effect outside Kappa, seen by the benchmark
// when the first task of a restarted job runs), then compute for `ms`.
int64_t marking_task(int64_t i, std::string mark, int64_t ms) {
  if (FILE* f = std::fopen(mark.c_str(), "a")) std::fclose(f);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  int64_t spins = 0;
  while (std::chrono::steady_clock::now() < until) ++spins;
  return i + (spins > 0);
}

Task<nlohmann::json> restart_probe(int n, std::string mark, int64_t ms) {
  std::vector<int64_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = i;
  auto fs = co_await kappa::map_spawn(marking_task, ids, mark, ms);
  auto done = co_await kappa::wait_all(fs);
  co_return nlohmann::json{{"tasks", done.size()}};
}

// A task holding a large state (bench/handover_bench.py): `mib` MiB of random
// bytes, of which `change_kib` KiB (a sliding window) are rewritten per step,
// with a maybe_checkpoint() after every step, until `seconds` of work are
// done (counted across attempts: the steps done so far are in the state).
// Returns a checksum of the state and the number of steps.
Task<nlohmann::json> large_state(int64_t mib, int64_t change_kib, double seconds) {
  const size_t bytes = size_t(mib) << 20, change = std::max<size_t>(8, size_t(change_kib) << 10);
  std::vector<uint64_t> state(bytes / 8);
  uint64_t x = 0x9E3779B97F4A7C15u;
  auto next = [&x] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
    return x;
  };
  for (uint64_t& w : state) w = next();
  co_await kappa::maybe_checkpoint();
  // Work is measured in steps, each about 1 ms of computation, so that the
  // total does not depend on how often the task is restarted.
  const int64_t steps = int64_t(seconds * 1000);
  const size_t words = change / 8;
  size_t at = 0;
  for (int64_t step = 0; step < steps; ++step) {
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(1000);
    for (size_t i = 0; i < words; ++i) state[(at + i) % state.size()] += next();
    at = (at + words) % state.size();
    while (std::chrono::steady_clock::now() < until) {
    }
    co_await kappa::maybe_checkpoint();
  }
  uint64_t sum = 0;
  for (uint64_t w : state) sum = sum * 31 + w;
  co_return nlohmann::json{{"checksum", sum}, {"steps", steps}, {"mib", mib}};
}

Task<nlohmann::json> handler(nlohmann::json e) {
  std::string b = e.at("bench");
  if (b == "seq_spawn_wait") co_return co_await seq_spawn_wait(e.value("n", 200));
  if (b == "spawn_throughput") co_return co_await spawn_throughput(e.value("n", 2000));
  if (b == "queue_rtt")
    co_return co_await queue_rtt(e.value("n", 200), e.value("bytes", 0), e.value("random", false));
  if (b == "checkpoint_loop") co_return co_await checkpoint_loop(e.value("n", 1000));
  if (b == "fib") co_return co_await fib_bench(e.value("n", 15));
  if (b == "restart_probe")
    co_return co_await restart_probe(e.value("n", 10000), e.at("mark"), e.value("ms", 50));
  if (b == "large_state")
    co_return co_await large_state(e.value("mib", 256), e.value("change_kib", 1024),
                                   e.value("seconds", 5.0));
  throw std::invalid_argument("unknown bench " + b);
}

}  // namespace

KAPPA_MAIN(handler)
