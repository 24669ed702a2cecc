#include "worker/handover_cost.h"

#include <algorithm>
#include <cstdio>

namespace kappa::detail {
namespace {

// Pessimistic averages: a slower sample is taken at once, a faster one only
// a fifth of the way.
void rate_sample(double& rate, double sample) {
  if (sample <= 0) return;
  rate = rate == 0 || sample < rate ? sample : 0.8 * rate + 0.2 * sample;
}

void time_sample(double& t, double sample) {
  if (sample < 0) return;
  t = sample > t ? sample : 0.8 * t + 0.2 * sample;
}

// Below this, a put's time is taken as the store's latency; above, as
// latency plus bytes at the store's throughput.
constexpr uint64_t kSmallPut = 256 << 10;

}  // namespace

void HandoverCost::task_started() {
  std::lock_guard lock(mu_);
  delta_capture_s_ = delta_bytes_ = 0;
  delta_seen_ = false;
}

void HandoverCost::seed_delta(uint64_t image_bytes) {
  std::lock_guard lock(mu_);
  if (delta_seen_ || image_bytes == 0) return;
  delta_bytes_ = double(image_bytes);
  delta_capture_s_ = double(image_bytes) / (capture_rate_ > 0 ? capture_rate_ : p_.capture_rate);
  delta_seen_ = true;
}

void HandoverCost::restored(uint64_t state_bytes, uint64_t stored_bytes, double read_s,
                            double restore_s) {
  std::lock_guard lock(mu_);
  // Only a first estimate: a read is no write, and a restore no capture.
  if (capture_rate_ == 0 && restore_s > 0) capture_rate_ = double(state_bytes) / restore_s;
  if (store_rate_ == 0 && read_s > 0 && stored_bytes >= kSmallPut)
    store_rate_ = double(stored_bytes) / read_s;
}

void HandoverCost::captured(bool full, uint64_t raw_bytes, uint64_t image_bytes, double seconds) {
  std::lock_guard lock(mu_);
  // Only full images measure the rate: a delta's time is mostly finding the
  // changed pages, which its bytes do not tell.
  if (full && seconds > 0 && raw_bytes >= kSmallPut)
    rate_sample(capture_rate_, double(raw_bytes) / seconds);
  if (!full) {
    // Decaying maxima: a task's deltas vary with what it wrote meanwhile.
    delta_capture_s_ = std::max(seconds, 0.9 * delta_capture_s_);
    delta_bytes_ = std::max(double(image_bytes), 0.9 * delta_bytes_);
    delta_seen_ = true;
  }
}

void HandoverCost::stored(uint64_t bytes, double seconds) {
  std::lock_guard lock(mu_);
  // Any put bounds the latency from above.
  latency_bound_ = latency_bound_ == 0 ? seconds : std::min(latency_bound_, seconds);
  if (bytes < kSmallPut) {
    time_sample(store_latency_, seconds);
    return;
  }
  double transfer = seconds - store_latency_;
  rate_sample(store_rate_, double(bytes) / std::max(transfer, seconds * 0.5));
}

void HandoverCost::called(double seconds) {
  std::lock_guard lock(mu_);
  time_sample(call_rtt_, seconds);
}

double HandoverCost::cost_locked(const Next& n) const {
  double capture_rate = capture_rate_ > 0 ? capture_rate_ : p_.capture_rate;
  double store_rate = store_rate_ > 0 ? store_rate_ : p_.store_rate;
  double latency = store_latency_ > 0   ? store_latency_
                   : latency_bound_ > 0 ? std::min(latency_bound_, p_.store_latency_s)
                                        : p_.store_latency_s;
  double rtt = call_rtt_ > 0 ? call_rtt_ : p_.call_rtt_s;
  double state = double(n.state_bytes);

  double drain = double(n.pending_bytes) / store_rate + double(n.pending_puts) * latency +
                 double(n.pending_calls) * rtt;
  double capture, image;
  if (full_locked(n)) {
    capture = state / capture_rate;
    image = state;
  } else if (delta_seen_) {
    capture = delta_capture_s_;
    image = delta_bytes_;
  } else {  // a larger delta would be a full image
    capture = state / 2 / capture_rate;
    image = state / 2;
  }
  if (!full_locked(n) && n.cumulative) {
    capture += double(n.since_full_bytes) / capture_rate;
    image += double(n.since_full_bytes);
  }
  double put = n.inline_image ? 0 : image / store_rate + latency;
  return drain + capture + put + rtt;
}

bool HandoverCost::full_locked(const Next& n) const {
  if (!n.chained) return true;
  double next_delta = delta_seen_ ? delta_bytes_ : 0;
  return (double(n.since_full_bytes) + next_delta) * 2 >= double(n.state_bytes);
}

bool HandoverCost::expects_full(const Next& next) const {
  std::lock_guard lock(mu_);
  return full_locked(next);
}

double HandoverCost::cost_s(const Next& next) const {
  std::lock_guard lock(mu_);
  return cost_locked(next);
}

double HandoverCost::margin_s(const Next& next, double invocation_s) const {
  std::lock_guard lock(mu_);
  double margin = p_.floor_s + p_.safety * cost_locked(next);
  if (invocation_s > 0) margin = std::min(margin, p_.max_fraction * invocation_s);
  return margin;
}

std::string HandoverCost::describe() const {
  std::lock_guard lock(mu_);
  char buf[256];
  auto or_default = [](double v, double d) { return v > 0 ? v : d; };
  double latency = store_latency_ > 0   ? store_latency_
                   : latency_bound_ > 0 ? std::min(latency_bound_, p_.store_latency_s)
                                        : p_.store_latency_s;
  std::snprintf(buf, sizeof buf,
                "capture %.0f MB/s, store %.0f MB/s + %.1f ms, call %.1f ms, delta %.1f ms / %.0f "
                "KB%s",
                or_default(capture_rate_, p_.capture_rate) / 1e6,
                or_default(store_rate_, p_.store_rate) / 1e6, latency * 1e3,
                or_default(call_rtt_, p_.call_rtt_s) * 1e3, delta_capture_s_ * 1e3,
                delta_bytes_ / 1e3, delta_seen_ ? "" : " (none yet)");
  return buf;
}

}  // namespace kappa::detail
