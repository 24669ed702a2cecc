// The work of the primes example, shared with its hand-written baseline
// (bench/baselines/primes_baseline.cc): a segmented sieve of Eratosthenes
// that counts the primes in a range [lo, hi), one segment at a time, so that
// its caller can pause between two segments. No Kappa dependency.
//
//   PrimeCounter c(lo, hi, 256 << 10);
//   while (!c.done()) c.sieve_next_segment();   // a pause point may go here
//   uint64_t primes = c.count();
//
// The sieve holds a mod-30 wheel: byte b stands for the eight numbers
// 30 b + {1, 7, 11, 13, 17, 19, 23, 29} (the residues coprime to 30), bit j
// for the j-th of them; 2, 3 and 5 are counted apart. A segment of S bytes
// covers 30 S consecutive integers; it should fit the L1 or L2 cache (see
// bench/primes_kernel_bench.cc). Each segment starts as a copy of a
// precomputed pattern with the multiples of 7 to 29 crossed out (pre-sieving);
// the larger sieving primes (up to sqrt(hi)) cross out their multiples p k,
// k coprime to 30, with k's wheel position carried from segment to segment.
// The primes left are counted by popcount over 64-bit words.
//
// The whole state is a few vectors of plain values: a checkpoint between two
// segments holds it as it is. The pre-sieve patterns are constants outside
// the state (function-local statics, computed on first use in each process).
#pragma once

#include <algorithm>
#include <array>
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

namespace wheel30 {

/// The residues mod 30 that a byte of the sieve holds, bit j for kResidue[j].
inline constexpr uint8_t kResidue[8] = {1, 7, 11, 13, 17, 19, 23, 29};
/// kGap[j]: from kResidue[j] to the next number coprime to 30.
inline constexpr uint8_t kGap[8] = {6, 4, 2, 4, 2, 4, 6, 2};

/// The bit of residue r (mod 30) in a byte, or -1 if r is not coprime to 30.
constexpr int bit_of(uint64_t r) {
  for (int j = 0; j < 8; ++j)
    if (kResidue[j] == r % 30) return j;
  return -1;
}

/// The bits of a byte whose numbers 30 b + kResidue[j] are at least 30 b + r
/// (r in 0..30).
constexpr uint8_t bits_from(uint64_t r) {
  uint8_t m = 0;
  for (int j = 0; j < 8; ++j)
    if (kResidue[j] >= r) m |= uint8_t(1u << j);
  return m;
}

/// For a prime p = 30 q + kResidue[C], crossing out p k as k walks the wheel:
/// with k = kResidue[t] (mod 30), p k sits at bit bit_of(kResidue[C] kResidue[t])
/// of its byte, and the next multiple p k' (k' = k + kGap[t]) is q kGap[t] +
/// carry[t] bytes further. Over a whole turn (k to k + 30) the multiple moves
/// by exactly p bytes; offset[t] is the byte distance from the multiple with
/// k = 1 (mod 30) to the one with k = kResidue[t], minus q (kResidue[t] - 1).
struct CrossTable {
  uint8_t keep[8];  // the byte mask that crosses p k out
  uint8_t carry[8];
  uint8_t offset[8];
};

constexpr CrossTable cross_table(int c) {
  CrossTable t{};
  const uint64_t r = kResidue[c];
  uint8_t sum = 0;
  for (int j = 0; j < 8; ++j) {
    const uint64_t res = r * kResidue[j] % 30;
    t.keep[j] = uint8_t(~(1u << bit_of(res)));
    t.carry[j] = uint8_t((res + r * kGap[j]) / 30);
    t.offset[j] = sum;
    sum = uint8_t(sum + t.carry[j]);
  }
  return t;
}

/// Crosses out, in the segment s of `end` bytes, the multiples of the prime
/// p = 30 q + kResidue[C] from the one at byte i (its multiplier at wheel
/// position w) on; leaves i and w at the first multiple past the segment.
/// The turns that fit the segment whole are unrolled: eight stores per p
/// bytes, no test between them.
template <int C>
inline void cross_out(uint8_t* s, uint64_t end, uint64_t& i, uint8_t& w, uint64_t q) {
  static constexpr CrossTable T = cross_table(C);
  const uint64_t p = 30 * q + kResidue[C];
  const uint64_t q2 = 2 * q, q4 = 4 * q, q6 = 6 * q;
  // The last multiple of a turn from byte i is at i + q 28 + T.offset[7].
  const uint64_t reach = 28 * q + T.offset[7];
  switch (w) {
    for (;;) {
      case 0:
        if (end > reach) {
          const uint64_t o1 = q6 + T.offset[1], o2 = 10 * q + T.offset[2],
                         o3 = 12 * q + T.offset[3], o4 = 16 * q + T.offset[4],
                         o5 = 18 * q + T.offset[5], o6 = 22 * q + T.offset[6];
          for (const uint64_t stop = end - reach; i < stop; i += p) {
            uint8_t* b = s + i;
            b[0] &= T.keep[0];
            b[o1] &= T.keep[1];
            b[o2] &= T.keep[2];
            b[o3] &= T.keep[3];
            b[o4] &= T.keep[4];
            b[o5] &= T.keep[5];
            b[o6] &= T.keep[6];
            b[reach] &= T.keep[7];
          }
        }
        if (i >= end) return void(w = 0);
        s[i] &= T.keep[0];
        i += q6 + T.carry[0];
        [[fallthrough]];
      case 1:
        if (i >= end) return void(w = 1);
        s[i] &= T.keep[1];
        i += q4 + T.carry[1];
        [[fallthrough]];
      case 2:
        if (i >= end) return void(w = 2);
        s[i] &= T.keep[2];
        i += q2 + T.carry[2];
        [[fallthrough]];
      case 3:
        if (i >= end) return void(w = 3);
        s[i] &= T.keep[3];
        i += q4 + T.carry[3];
        [[fallthrough]];
      case 4:
        if (i >= end) return void(w = 4);
        s[i] &= T.keep[4];
        i += q2 + T.carry[4];
        [[fallthrough]];
      case 5:
        if (i >= end) return void(w = 5);
        s[i] &= T.keep[5];
        i += q4 + T.carry[5];
        [[fallthrough]];
      case 6:
        if (i >= end) return void(w = 6);
        s[i] &= T.keep[6];
        i += q6 + T.carry[6];
        [[fallthrough]];
      case 7:
        if (i >= end) return void(w = 7);
        s[i] &= T.keep[7];
        i += q2 + T.carry[7];
    }
  }
}

/// A pre-sieve pattern: the bytes of the wheel for 0 .. 30 N with every
/// multiple of the given primes crossed out, N their product. Byte b of the
/// sieve starts as byte b % N of the pattern.
template <uint32_t... P>
struct Pattern {
  static constexpr size_t kBytes = (size_t{1} * ... * P);
  std::array<uint8_t, kBytes> bytes;

