// Single-process demo: a long computation that survives being killed.
//
// Computes Collatz chain lengths for 1..n in blocks (a nested coroutine per
// block), keeping the longest chains found and a histogram in ordinary
// containers. maybe_checkpoint() in the inner loop costs one atomic load
// except when a checkpoint is due (every --checkpoint-interval seconds).
//
//   kappa_demo solo --dir /tmp/demo --event '{"n": 20000000}'
//   (kill it with Ctrl-C or kill -9 at any moment)
//   kappa_demo resume /tmp/demo
#include <kappa/kappa.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace {

struct Best {
  uint64_t start = 0;
  uint32_t length = 0;
};

uint32_t collatz_length(uint64_t x) {
  uint32_t steps = 0;
  while (x != 1) {
    x = (x & 1) ? 3 * x + 1 : x / 2;
    ++steps;
  }
  return steps;
}

// One block of starting values; pauses are allowed anywhere inside.
kappa::Task<Best> scan_block(uint64_t from, uint64_t to, std::map<uint32_t, uint64_t>& histogram) {
  Best best;
  for (uint64_t v = from; v < to; ++v) {
    uint32_t len = collatz_length(v);
    ++histogram[len / 100 * 100];
    if (len > best.length) best = {v, len};
    co_await kappa::maybe_checkpoint();
  }
  co_return best;
}

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  const uint64_t n = event.value("n", uint64_t{5'000'000});
  const uint64_t block = event.value("block", uint64_t{100'000});
  std::map<uint32_t, uint64_t> histogram;
  std::vector<Best> records;
  for (uint64_t from = 1; from <= n; from += block) {
    Best b = co_await scan_block(from, std::min(n + 1, from + block), histogram);
    if (records.empty() || b.length > records.back().length) records.push_back(b);
  }
  nlohmann::json out;
  out["n"] = n;
  out["longest"] = {{"start", records.back().start}, {"length", records.back().length}};
  for (const Best& r : records) out["records"].push_back({r.start, r.length});
  for (auto [bucket, count] : histogram) out["histogram"][std::to_string(bucket)] = count;
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
