// SerialExecutor: one thread that runs posted jobs in order. For slow work
// that must not run under a caller's lock or on a caller's thread (launching
// workers, removing images from a store).
//
// Thread safety: every method may be called from any thread, except that
// the destructor must not race with post().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace kappa::detail {

class SerialExecutor {
 public:
  SerialExecutor() : thread_([this] { run(); }) {}
  /// Runs what is still queued, then stops.
  ~SerialExecutor() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  /// Queues `job`. A job must not throw.
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

  /// Waits until every job posted so far has run.
  void drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
  }

  /// Drops the jobs not started yet.
  void discard_pending() {
    std::lock_guard lock(mu_);
    jobs_.clear();
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      lock.unlock();
      job();
      lock.lock();
      busy_ = false;
      cv_.notify_all();  // drain() may be waiting
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;  // the last member: it starts after the others
};

}  // namespace kappa::detail