  static const Pattern& get() {
    static const Pattern pattern = [] {
      Pattern t{};
      for (size_t b = 0; b < kBytes; ++b) {
        uint8_t byte = 0;
        for (int j = 0; j < 8; ++j) {
          const uint64_t v = 30 * b + kResidue[j];
          if (((v % P != 0) && ...)) byte |= uint8_t(1u << j);
        }
        t.bytes[b] = byte;
      }
      return t;
    }();
    return pattern;
  }

  /// ANDs (or copies, if `copy`) the pattern into s[0, len), s[0] being byte
  /// `first` of the sieve.
  void apply(uint8_t* s, uint64_t len, uint64_t first, bool copy) const {
    uint64_t at = first % kBytes;
    for (uint64_t done = 0; done < len;) {
      const uint64_t n = std::min<uint64_t>(len - done, kBytes - at);
      if (copy) {
        std::memcpy(s + done, bytes.data() + at, n);
      } else {
        for (uint64_t k = 0; k < n; ++k) s[done + k] &= bytes[at + k];
      }
      done += n;
      at = 0;
    }
  }
};

using PresieveA = Pattern<7, 11, 13, 17>;  // 17017 bytes
using PresieveB = Pattern<19, 23, 29>;     // 12673 bytes
/// The largest prime the patterns cross out: sieving starts above it.
inline constexpr uint32_t kLargestPresieved = 29;

}  // namespace wheel30

