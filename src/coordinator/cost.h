// What a job costs, or would cost, on AWS Lambda with its checkpoints on S3:
// an estimate from the job's counts (JobStats), for the summary line and the
// live view (issue 12).
//
// The inputs: GB-seconds (the function's memory times the billed duration of
// each task invocation), one request per invocation, one S3 PUT per image
// written to the store and one GET per image link read back. Not counted:
// S3 storage (images live minutes), data transfer (free within a region),
// the coordinator's machine, puts and gets of the job's own data, the extra
// requests of multipart uploads and ranged reads of very large images, and
// the free tier.
//
// Thread safety: plain functions of their arguments.
#pragma once

#include <cstdint>
#include <string>

#include "coordinator/job_state.h"

namespace kappa::detail {

/// Unit prices in USD. The defaults are AWS's published on-demand prices for
/// us-east-1 (N. Virginia), x86_64 Lambda functions and S3 Standard, as of
/// 2026-12-02 (https://aws.amazon.com/lambda/pricing/,
/// https://aws.amazon.com/s3/pricing/). The Lambda figures were checked that
/// day against third-party transcriptions of AWS's page (its first tier, up to 6
/// billion GB-seconds a month; Lambda bills by the millisecond since
/// December 2020); the S3 request figures are those AWS lists for S3
/// Standard. Arm64 functions cost 20% less per GB-second; other regions
/// differ; the free tier is not counted. `run` overrides each with a flag
/// (--price-gb-s, --price-request, --price-s3-put, --price-s3-get).
struct LambdaPrices {
  double per_gb_second = 0.0000166667;  // Lambda duration, x86_64, first 6 billion GB-s a month
  double per_request = 0.20 / 1e6;      // Lambda requests: $0.20 per million
  double s3_put_per_1000 = 0.005;       // S3 Standard PUT, COPY, POST, LIST
  double s3_get_per_1000 = 0.0004;      // S3 Standard GET, SELECT and all other requests
};

/// The Lambda memory size (MB) an estimate assumes unless told otherwise.
inline constexpr double kDefaultLambdaMemoryMb = 1024;

struct CostEstimate {
  double usd = 0;  // what the run costs (would cost) on Lambda
  // The same, had every wait of a parked task been billed: what a platform
  // that keeps a blocked task on its worker would charge.
  double usd_if_blocked_billed = 0;
  double gb_seconds = 0;  // billed duration times memory (parked waits excluded)
  uint64_t requests = 0, s3_puts = 0, s3_gets = 0;
};

/// The estimate for a job with `stats`, run by functions of `memory_mb` MB.
/// Throws kappa::Error if memory_mb is not positive or a price is negative.
CostEstimate estimate_cost(const JobStats& stats, double memory_mb,
                           const LambdaPrices& prices = {});

/// "~$0.0012 on Lambda (1024 MB); $0.0030 if blocked waits were billed": a
/// price with enough digits to tell small runs apart.
std::string describe_cost(const CostEstimate& cost, double memory_mb);

}  // namespace kappa::detail
