#include "runtime/parallel.h"

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kappa::detail {
namespace {

class Pool {
 public:
  Pool() {
    unsigned cores = std::thread::hardware_concurrency();
    unsigned helpers = cores > 1 ? std::min(cores - 1, 7u) : 0;
    for (unsigned i = 0; i < helpers; ++i) threads_.emplace_back([this] { helper(); });
  }

  void run(size_t n, const std::function<void(size_t)>& fn) {
    std::lock_guard serial(run_mu_);  // one job at a time
    {
      std::lock_guard lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      active_ = threads_.size();
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    for (size_t i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void helper() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
      std::lock_guard lock(mu_);
      if (--active_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  size_t active_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace

void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  static Pool* pool = new Pool;  // never destroyed: helpers block forever at exit
  pool->run(n, fn);
}

}  // namespace kappa::detail
