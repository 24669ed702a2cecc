#include "coordinator/cost.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kappa/error.h"

namespace kappa::detail {

namespace {

// "$0.0012": two significant digits at least, never in exponent form.
std::string usd(double v) {
  if (v <= 0) return "$0";
  int decimals = std::clamp(1 - int(std::floor(std::log10(v))), 2, 10);
  return fmt::format("${:.{}f}", v, decimals);
}

}  // namespace

CostEstimate estimate_cost(const JobStats& s, double memory_mb, const LambdaPrices& p) {
  if (!(memory_mb > 0))
    throw Error("the Lambda memory size must be positive, not " + fmt::format("{}", memory_mb));
  for (double price : {p.per_gb_second, p.per_request, p.s3_put_per_1000, p.s3_get_per_1000})
    if (!(price >= 0)) throw Error(fmt::format("a price cannot be negative ({})", price));
  const double gb = memory_mb / 1024;  // Lambda's GB-second is of 1024 MB
  CostEstimate c;
  c.gb_seconds = double(s.billed_ms) / 1000 * gb;
  c.requests = s.invocations;
  c.s3_puts = s.stored_checkpoints;
  c.s3_gets = s.image_reads;
  c.usd = c.gb_seconds * p.per_gb_second + double(c.requests) * p.per_request +
          double(c.s3_puts) / 1000 * p.s3_put_per_1000 +
          double(c.s3_gets) / 1000 * p.s3_get_per_1000;
  c.usd_if_blocked_billed = c.usd + double(s.blocked_wait_ms) / 1000 * gb * p.per_gb_second;
  return c;
}

std::string describe_cost(const CostEstimate& c, double memory_mb) {
  return fmt::format("~{} on Lambda ({:g} MB); {} if blocked waits were billed", usd(c.usd),
                     memory_mb, usd(c.usd_if_blocked_billed));
}

}  // namespace kappa::detail
