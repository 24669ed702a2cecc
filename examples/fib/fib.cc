// Recursive Fibonacci: spawn and futures, the teaching example.
//
//   fib run --event '{"n": 25, "cutoff": 15}'
//   -> {"n":25,"cutoff":15,"fib":75025}
//
// fib(n) starts fib(n - 1) and fib(n - 2) as two new tasks and adds their
// results; below the cutoff a task computes sequentially, so that each task
// does enough work to be worth a process. A task waiting on its children
// holds no worker: past a short grace period it is parked (checkpointed) and
// resumed, possibly elsewhere, once their results are in.
//
// Event fields (all optional): "n" (default 25, at most 93: fib(93) is the
// last that fits 64 bits), "cutoff" (default 15; n <= cutoff: no spawn).
// Result fields: "n", "cutoff" as used, "fib" (fib(0) = 0, fib(1) = 1).
#include <kappa/kappa.h>

#include <cstdint>

namespace {

using kappa::Future;
using kappa::Task;

// The plain recursion a task runs below the cutoff.
uint64_t fib_sequential(int n) {
  return n < 2 ? uint64_t(n) : fib_sequential(n - 1) + fib_sequential(n - 2);
}

// A pausable function: each co_await is a pause point where the task may be
// checkpointed, so its children run while it waits.
Task<uint64_t> fib(int n, int cutoff) {
  if (n <= cutoff || n < 2) co_return fib_sequential(n);
  // spawn takes the function by pointer and its arguments by value; it
  // returns a future as soon as the coordinator has recorded the child.
  Future<uint64_t> a = co_await kappa::spawn(fib, n - 1, cutoff);
  Future<uint64_t> b = co_await kappa::spawn(fib, n - 2, cutoff);
  // Both children are running (or queued) now; awaiting a future waits for
  // the child's result, and rethrows kappa::TaskFailed if it failed.
  co_return co_await a + co_await b;
}

Task<nlohmann::json> handler(nlohmann::json event) {
  int n = event.value("n", 25), cutoff = event.value("cutoff", 15);
  if (n < 0 || n > 93) throw kappa::Error("n must be in [0, 93]");
  uint64_t value = co_await co_await kappa::spawn(fib, n, cutoff);
  co_return nlohmann::json{{"n", n}, {"cutoff", cutoff}, {"fib", value}};
}

}  // namespace

KAPPA_MAIN(handler)
