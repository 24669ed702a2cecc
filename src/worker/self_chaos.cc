#include "worker/self_chaos.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "util/chaos.h"

namespace kappa::detail {

SelfChaos::SelfChaos(double p, uint64_t seed, double mean_hint_seconds, std::string marker_path,
                     std::optional<double> kill_after)
    : p_(p),
      marker_(std::move(marker_path)),
      rng_(seed ? seed : std::random_device{}()),
      mean_(mean_hint_seconds) {
  if (kill_after)
    kill_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(*kill_after));
  if (p_ > 0 || kill_at_) thread_ = std::thread([this] { run(); });
}

SelfChaos::~SelfChaos() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SelfChaos::invocation_started(double time_left) {
  if (p_ <= 0) return;
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  started_ = now;
  kill_at_.reset();
  if (std::uniform_real_distribution<>(0, 1)(rng_) >= p_) return;
  double span = chaos_kill_span(mean_, time_left, 0.001);  // util/chaos.h
  kill_at_ = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                       std::uniform_real_distribution<>(0, span)(rng_)));
  cv_.notify_all();
}

void SelfChaos::invocation_ended() {
  if (p_ <= 0) return;
  std::lock_guard lock(mu_);
  kill_at_.reset();
  if (started_) {
    double s = std::chrono::duration<double>(Clock::now() - *started_).count();
    mean_ = mean_ == 0 ? s : 0.9 * mean_ + 0.1 * s;
    started_.reset();
  }
}

void SelfChaos::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!kill_at_) {
      cv_.wait(lock);
    } else if (Clock::now() >= *kill_at_) {
      kill_self();
    } else {
      cv_.wait_until(lock, *kill_at_);
    }
  }
}

void SelfChaos::kill_self() {
  if (!marker_.empty()) {
    int fd = ::open(marker_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
  }
  ::kill(::getpid(), SIGKILL);
  for (;;) pause();  // SIGKILL cannot be caught: never reached
}

}  // namespace kappa::detail