/// Counts the primes p with lo <= p < hi, one segment per call. Not
/// thread-safe (one owner). Throws std::invalid_argument for hi above 2^62
/// or a segment under 8 bytes.
class PrimeCounter {
 public:
  PrimeCounter(uint64_t lo, uint64_t hi, uint64_t segment_bytes) {
    if (hi > (uint64_t{1} << 62)) throw std::invalid_argument("PrimeCounter: hi above 2^62");
    if (segment_bytes < 8) throw std::invalid_argument("PrimeCounter: segment under 8 bytes");
    for (uint64_t p : {2, 3, 5}) count_ += lo <= p && p < hi;  // off the wheel
    // The wheel holds the numbers coprime to 30 in [first_, hi), 1 excluded.
    first_ = std::max<uint64_t>(lo, 7);
    hi_ = hi;
    begin_ = next_ = first_ / 30;
    end_ = first_ < hi ? (hi + 29) / 30 : begin_;
    words_.resize(size_t((segment_bytes + 7) / 8));
    if (done()) return;
    // Composites below hi have a prime factor p with p * p < hi.
    for (uint32_t p : odd_primes_up_to(isqrt(hi - 1))) {
      if (p <= wheel30::kLargestPresieved) continue;
      // The first multiple p k, k coprime to 30, at least p * p and in a
      // byte not before begin_.
      uint64_t k = std::max<uint64_t>(p, (30 * begin_ + p - 1) / p);
      while (wheel30::bit_of(k % 30) < 0) ++k;
      primes_.push_back(p);
      next_byte_.push_back(p * k / 30);
      wheel_.push_back(uint8_t(wheel30::bit_of(k % 30)));
    }
  }

  bool done() const { return next_ >= end_; }

  /// The primes counted so far (all of them once done()).
  uint64_t count() const { return count_; }

  /// Sieves and counts the next segment; does nothing once done().
  void sieve_next_segment() {
    if (done()) return;
    const uint64_t len = std::min<uint64_t>(uint64_t(words_.size()) * 8, end_ - next_);
    const uint64_t seg_end = next_ + len;  // byte just past the segment
    uint8_t* s = reinterpret_cast<uint8_t*>(words_.data());
    wheel30::PresieveA::get().apply(s, len, next_, true);
    wheel30::PresieveB::get().apply(s, len, next_, false);
    if (next_ == 0) s[0] = 0xfe;  // 7 .. 29 are prime (the patterns crossed them), 1 is not
    for (size_t k = 0; k < primes_.size(); ++k) {
      const uint64_t first = next_byte_[k];
      if (first >= seg_end) {
        // Primes are ascending, so p * p of every later prime is further
        // still; their first multiples are not reached yet.
        if (uint64_t(primes_[k]) * primes_[k] / 30 >= seg_end) break;
        continue;
      }
      uint64_t i = first - next_;
      const uint64_t p = primes_[k];
      switch (wheel30::bit_of(p % 30)) {
        case 0:
          wheel30::cross_out<0>(s, len, i, wheel_[k], p / 30);
          break;
        case 1:
          wheel30::cross_out<1>(s, len, i, wheel_[k], p / 30);
          break;
        case 2:
          wheel30::cross_out<2>(s, len, i, wheel_[k], p / 30);
          break;
        case 3:
          wheel30::cross_out<3>(s, len, i, wheel_[k], p / 30);
          break;
        case 4:
          wheel30::cross_out<4>(s, len, i, wheel_[k], p / 30);
          break;
        case 5:
          wheel30::cross_out<5>(s, len, i, wheel_[k], p / 30);
          break;
        case 6:
          wheel30::cross_out<6>(s, len, i, wheel_[k], p / 30);
          break;
        case 7:
          wheel30::cross_out<7>(s, len, i, wheel_[k], p / 30);
          break;
      }
      next_byte_[k] = next_ + i;
    }
    // Only the numbers in [first_, hi_) count.
    if (next_ == begin_) s[0] &= wheel30::bits_from(first_ - 30 * begin_);
    if (seg_end == end_) s[len - 1] &= uint8_t(~wheel30::bits_from(hi_ - 30 * (end_ - 1)));
    // Count by words; the bytes past len in the last word are cleared.
    const uint64_t full = len / 8;
    uint64_t n = 0;
    for (uint64_t k = 0; k < full; ++k) n += uint64_t(std::popcount(words_[k]));
    for (uint64_t b = full * 8; b < len; ++b) n += uint64_t(std::popcount(s[b]));
    count_ += n;
    next_ = seg_end;
  }

  /// How far the counter is, from 0 to 1.
  double progress() const {
    return end_ > begin_ ? double(next_ - begin_) / double(end_ - begin_) : 1.0;
  }

 private:
  uint64_t first_ = 0, hi_ = 0;              // the numbers on the wheel: [first_, hi_)
  uint64_t begin_ = 0, next_ = 0, end_ = 0;  // wheel bytes: [begin_, end_), next_ to do
  uint64_t count_ = 0;
  std::vector<uint32_t> primes_;     // sieving primes above 29, ascending
  std::vector<uint64_t> next_byte_;  // per prime: the byte of the next multiple to cross out
  std::vector<uint8_t> wheel_;       // per prime: that multiple's multiplier, as a wheel bit
  std::vector<uint64_t> words_;      // the segment: bit set = not crossed out
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
