// The application the live view's tests drive (tests/live_view_test.cc): a
// job of a known shape that keeps running while the tests look at it.
//
// Event: {"leaves": N, "hold_ms": H, "backlog": B} (defaults 20, 3000, 3).
//   task 1  the handler; makes queue 1 ("gate", max size 1) and queue 2
//           ("backlog", max size B + 1), and enqueues B items to the backlog;
//   task 2  "holder": runs for H ms (maybe_checkpoint() between sleeps);
//   task 3  "consumer": dequeues from the gate, so it waits (parked) until
//           the handler enqueues, after the holder is done;
//   tasks 4 .. N + 3: leaf(i), a plain function named after itself
//           (map_spawn, no SpawnOptions::name).
// Once the leaves and the holder are done, the handler opens the gate,
// awaits the consumer and drains the backlog. So while the holder runs:
// N + 3 tasks, the leaves finished, the consumer parked on queue 1, queue 2
// holding B items.
// Result: {"sum": 0 + 1 + ... + (N - 1), "gate": 7, "backlog": B, "tasks": N + 3}.
#include <kappa/kappa.h>

#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t leaf(int i) { return i; }

kappa::Task<int64_t> holder(int64_t until_ms) {
  while (now_ms() < until_ms) {
    co_await kappa::maybe_checkpoint();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  co_return 0;
}

kappa::Task<int> consumer(kappa::Queue<int> gate) { co_return co_await gate.dequeue(); }

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  int leaves = event.value("leaves", 20);
  int64_t hold_ms = event.value("hold_ms", 3000);
  int backlog = event.value("backlog", 3);
  kappa::Queue<int> gate = co_await kappa::make_queue<int>(1);
  kappa::Queue<int> queue = co_await kappa::make_queue<int>(uint64_t(backlog) + 1);
  for (int i = 0; i < backlog; ++i) co_await queue.enqueue(i);
  kappa::SpawnOptions hold_opts{.name = "holder"};
  kappa::Future<int64_t> held = co_await kappa::spawn(hold_opts, holder, now_ms() + hold_ms);
  kappa::SpawnOptions consumer_opts{.name = "consumer"};
  kappa::Future<int> consumed = co_await kappa::spawn(consumer_opts, consumer, gate);
  std::vector<int> ids(static_cast<size_t>(leaves));
  std::iota(ids.begin(), ids.end(), 0);
  auto futures = co_await kappa::map_spawn(leaf, ids);
  std::vector<int64_t> values = co_await kappa::wait_all(futures);
  co_await held;
  co_await gate.enqueue(7);
  int got = co_await consumed;
  int drained = 0;
  for (int i = 0; i < backlog; ++i) drained += (co_await queue.dequeue()) == i;
  co_return nlohmann::json{{"sum", std::accumulate(values.begin(), values.end(), int64_t(0))},
                           {"gate", got},
                           {"backlog", drained},
                           {"tasks", leaves + 3}};
}

}  // namespace

KAPPA_MAIN(handler)
