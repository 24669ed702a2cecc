// Clock: the time seam. Code that reads the time or waits for a moment does
// so through a Clock, so that tests can drive grace periods, parking and
// deadlines by hand (FakeClock) instead of sleeping.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace kappa::detail {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  /// Waits on `cv` (with `lock` held on entry and on return) until `when`
  /// by this clock or a notification; may also return early, spuriously, so
  /// callers re-check their condition.
  virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint when) = 0;

  /// The real monotonic clock (std::chrono::steady_clock).
  static Clock& steady();
};

/// A clock that moves only when told to. Waits return at least every few
/// milliseconds of real time, so a waiter notices advance() promptly without
/// the clock having to know its condition variables.
class FakeClock final : public Clock {
 public:
  TimePoint now() const override;
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint when) override;
  void advance(Duration d);

 private:
  mutable std::mutex mu_;
  TimePoint now_{};  // starts at the epoch of steady_clock
};

}  // namespace kappa::detail
