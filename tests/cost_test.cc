// The Lambda cost estimate (coordinator/cost.h), against numbers worked out
// by hand from the price table.
#include "coordinator/cost.h"

#include <gtest/gtest.h>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

JobStats sample() {
  JobStats s;
  s.billed_ms = 3000;
  s.invocations = 10;
  s.stored_checkpoints = 2000;
  s.checkpoints = 2500;  // 500 inline: no S3 request
  s.image_reads = 500;
  s.blocked_wait_ms = 7000;
  return s;
}

TEST(Cost, DefaultPricesOfUsEast1) {
  CostEstimate c = estimate_cost(sample(), 2048);
  // 3 s at 2 GB: 6 GB-s at $0.0000166667 = $0.0001000002; 10 requests at
  // $0.20 per million = $0.000002; 2000 PUTs at $0.005 per 1000 = $0.01;
  // 500 GETs at $0.0004 per 1000 = $0.0002.
  EXPECT_DOUBLE_EQ(c.gb_seconds, 6.0);
  EXPECT_EQ(c.requests, 10u);
  EXPECT_EQ(c.s3_puts, 2000u);
  EXPECT_EQ(c.s3_gets, 500u);
  EXPECT_NEAR(c.usd, 0.0103020002, 1e-12);
  // Plus 7 s of parked waits at 2 GB: 14 GB-s = $0.0002333338.
  EXPECT_NEAR(c.usd_if_blocked_billed, 0.0105353340, 1e-12);
}

TEST(Cost, PricesAndMemoryAreTheCallers) {
  JobStats s;
  s.billed_ms = 4000;
  s.invocations = 3;
  s.stored_checkpoints = 1;
  s.image_reads = 2;
  s.blocked_wait_ms = 1000;
  LambdaPrices p{
      .per_gb_second = 1, .per_request = 0.5, .s3_put_per_1000 = 2000, .s3_get_per_1000 = 1000};
  CostEstimate c = estimate_cost(s, 512, p);
  // 4 s at 0.5 GB = 2 GB-s: $2; 3 requests: $1.5; 1 PUT: $2; 2 GETs: $2.
  EXPECT_DOUBLE_EQ(c.gb_seconds, 2.0);
  EXPECT_DOUBLE_EQ(c.usd, 7.5);
  EXPECT_DOUBLE_EQ(c.usd_if_blocked_billed, 8.0);  // 0.5 GB-s more
}

TEST(Cost, AnEmptyJobCostsNothing) {
  CostEstimate c = estimate_cost(JobStats{}, 1024);
  EXPECT_EQ(c.usd, 0);
  EXPECT_EQ(c.usd_if_blocked_billed, 0);
}

TEST(Cost, RefusesNonsense) {
  EXPECT_THROW(estimate_cost(sample(), 0), Error);
  EXPECT_THROW(estimate_cost(sample(), 1024, LambdaPrices{.per_gb_second = -1}), Error);
}

TEST(Cost, DescribesSmallAmountsWithTwoSignificantDigits) {
  CostEstimate c;
  c.usd = 0.0012;
  c.usd_if_blocked_billed = 0.003;
  EXPECT_EQ(describe_cost(c, 1024),
            "~$0.0012 on Lambda (1024 MB); $0.0030 if blocked waits were billed");
  c.usd = 0.0000042;
  c.usd_if_blocked_billed = 12.5;
  EXPECT_EQ(describe_cost(c, 128),
            "~$0.0000042 on Lambda (128 MB); $12.50 if blocked waits were billed");
}

}  // namespace
}  // namespace kappa::detail
