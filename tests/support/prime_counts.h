// Prime counts made independently of examples/primes, to check it against:
// a plain sieve of a range and Lucy Hedgehog's prime-counting recurrence.
// Slow but obviously correct; for tests only.
#pragma once

#include <cstdint>
#include <vector>

namespace kappa::testing {

// The primes p with lo <= p < hi, by crossing out, in a table of [lo, hi),
// the multiples m >= d * d of every d from 2 to sqrt(hi - 1), prime or not.
// O((hi - lo) log log hi + sqrt(hi)).
inline uint64_t primes_in_range_by_sieve(uint64_t lo, uint64_t hi) {
  if (lo < 2) lo = 2;
  if (lo >= hi) return 0;
  std::vector<bool> composite(hi - lo);
  for (uint64_t d = 2; d * d < hi; ++d) {
    uint64_t m = (lo + d - 1) / d * d;
    if (m < d * d) m = d * d;
    for (; m < hi; m += d) composite[m - lo] = true;
  }
  uint64_t count = 0;
  for (bool c : composite) count += !c;
  return count;
}

// The primes up to x, by Lucy Hedgehog's recurrence over the values x / i
// (O(x^3/4) steps, no sieve of [0, x)): S(v) starts as the numbers 2..v and
// loses, for each prime p, those whose least prime factor is p.
inline uint64_t primes_up_to_by_lucy(uint64_t x) {
  if (x < 2) return 0;
  uint64_t r = 1;
  while ((r + 1) * (r + 1) <= x) ++r;
  std::vector<uint64_t> small(r + 1), large(r + 1);  // S(v) for v <= r; S(x / i) for i <= r
  for (uint64_t v = 1; v <= r; ++v) small[v] = v - 1;
  for (uint64_t i = 1; i <= r; ++i) large[i] = x / i - 1;
  for (uint64_t p = 2; p <= r; ++p) {
    if (small[p] == small[p - 1]) continue;  // p is not prime
    const uint64_t below = small[p - 1], p2 = p * p;
    for (uint64_t i = 1; i <= r && x / i >= p2; ++i) {
      uint64_t d = i * p;  // S(x / i / p) = S(x / d)
      large[i] -= (d <= r ? large[d] : small[x / d]) - below;
    }
    for (uint64_t v = r; v >= p2; --v) small[v] -= small[v / p] - below;
  }
  return large[1];
}

}  // namespace kappa::testing
