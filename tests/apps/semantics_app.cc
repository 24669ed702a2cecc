// The reference implementation's semantic test programs, in C++. The event's
// "program" picks one; the tests run each normally, under --chaos-kill and
// with a short --time-limit, and check the exact result.
#include <kappa/kappa.h>

#include "changing_state.h"

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using kappa::Future;
using kappa::Queue;
using kappa::Task;

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- factorial of n modulo a large prime, a checkpoint every iteration
constexpr uint64_t kPrime = 1'000'000'007;

Task<uint64_t> factorial(uint64_t n) {
  uint64_t acc = 1;
  for (uint64_t i = 2; i <= n; ++i) {
    acc = acc * i % kPrime;
    co_await kappa::checkpoint();
  }
  co_return acc;
}

// ---- fib(n): every call spawns its two children
Task<int64_t> fib(int n) {
  if (n < 2) co_return n;
  Future<int64_t> a = co_await kappa::spawn(fib, n - 1);
  Future<int64_t> b = co_await kappa::spawn(fib, n - 2);
  int64_t x = co_await a;
  int64_t y = co_await b;
  co_return x + y;
}

// ---- 1..n as a tree of additions whose arguments are futures
int64_t leaf(int64_t v) { return v; }
int64_t add(int64_t a, int64_t b) { return a + b; }

Task<int64_t> tree_sum(int64_t n) {
  std::vector<Future<int64_t>> level;
  for (int64_t i = 1; i <= n; ++i) level.push_back(co_await kappa::spawn(leaf, i));
  while (level.size() > 1) {
    std::vector<Future<int64_t>> next;
    for (size_t i = 0; i + 1 < level.size(); i += 2)
      next.push_back(co_await kappa::spawn(add, level[i], level[i + 1]));  // dataflow
    if (level.size() % 2) next.push_back(level.back());
    level = std::move(next);
  }
  co_return co_await level[0];
}

// ---- sum of the first n odd numbers: map_spawn with a future extra argument
Task<int64_t> slow_one(int millis) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(millis);
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    co_await kappa::maybe_checkpoint();
  }
  co_return 1;
}

int64_t odd(int64_t i, int64_t one) { return 2 * i + one; }

Task<int64_t> odd_sum(int64_t n) {
  Future<int64_t> one = co_await kappa::spawn(slow_one, 300);
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < n; ++i) indices.push_back(i);
  auto futures = co_await kappa::map_spawn(odd, indices, one);
  std::vector<int64_t> odds = co_await kappa::wait_all(futures);
  int64_t sum = 0;
  for (int64_t v : odds) sum += v;
  co_return sum;
}

// ---- ping-pong through two queues
Task<int> ponger(Queue<std::string> in, Queue<std::string> out, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    std::string msg = co_await in.dequeue();
    co_await out.enqueue(msg + "pong");
  }
  co_return rounds;
}

Task<nlohmann::json> ping_pong(uint64_t max_size, int rounds) {
  Queue<std::string> q1 = co_await kappa::make_queue<std::string>(max_size);
  Queue<std::string> q2 = co_await kappa::make_queue<std::string>(max_size);
  Future<int> p = co_await kappa::spawn(ponger, q1, q2, rounds);
  std::vector<std::string> replies;
  for (int i = 0; i < rounds; ++i) {
    co_await q1.enqueue("ping");
    replies.push_back(co_await q2.dequeue());
  }
  co_await p;
  co_return nlohmann::json(replies);
}

// ---- a work queue consumed by M workers; sums combined on the coordinator
struct Tally {
  int64_t sum = 0, count = 0;
  template <class A>
  void serialize(A& a) {
    a(sum, count);
  }
};

Task<Tally> consumer(Queue<int64_t> q) {
  Tally t;
  for (;;) {
    int64_t v = co_await q.dequeue();
    if (v < 0) break;  // sentinel
    t.sum += v;
    ++t.count;
  }
  co_return t;
}

