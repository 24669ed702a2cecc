// LocalBackend: workers as processes of the application binary on this
// machine (DESIGN.md section 6). Each invocation (one task handed to a
// worker) is killed with SIGKILL at the time limit, like a Lambda; workers
// are reused between invocations; --chaos-kill P kills an invocation at a
// random moment with probability P. A worker's death is seen within a few
// milliseconds (a thread polls waitpid on each worker) and reported to the
// coordinator.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"

namespace kappa::detail {

struct LocalBackendOptions {
  std::string executable;                // the application binary
  std::vector<std::string> worker_args;  // after "worker": coordinator, store, ...
  double time_limit = 300;               // seconds per invocation (0: none)
  double chaos_kill = 0;                 // probability per invocation
  uint64_t seed = 0;                     // for chaos (0: random)
  std::string log_dir;                   // worker stderr goes to LOG_DIR/worker-N.log
};

class LocalBackend final : public Backend {
 public:
  LocalBackend(LocalBackendOptions options, Coordinator* coordinator);
  ~LocalBackend() override;

  bool launch_worker(uint64_t worker_id, bool on_coordinator, std::string* error) override;
  void invocation_started(uint64_t worker_id) override;
  void invocation_ended(uint64_t worker_id) override;
  double time_limit(bool on_coordinator) const override {
    return on_coordinator ? 0 : options_.time_limit;
  }

  /// Kills every worker and stops the helper threads.
  void shutdown();

  uint64_t chaos_kills() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Proc {
    uint64_t worker_id;
    bool on_coordinator;
    std::optional<Clock::time_point> kill_at;
    std::optional<Clock::time_point> started;  // of the current invocation
    bool chaos = false;
  };
  Proc* find(uint64_t worker_id);  // mu_ held
  void reap();
  void kill_timer();

  LocalBackendOptions options_;
  Coordinator* coordinator_;
  mutable std::mutex mu_;
  std::condition_variable cv_;         // the kill timer's
  std::condition_variable reaper_cv_;  // paces the reaper's polling
  std::map<pid_t, Proc> procs_;
  std::map<uint64_t, pid_t> pid_of_;
  std::mt19937_64 rng_;
  bool stopping_ = false;
  uint64_t chaos_kills_ = 0;
  double mean_invocation_ = 0;  // seconds, moving average of finished invocations
  std::thread reaper_, timer_;
};

}  // namespace kappa::detail
