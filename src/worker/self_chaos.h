// SelfChaos: --chaos-kill carried out by the worker itself, for platforms
// whose backend cannot kill an invocation at a moment of its choosing
// (Slurm: a job is signalled through slurmctld, seconds late).
//
// At each invocation start it draws, with probability `p`, a moment within
// twice the mean invocation length seen so far (the backend's hint at
// launch, then this worker's own), and within the time left; at that moment
// it creates the marker file (so that the backend can tell this SIGKILL from
// an outside one) and kills the process with SIGKILL. An invocation that ends
// first cancels it. The same policy as the local backend's (local_backend.cc).
//
// Or, with `kill_after` (aws: the backend draws, and a Lambda has no file
// system the backend could see a marker on), it kills the process that many
// seconds after its construction, whatever the invocations do, with no marker.
//
// Thread safety: invocation_started/ended from the worker's loop; the kill
// comes from a thread of its own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace kappa::detail {

class SelfChaos {
 public:
  /// p == 0 and no kill_after: never kills (and starts no thread). seed 0:
  /// random.
  SelfChaos(double p, uint64_t seed, double mean_hint_seconds, std::string marker_path,
            std::optional<double> kill_after = std::nullopt);
  ~SelfChaos();
  SelfChaos(const SelfChaos&) = delete;
  SelfChaos& operator=(const SelfChaos&) = delete;

  /// `time_left`: seconds the invocation may run (0: no limit).
  void invocation_started(double time_left);
  void invocation_ended();

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  [[noreturn]] void kill_self();

  const double p_;
  const std::string marker_;
  std::mt19937_64 rng_;
  double mean_;  // seconds, moving average of finished invocations
  std::optional<Clock::time_point> started_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Clock::time_point> kill_at_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kappa::detail