Task<Tally> combine(std::vector<Future<Tally>> parts) {
  std::vector<Tally> tallies = co_await kappa::wait_all(parts);
  Tally total;
  for (const Tally& t : tallies) {
    total.sum += t.sum;
    total.count += t.count;
  }
  co_return total;
}

Task<nlohmann::json> work_queue(int64_t n, int m, bool async_enqueue) {
  Queue<int64_t> q = co_await kappa::make_queue<int64_t>(4);
  std::vector<Future<Tally>> parts;
  for (int i = 0; i < m; ++i) parts.push_back(co_await kappa::spawn(consumer, q));
  for (int64_t v = 0; v < n; ++v) {
    if (async_enqueue)
      co_await q.enqueue_async(v);
    else
      co_await q.enqueue(v);
  }
  for (int i = 0; i < m; ++i) co_await q.enqueue(-1);
  Future<Tally> total = co_await kappa::spawn(
      kappa::SpawnOptions{.name = "combine", .on_coordinator = true}, combine, parts);
  Tally t = co_await total;
  co_return nlohmann::json{{"sum", t.sum}, {"count", t.count}};
}

// ---- spawn with awaits: the child starts after the awaited task finished
Task<int64_t> finish_late(int millis) {
  co_await kappa::spawn(slow_one, 0);  // a pause point before the sleep
  std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  co_return now_us();
}

int64_t start_time() { return now_us(); }

Task<nlohmann::json> awaits() {
  Future<int64_t> first = co_await kappa::spawn(finish_late, 300);
  // Built outside the co_await: GCC 12 rejects a braced list inside a
  // co_await operand ("array used as initializer").
  kappa::SpawnOptions after{.name = "after", .awaits = {first}};
  Future<int64_t> second = co_await kappa::spawn(after, start_time);
  int64_t ended = co_await first;
  int64_t started = co_await second;
  co_return nlohmann::json{{"ordered", started >= ended}, {"gap_us", started - ended}};
}

// ---- a loop much longer than the time limit, finished through checkpoints
Task<uint64_t> long_loop(uint64_t iterations) {
  uint64_t x = 1;
  for (uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    x ^= x >> 29;
    if ((i & 1023) == 0) co_await kappa::maybe_checkpoint();
  }
  co_return x;
}

// ---- an exception in a child reaches the parent as TaskFailed
int thrower(int v) {
  if (v > 0) throw std::runtime_error("child says no to " + std::to_string(v));
  return v;
}

// Awaits `f` and reports the message of the TaskFailed it throws (null if none).
Task<nlohmann::json> caught_failure(Future<int> f) {
  try {
    co_await f;
  } catch (const kappa::TaskFailed& e) {
    co_return nlohmann::json{{"caught", e.what()}};
  }
  co_return nlohmann::json{{"caught", nullptr}};
}

Task<nlohmann::json> child_failure() {
  kappa::SpawnOptions options{.name = "thrower"};
  co_return co_await caught_failure(co_await kappa::spawn(options, thrower, 7));
}

Task<nlohmann::json> uncaught_child_failure() {
  Future<int> f = co_await kappa::spawn(kappa::SpawnOptions{.name = "thrower"}, thrower, 3);
  co_return nlohmann::json(co_await f);
}

// ---- a child whose worker always crashes: the retry budget fails it
// (spawned after `after` seconds of computing: its crashes' warnings then
// come while `run` shows its progress line)
int crash(int) {
  std::abort();
  return 0;
}

uint64_t spin(double seconds);

Task<nlohmann::json> crash_child(double after) {
  spin(after);
  kappa::SpawnOptions options{.name = "crasher"};
  co_return co_await caught_failure(co_await kappa::spawn(options, crash, 1));
}

// ---- an asynchronous call that fails: nobody awaits it, so the task fails
Task<nlohmann::json> async_error() {
  kappa::Queue<int> bogus(999999);  // no such queue
  co_await bogus.enqueue_async(1);
  co_await kappa::checkpoint();
  auto q = co_await kappa::make_queue<int>(1);  // a synchronous call: the error surfaces
  co_return nlohmann::json{{"unreachable", q.id()}};
}

