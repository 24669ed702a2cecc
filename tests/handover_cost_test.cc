// The hand-over margin a worker computes from the measured cost of its task's
// checkpoint (worker/handover_cost.h).
#include "worker/handover_cost.h"

#include <gtest/gtest.h>

namespace kappa::detail {
namespace {

constexpr uint64_t kMiB = 1 << 20;

HandoverCost::Params params() {
  HandoverCost::Params p;
  p.floor_s = 0.05;
  p.safety = 1.5;
  p.max_fraction = 0.75;
  p.capture_rate = 300e6;
  p.store_rate = 100e6;
  p.store_latency_s = 0.02;
  p.call_rtt_s = 0.02;
  return p;
}

HandoverCost::Next state(uint64_t bytes) {
  HandoverCost::Next n;
  n.state_bytes = bytes;
  return n;
}

// A task's first hand-over, as measured: a 256 MiB full image captured in
// 64 ms and stored in 128 ms, a small put's latency, a call's round trip.
void measure_a_full_image(HandoverCost& c) {
  c.captured(true, 256 * kMiB, 256 * kMiB, 0.064);
  c.stored(256 * kMiB, 0.128);
  c.stored(4 << 10, 0.001);
  c.called(0.001);
}

TEST(HandoverCost, DefaultsCoverAFullImageOfTheState) {
  HandoverCost c(params());
  HandoverCost::Next n = state(300 * 1000 * 1000);
  EXPECT_TRUE(c.expects_full(n));
  // 1 s to capture, 3 s + 20 ms to store, 20 ms for the call.
  EXPECT_NEAR(c.cost_s(n), 1 + 3.02 + 0.02, 1e-9);
  EXPECT_NEAR(c.margin_s(n, 0), 0.05 + 1.5 * 4.04, 1e-9);
  // Never more than max_fraction of the invocation: the task must progress.
  EXPECT_NEAR(c.margin_s(n, 1), 0.75, 1e-9);
}

TEST(HandoverCost, MeasuredRatesReplaceTheDefaults) {
  HandoverCost c(params());
  c.captured(true, 256 * kMiB, 256 * kMiB, 0.064);  // 4.2 GB/s
  c.stored(4 << 10, 0.001);                         // small: the latency
  c.stored(256 * kMiB, 0.001 + 0.128);              // 2.1 GB/s past the latency
  c.called(0.0005);
  // A delta's time says little of the rate (finding its pages): not sampled.
  c.captured(false, 1 * kMiB, 1 * kMiB, 0.1);
  HandoverCost::Next n = state(256 * kMiB);
  double expected = 0.064 + 0.128 + 0.001 + 0.0005;
  EXPECT_NEAR(c.cost_s(n), expected, 1e-6);
  EXPECT_NEAR(c.margin_s(n, 1), 0.05 + 1.5 * expected, 1e-6);
  // Well under the fixed 20% the worker used before, and well over the floor.
  EXPECT_LT(c.margin_s(n, 1), 0.5);
}

TEST(HandoverCost, ADeltaCostsWhatThisTasksDeltasCost) {
  HandoverCost c(params());
  measure_a_full_image(c);
  c.captured(false, 1 * kMiB, 1 * kMiB, 0.004);
  HandoverCost::Next n = state(256 * kMiB);
  n.chained = true;
  n.since_full_bytes = 10 * kMiB;
  EXPECT_FALSE(c.expects_full(n));
  double delta = c.cost_s(n);
  EXPECT_LT(delta, 0.02);
  EXPECT_GT(delta, 0.004);

  // Near half the state changed since the full image: the next is full.
  n.since_full_bytes = 128 * kMiB - 512 * 1024;
  EXPECT_TRUE(c.expects_full(n));
  EXPECT_GT(c.cost_s(n), 0.15);

  // A cumulative delta carries every change since the full image.
  n.since_full_bytes = 64 * kMiB;
  n.cumulative = true;
  EXPECT_FALSE(c.expects_full(n));
  EXPECT_GT(c.cost_s(n), delta + 0.03);
}

TEST(HandoverCost, ADeltaBeforeAnyIsBoundedByHalfTheState) {
  HandoverCost c(params());
  measure_a_full_image(c);
  HandoverCost::Next n = state(256 * kMiB);
  n.chained = true;
  double unknown = c.cost_s(n);
  HandoverCost::Next full = state(256 * kMiB);
  EXPECT_NEAR(unknown - c.cost_s(full), -(0.032 + 0.064), 1e-3);
  // The last link of a resumed chain is a better first guess.
  c.seed_delta(2 * kMiB);
  EXPECT_LT(c.cost_s(n), unknown / 4);
  // A new task forgets it.
  c.task_started();
  EXPECT_NEAR(c.cost_s(n), unknown, 1e-9);
}

TEST(HandoverCost, PendingUplinkWorkIsPartOfTheCost) {
  HandoverCost c(params());
  c.stored(256 * kMiB, 0.128);
  HandoverCost::Next n = state(1 * kMiB);
  double idle = c.cost_s(n);
  n.pending_bytes = 256 * kMiB;
  n.pending_puts = 1;
  n.pending_calls = 1;
  EXPECT_GT(c.cost_s(n), idle + 0.128);
}

TEST(HandoverCost, ASlowSampleCountsAtOnceAFastOneSlowly) {
  HandoverCost c(params());
  c.captured(true, 100 * kMiB, 100 * kMiB, 0.1);
  HandoverCost::Next n = state(100 * kMiB);
  double before = c.cost_s(n);
  c.captured(true, 100 * kMiB, 100 * kMiB, 0.4);  // 4x slower: taken as is
  EXPECT_NEAR(c.cost_s(n) - before, 0.3, 1e-6);
  c.captured(true, 100 * kMiB, 100 * kMiB, 0.1);  // faster: a fifth of the way
  EXPECT_GT(c.cost_s(n) - before, 0.1);
  EXPECT_LT(c.cost_s(n) - before, 0.2);
}

TEST(HandoverCost, AnInlineImageNeedsNoPut) {
  HandoverCost c(params());
  HandoverCost::Next n = state(32 << 10);
  n.inline_image = true;
  EXPECT_NEAR(c.cost_s(n), (32 << 10) / 300e6 + 0.02, 1e-9);
}

}  // namespace
}  // namespace kappa::detail
