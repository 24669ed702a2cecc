// A worker's liveness thread and crash reporting.
//
// The thread sends a heartbeat to the coordinator every `interval`, also
// while task code runs without pause points, so that a hung or stopped
// worker is noticed in seconds rather than at its time limit. When a
// heartbeat cannot be sent the coordinator is gone, and the worker ends at
// once (no orphan goes on computing and writing checkpoints).
//
// A worker dying of a synchronous signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
// SIGABRT) writes the signal and a backtrace to its log, hands them to this
// thread through a pipe (the handler itself only calls async-signal-safe
// functions), waits up to two seconds for the report to be sent, then dies
// of the signal.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace kappa::detail {

class CoordinatorClient;

class Liveness {
 public:
  /// Starts the thread and installs the fatal-signal handlers.
  Liveness(CoordinatorClient& client, std::chrono::milliseconds interval);
  /// Stops the thread (the handlers stay: they then only log).
  ~Liveness();
  Liveness(const Liveness&) = delete;
  Liveness& operator=(const Liveness&) = delete;

  /// The task a crash report names (0: none).
  static void set_task(uint64_t task);

 private:
  void run();
  bool relay_crash();

  CoordinatorClient& client_;
  std::chrono::milliseconds interval_;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

/// Installs the fatal-signal handlers that log a backtrace (and, with a
/// Liveness running, report the crash). Idempotent.
void install_crash_handlers();

}  // namespace kappa::detail