// ---- a task holding a state too large to travel inline (its images go to
// the store) while the job fails, or finishes: what a failed job keeps.
std::vector<uint64_t> noise(size_t n, uint64_t seed) {
  std::vector<uint64_t> v(n);
  for (uint64_t& x : v) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;  // xorshift64
    x = seed;
  }
  return v;
}

Task<uint64_t> holder(kappa::Queue<int> ready, kappa::Queue<int> go, uint64_t mib) {
  std::vector<uint64_t> state = noise(mib << 17, 42);  // incompressible
  co_await kappa::checkpoint();                        // an image in the store
  co_await ready.enqueue(1);
  co_await go.dequeue();  // parked here until told to end
  uint64_t sum = 0;
  for (uint64_t x : state) sum += x;
  co_return sum;
}

// `mib`: the holder's state (1 MiB by default; over 32 MiB, its image is
// streamed to the store as it is made).
Task<nlohmann::json> large_state(bool fail, uint64_t mib) {
  auto ready = co_await kappa::make_queue<int>(1);
  auto go = co_await kappa::make_queue<int>(1);
  kappa::SpawnOptions options{.name = "holder"};
  Future<uint64_t> h = co_await kappa::spawn(options, holder, ready, go, mib);
  co_await ready.dequeue();
  if (fail) throw std::runtime_error("failing while the holder holds its state");
  co_await go.enqueue(1);
  uint64_t sum = co_await h;
  uint64_t want = 0;
  for (uint64_t x : noise(mib << 17, 42)) want += x;
  co_return nlohmann::json{{"ok", sum == want}};
}

// ---- large items handed on as they arrive: the forwarder enqueues the
// temporary its dequeue yields (Queue::enqueue(T&&)), so its checkpoints at
// the enqueue need not carry the item
Task<int> forwarder(kappa::Queue<std::vector<uint64_t>> in, kappa::Queue<std::vector<uint64_t>> out,
                    int n) {
  for (int i = 0; i < n; ++i) co_await out.enqueue(co_await in.dequeue());
  co_return n;
}

Task<nlohmann::json> forward(int n, int kib) {
  auto in = co_await kappa::make_queue<std::vector<uint64_t>>(1);
  auto out = co_await kappa::make_queue<std::vector<uint64_t>>(1);
  Future<int> f =
      co_await kappa::spawn(kappa::SpawnOptions{.name = "forwarder"}, forwarder, in, out, n);
  bool same = true;
  for (int i = 0; i < n; ++i) {
    std::vector<uint64_t> item = noise(size_t(kib) << 7, uint64_t(i) + 1);  // incompressible
    co_await in.enqueue(item);
    same = same && co_await out.dequeue() == item;
  }
  co_return nlohmann::json{{"same", same}, {"forwarded", co_await f}};
}

// ---- a large state changing a little between pause points (incremental
// checkpoints), with a spawned child awaited now and then
uint64_t child_digest(uint64_t round) { return changing_state::mix(round); }

Task<uint64_t> changing_state_task(uint64_t rounds, uint64_t mib, uint64_t words) {
  changing_state::State s = changing_state::start(mib);
  for (uint64_t r = 0; r < rounds; ++r) {
    changing_state::step(s, r, words);
    if (r % 10 == 9) {  // a synchronous call or two, a child's result folded in and out
      Future<uint64_t> f = co_await kappa::spawn(child_digest, r);
      uint64_t got = co_await f;
      if (got != changing_state::mix(r)) throw std::runtime_error("child's result is wrong");
    }
    co_await kappa::checkpoint();
  }
  co_return changing_state::digest(s);
}

// ---- computing for a while without a single pause point
uint64_t spin(double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t n = 0;
  while (std::chrono::steady_clock::now() < until) ++n;
  return n;
}

