// The work of the primes example, shared with its hand-written baseline
// (bench/baselines/primes_baseline.cc): a segmented sieve of Eratosthenes
// that counts the primes in a range [lo, hi), one segment at a time, so that
// its caller can pause between two segments. No Kappa dependency.
//
//   PrimeCounter c(lo, hi, 256 << 10);
//   while (!c.done()) c.sieve_next_segment();   // a pause point may go here
//   uint64_t primes = c.count();
//
// The sieve holds odd numbers only, one bit each: bit k of the sieve stands
// for the odd number 2k + 1. A segment of S bytes covers 16 S consecutive
// integers; it should fit the L2 cache. The sieving primes (the odd primes up
// to sqrt(hi)) come from a small plain sieve, computed by every counter, with
// for each one the sieve index of its next multiple to cross out. The whole
// state is a few vectors, all plain values: a checkpoint between two segments
// holds it as it is.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace kappa_examples {

/// floor(sqrt(x)) for any 64-bit x.
inline uint64_t isqrt(uint64_t x) {
  uint64_t r = 0;
  for (uint64_t bit = uint64_t{1} << 31; bit; bit >>= 1) {
    uint64_t t = r | bit;
    if (t <= x / t) r = t;  // t * t <= x without overflow
  }
  return r;
}

/// The odd primes up to `limit` (inclusive), by a plain sieve.
inline std::vector<uint32_t> odd_primes_up_to(uint64_t limit) {
  std::vector<uint32_t> primes;
  if (limit < 3) return primes;
  if (limit > UINT32_MAX) throw std::invalid_argument("odd_primes_up_to: limit above 2^32");
  std::vector<bool> composite(limit + 1);
  for (uint64_t i = 3; i <= limit; i += 2) {
    if (composite[i]) continue;
    primes.push_back(uint32_t(i));
    for (uint64_t j = i * i; j <= limit; j += 2 * i) composite[j] = true;
  }
  return primes;
}

/// Counts the primes p with lo <= p < hi, one segment per call. Not
/// thread-safe (one owner). Throws std::invalid_argument for a range over
/// 2^64 / 2 or a segment under 8 bytes.
class PrimeCounter {
 public:
  PrimeCounter(uint64_t lo, uint64_t hi, uint64_t segment_bytes) {
    if (hi > (uint64_t{1} << 62)) throw std::invalid_argument("PrimeCounter: hi above 2^62");
    if (segment_bytes < 8) throw std::invalid_argument("PrimeCounter: segment under 8 bytes");
    if (lo <= 2 && 2 < hi) count_ = 1;  // the only even prime
    // Odd numbers 2k + 1 with lo <= 2k + 1 < hi and 2k + 1 >= 3.
    uint64_t first_odd = std::max<uint64_t>(lo, 3) | 1;
    begin_ = next_ = (first_odd - 1) / 2;
    end_ = std::max(hi / 2, begin_);
    words_.resize(size_t((segment_bytes + 7) / 8));
    if (done()) return;
    // Odd composites below hi have an odd prime factor p with p * p < hi.
    primes_ = odd_primes_up_to(isqrt(hi - 1));
    next_multiple_.reserve(primes_.size());
    for (uint32_t p : primes_) {
      // The first odd multiple of p that is at least p * p and first_odd.
      uint64_t m = std::max<uint64_t>(uint64_t(p) * p, (first_odd + p - 1) / p * p);
      if (m % 2 == 0) m += p;
      next_multiple_.push_back((m - 1) / 2);
    }
  }

  bool done() const { return next_ >= end_; }

  /// The primes counted so far (all of them once done()).
  uint64_t count() const { return count_; }

  /// Sieves and counts the next segment; does nothing once done().
  void sieve_next_segment() {
    if (done()) return;
    const uint64_t bits = uint64_t(words_.size()) * 64;
    const uint64_t len = std::min(bits, end_ - next_);
    const uint64_t seg_end = next_ + len;  // sieve index just past the segment
    std::memset(words_.data(), 0xff, words_.size() * 8);
    uint64_t* w = words_.data();
    for (size_t i = 0; i < primes_.size(); ++i) {
      uint64_t j = next_multiple_[i];
      if (j >= seg_end) {
        // Primes are ascending, so p * p of every later prime is further
        // still; their first multiples are not reached yet.
        if ((uint64_t(primes_[i]) * primes_[i] - 1) / 2 >= seg_end) break;
        continue;
      }
      const uint64_t p = primes_[i];
      for (j -= next_; j < len; j += p) w[j >> 6] &= ~(uint64_t{1} << (j & 63));
      next_multiple_[i] = j + next_;
    }
    // Count the bits left set in [0, len).
    const uint64_t full = len / 64;
    uint64_t n = 0;
    for (uint64_t k = 0; k < full; ++k) n += uint64_t(std::popcount(w[k]));
    if (len % 64) n += uint64_t(std::popcount(w[full] & ((uint64_t{1} << (len % 64)) - 1)));
    count_ += n;
    next_ = seg_end;
  }

  /// How far the counter is, from 0 to 1.
  double progress() const {
    return end_ > begin_ ? double(next_ - begin_) / double(end_ - begin_) : 1.0;
  }

 private:
  uint64_t begin_ = 0, next_ = 0, end_ = 0;  // sieve indices: [begin_, end_), next_ to do
  uint64_t count_ = 0;
  std::vector<uint32_t> primes_;         // odd sieving primes, ascending
  std::vector<uint64_t> next_multiple_;  // per prime: the sieve index to cross out next
  std::vector<uint64_t> words_;          // the segment: 1 = not crossed out
};

/// The primes below n, counted in the i-th of `parts` ranges that split
/// [2, n) evenly: [range_begin(n, parts, i), range_begin(n, parts, i + 1)).
inline uint64_t range_begin(uint64_t n, uint64_t parts, uint64_t i) {
  if (n <= 2) return 2;
  unsigned __int128 span = n - 2;
  return 2 + uint64_t(span * i / parts);
}

/// Counts the primes in [lo, hi) in one go.
inline uint64_t count_primes(uint64_t lo, uint64_t hi, uint64_t segment_bytes) {
  PrimeCounter c(lo, hi, segment_bytes);
  while (!c.done()) c.sieve_next_segment();
  return c.count();
}

}  // namespace kappa_examples
