// The primes example's kernel (examples/primes/primes_kernel.h) alone: its
// counts of many small, random and edge ranges against a plain sieve of the
// range (support/prime_counts.h), for segments from one word to many pages;
// a counter copied between two segments (as a checkpoint holds it) goes on to
// the same count; long ranges against Lucy Hedgehog's recurrence.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "primes/primes_kernel.h"
#include "support/prime_counts.h"

namespace kappa::testing {
namespace {

using kappa_examples::count_primes;
using kappa_examples::PrimeCounter;

// Every range within [0, 200), including the empty ones, with segments of 8
// and 16 bytes (240 and 480 numbers): starts at 0, 1, 2, ends on and off the
// wheel's multiples of 30, the pre-sieved primes 7 .. 29 and their squares.
TEST(PrimeKernel, CountsEveryRangeOfTheFirstNumbers) {
  for (uint64_t lo = 0; lo < 200; ++lo)
    for (uint64_t hi = lo; hi < 200; ++hi)
      for (uint64_t segment : {8, 16}) {
        ASSERT_EQ(count_primes(lo, hi, segment), primes_in_range_by_sieve(lo, hi))
            << "[" << lo << ", " << hi << ") segment " << segment;
      }
  EXPECT_EQ(count_primes(5, 2, 8), 0u);  // hi below lo: an empty range
}

// Random ranges at several magnitudes, short (within a byte or two of the
// wheel) and long (many segments, so that the sieving primes' next multiples
// and wheel positions carry from segment to segment).
TEST(PrimeKernel, CountsRandomRangesAsAPlainSieveDoes) {
  std::mt19937_64 rng(20261202);
  const std::vector<uint64_t> bases = {0, 30 * 17017, 1000000007, 10000000000, 1000000000000};
  const std::vector<uint64_t> segments = {8, 24, 1000, 4096, 32768};
  for (int t = 0; t < 600; ++t) {
    const uint64_t lo = bases[size_t(t) % bases.size()] + rng() % 2000000;
    const uint64_t hi = lo + rng() % (t % 3 == 0 ? 100 : 100000);
    const uint64_t segment = segments[rng() % segments.size()];
    ASSERT_EQ(count_primes(lo, hi, segment), primes_in_range_by_sieve(lo, hi))
        << "[" << lo << ", " << hi << ") segment " << segment;
  }
}

// Ranges ending right at, before and after primes and squares of primes,
// where an off-by-one at hi would show.
TEST(PrimeKernel, CountsRangesEndingAroundPrimesAndSquares) {
  for (uint64_t x : {31ull * 31, 37ull * 37, 1009ull * 1009, 65521ull * 65521, 4294967291ull,
                     99999999977ull, 1000000007ull * 1000000007ull / 100000})
    for (uint64_t d = 0; d < 3; ++d) {
      const uint64_t hi = x - 1 + d, lo = hi > 5000 ? hi - 5000 : 0;
      ASSERT_EQ(count_primes(lo, hi, 64), primes_in_range_by_sieve(lo, hi))
          << "[" << lo << ", " << hi << ")";
    }
}

// A copy taken between two segments, as a checkpoint holds the counter, goes
// on to the same count as the original; progress grows from 0 to 1.
TEST(PrimeKernel, ACopyBetweenSegmentsGoesOnToTheSameCount) {
  const uint64_t lo = 123456789, hi = 133456789;
  PrimeCounter counter(lo, hi, 4096);
  double progress = counter.progress();
  EXPECT_EQ(progress, 0.0);
  std::vector<PrimeCounter> copies;
  for (int segments = 0; !counter.done(); ++segments) {
    if (segments % 7 == 3) copies.push_back(counter);
    counter.sieve_next_segment();
    EXPECT_GT(counter.progress(), progress);
    progress = counter.progress();
  }
  EXPECT_EQ(progress, 1.0);
  const uint64_t expected = primes_in_range_by_sieve(lo, hi);
  EXPECT_EQ(counter.count(), expected);
  ASSERT_GT(copies.size(), 2u);
  for (PrimeCounter& c : copies) {
    while (!c.done()) c.sieve_next_segment();
    EXPECT_EQ(c.count(), expected);
  }
}

// Long ranges, split as the app splits them, against Lucy Hedgehog's count.
TEST(PrimeKernel, CountsThePrimesBelowNAsLucyHedgehogDoes) {
  for (uint64_t n : {1000000, 123456789, 300000000})
    for (uint64_t parts : {1, 3}) {
      uint64_t sum = 0;
      for (uint64_t i = 0; i < parts; ++i)
        sum += count_primes(kappa_examples::range_begin(n, parts, i),
                            kappa_examples::range_begin(n, parts, i + 1), 256 << 10);
      EXPECT_EQ(sum, primes_up_to_by_lucy(n - 1)) << "n = " << n << ", parts = " << parts;
    }
}

TEST(PrimeKernel, RejectsRangesAbove2To62AndTinySegments) {
  EXPECT_THROW(PrimeCounter(0, (uint64_t{1} << 62) + 1, 256), std::invalid_argument);
  EXPECT_THROW(PrimeCounter(0, 100, 7), std::invalid_argument);
}

}  // namespace
}  // namespace kappa::testing