// ---- everything at once, for the coordinator's kill -9 tests: spawn,
// map_spawn, dataflow futures, a bounded queue, and puts.
int64_t square(int64_t x) { return x * x; }

// Items come and go slowly (a few ms each), so that a coordinator killed
// at a random moment is often killed with items and waiters in the queue.
Task<int64_t> produce(Queue<int64_t> q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    co_await q.enqueue(i);
  }
  co_return n;
}

// Sums exactly n items: one consumed twice or lost would change the sum (or
// leave the producer or this task waiting forever).
Task<int64_t> consume(Queue<int64_t> q, int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += co_await q.dequeue();
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  }
  co_return sum;
}

// Puts the same key round after round: a put applied again after a later
// one (a restart replaying it) would leave an older value behind.
Task<std::string> writer(int64_t part, int64_t rounds) {
  std::string key = "zoo/part-" + std::to_string(part) + ".txt";
  for (int64_t r = 0; r < rounds; ++r) {
    co_await kappa::put(key, "part " + std::to_string(part) + ", round " + std::to_string(r));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    co_await kappa::checkpoint();
  }
  co_return co_await kappa::get(key);
}

Task<nlohmann::json> durable_zoo(int64_t n) {
  auto q = co_await kappa::make_queue<int64_t>(3);
  Future<int64_t> produced = co_await kappa::spawn(produce, q, n);
  Future<int64_t> consumed = co_await kappa::spawn(consume, q, n);
  std::vector<int64_t> xs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) xs[size_t(i)] = i;
  std::vector<Future<int64_t>> squares = co_await kappa::map_spawn(square, xs);
  std::vector<int64_t> parts = {0, 1, 2, 3};
  std::vector<Future<std::string>> writers = co_await kappa::map_spawn(writer, parts, int64_t{4});
  // A dataflow edge: add starts once both futures resolve.
  Future<int64_t> both = co_await kappa::spawn(add, consumed, produced);
  int64_t sum_squares = 0;
  for (int64_t v : co_await kappa::wait_all(squares)) sum_squares += v;
  nlohmann::json out;
  out["queue_plus_count"] = co_await both;
  out["sum_squares"] = sum_squares;
  out["parts"] = co_await kappa::wait_all(writers);
  co_return out;
}

Task<nlohmann::json> handler(nlohmann::json e) {
  std::string p = e.at("program");
  if (p == "factorial") co_return co_await factorial(e.at("n"));
  if (p == "fib") co_return co_await fib(e.at("n"));
  if (p == "tree_sum") co_return co_await tree_sum(e.at("n"));
  if (p == "odd_sum") co_return co_await odd_sum(e.at("n"));
  if (p == "ping_pong") co_return co_await ping_pong(e.at("max_size"), e.at("rounds"));
  if (p == "work_queue")
    co_return co_await work_queue(e.at("n"), e.at("m"), e.value("async", false));
  if (p == "awaits") co_return co_await awaits();
  if (p == "long_loop") co_return co_await long_loop(e.at("iterations"));
  if (p == "changing_state")
    co_return co_await changing_state_task(e.at("rounds"), e.value("mib", 8), e.value("words", 64));
  if (p == "child_failure") co_return co_await child_failure();
  if (p == "uncaught_child_failure") co_return co_await uncaught_child_failure();
  if (p == "crash_child") co_return co_await crash_child(e.value("after", 0.0));
  if (p == "async_error") co_return co_await async_error();
  if (p == "large_state")
    co_return co_await large_state(e.value("fail", false), e.value("mib", uint64_t(1)));
  if (p == "forward") co_return co_await forward(e.at("n"), e.at("kib"));
  if (p == "spin") co_return nlohmann::json{{"spins", spin(e.at("seconds"))}};
  if (p == "durable_zoo") co_return co_await durable_zoo(e.at("n"));
  throw std::invalid_argument("unknown program " + p);
}

}  // namespace

KAPPA_MAIN(handler)
