// The semantic suite's long_loop (tests/apps/semantics_app.cc) as a plain
// program, without Kappa: the baseline of bench/long_loop_bench.py. Where the
// task has its maybe_checkpoint() (every 1024 iterations), this calls an empty
// function that is not inlined, so that both loops do the same work.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

__attribute__((noinline)) void pause_point(uint64_t i) { asm volatile("" : : "r"(i)); }

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ITERATIONS\n", argv[0]);
    return 2;
  }
  uint64_t iterations = std::strtoull(argv[1], nullptr, 10);
  uint64_t x = 1;
  for (uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    x ^= x >> 29;
    if ((i & 1023) == 0) pause_point(i);
  }
  std::printf("%llu\n", static_cast<unsigned long long>(x));
}
