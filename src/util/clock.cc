#include "util/clock.h"

namespace kappa::detail {
namespace {

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint when) override {
    cv.wait_until(lock, when);
  }
};

}  // namespace

Clock& Clock::steady() {
  static SteadyClock clock;
  return clock;
}

Clock::TimePoint FakeClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

void FakeClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                           TimePoint when) {
  if (now() >= when) return;
  cv.wait_for(lock, std::chrono::milliseconds(2));
}

void FakeClock::advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
}

}  // namespace kappa::detail
