// A small Kappa application built outside the tree, as a user would build
// one: it includes <kappa/kappa.h> and nothing else of Kappa.
//   {"mode": "loop", "n": N}    squares 0..N-1 with a checkpoint after each
//                               (run under `solo`, stopped and resumed)
//   {"mode": "spawn", "n": N}   a producer task feeds 1..N through a queue
//                               while a spawned child computes a square
//                               (run under `run`, on worker processes)
// Temporaries inside co_await expressions are bound to named variables first:
// g++ 12 miscompiles some of them (README, "Compilers"), and this app must
// build and run with g++ 12 too.
#include <kappa/kappa.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

kappa::Task<int64_t> square(int64_t x) {
  int64_t result = x * x;
  co_await kappa::checkpoint();
  co_return result;
}

kappa::Task<void> produce(kappa::Queue<int64_t> q, int64_t n) {
  for (int64_t i = 1; i <= n; ++i) co_await q.enqueue(i);
}

kappa::Task<nlohmann::json> loop(int64_t n) {
  std::vector<int64_t> squares;
  for (int64_t i = 0; i < n; ++i) {
    squares.push_back(i * i);
    co_await kappa::checkpoint();
  }
  nlohmann::json result = squares;
  co_return result;
}

kappa::Task<nlohmann::json> concurrent(int64_t n) {
  kappa::Queue<int64_t> q = co_await kappa::make_queue<int64_t>(2);
  kappa::Future<void> producer = co_await kappa::spawn(produce, q, n);
  kappa::Future<int64_t> child = co_await kappa::spawn(square, n);
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += co_await q.dequeue();
  co_await producer;
  int64_t sq = co_await child;
  nlohmann::json result = {{"sum", sum}, {"square", sq}};
  co_return result;
}

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  int64_t n = event.value("n", int64_t{10});
  if (event.value("mode", std::string("loop")) == "spawn") co_return co_await concurrent(n);
  co_return co_await loop(n);
}

}  // namespace

KAPPA_MAIN(handler)
