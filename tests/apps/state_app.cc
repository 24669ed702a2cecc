// The application the checkpoint tests drive as a subprocess. The event's
// "mode" picks a workload:
//   types    {"steps", "big_mb"}  every kind of state (state_workload.h)
//   spin     {"n"}                a long loop paused by maybe_checkpoint()
//   stress   {"rounds", "seed"}   allocator stress with content checks
//   threads                       a task thread joined before a pause
//   thread_alive                  a task thread still running at a pause
//   fail                          an exception escapes the task
//   call_across_pause             a spawn created, then a checkpoint, then the
//                                 spawn awaited (solo answers it with an error)
#include <kappa/kappa.h>

#include <cstring>
#include <random>
#include <thread>

#include "state_workload.h"
#include "support/pattern_block.h"

namespace {

// Random blocks from 1 B to 64 MiB, freed at random, each filled with a
// pattern derived from its id and checked after every pause.
using Block = kappa::testing::PatternBlock;
constexpr size_t kStride = 509;
void fill(const Block& b) { b.fill(kStride); }
bool check(const Block& b) { return !b.first_damage(kStride); }

kappa::Task<nlohmann::json> stress(int rounds, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Block> live;
  uint64_t next_id = 1, checks = 0, frees = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int op = 0; op < 400; ++op) {
      if (!live.empty() && rng() % 3 == 0) {
        size_t k = rng() % live.size();
        if (!check(live[k])) throw std::runtime_error("corrupt block before free");
        std::free(live[k].p);
        live[k] = live.back();
        live.pop_back();
        ++frees;
        continue;
      }
      // Log-uniform size in [1, 64 MiB].
      size_t size = size_t(1) << (rng() % 27);
      size += rng() % size;
      if (size > (size_t(64) << 20)) size = size_t(64) << 20;
      auto* p = static_cast<unsigned char*>(rng() % 2 ? std::malloc(size) : ::operator new(size));
      Block b{next_id++, size, p};
      fill(b);
      live.push_back(b);
      // Keep the total bounded: drop large blocks beyond 512 MiB in all.
      size_t total = 0;
      for (auto& x : live) total += x.size;
      while (total > (size_t(512) << 20)) {
        total -= live.front().size;
        std::free(live.front().p);
        live.erase(live.begin());
        ++frees;
      }
    }
    co_await kappa::checkpoint();
    for (const Block& b : live) {
      if (!check(b))
        throw std::runtime_error("block " + std::to_string(b.id) + " corrupt after restore");
      ++checks;
    }
  }
  for (auto& b : live) std::free(b.p);
  co_return nlohmann::json{{"checks", checks}, {"frees", frees}, {"allocs", next_id - 1}};
}

kappa::Task<nlohmann::json> threads() {
  std::vector<int64_t> squares;
  std::thread t([&] {
    for (int64_t i = 0; i < 1000; ++i) squares.push_back(i * i);  // grows in the task's arena
  });
  t.join();
  co_await kappa::checkpoint();
  int64_t sum = 0;
  for (int64_t v : squares) sum += v;
  co_return nlohmann::json{{"sum", sum}};
}

kappa::Task<nlohmann::json> thread_alive() {
  std::atomic<bool> stop{false};
  std::jthread t([&] {
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  struct Stop {
    std::atomic<bool>& s;
    ~Stop() { s = true; }
  } stopper{stop};
  co_await kappa::checkpoint();  // throws: the thread is still running
  co_return nlohmann::json{{"unreachable", true}};
}

int64_t length(std::string s) { return int64_t(s.size()); }

// The spawn's request (300 KB, built on the process heap) must be in the
// image taken at the checkpoint between its creation and its co_await.
kappa::Task<nlohmann::json> call_across_pause() {
  auto pending = kappa::spawn(length, std::string(300000, 'z'));
  co_await kappa::checkpoint();
  std::string error;
  try {
    co_await pending;
  } catch (const kappa::Error& e) {
    error = e.what();
  }
  co_return nlohmann::json{{"error", error}};
}

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  std::string mode = event.value("mode", "types");
  if (mode == "types") {
    std::string d = co_await workload::run_task(event.value("steps", 10), event.value("big_mb", 0));
    co_return nlohmann::json{{"digest", d}};
  }
  if (mode == "spin") {
    std::string d = co_await workload::spin_task(event.value("n", uint64_t{1000000}));
    co_return nlohmann::json{{"digest", d}};
  }
  if (mode == "stress") co_return co_await stress(event.value("rounds", 5), event.value("seed", 1));
  if (mode == "threads") co_return co_await threads();
  if (mode == "thread_alive") co_return co_await thread_alive();
  if (mode == "fail") throw std::runtime_error("deliberate failure in the task");
  if (mode == "call_across_pause") co_return co_await call_across_pause();
  throw std::invalid_argument("unknown mode " + mode);
}

}  // namespace

KAPPA_MAIN(handler)
