// WorkerService: what the coordinator offers the transports, and WorkerLink:
// what a transport offers the coordinator to answer one worker. The rpc
// layer turns wire messages into these calls; the coordinator implements
// WorkerService without knowing which transport (if any) is behind it.
//
// Answers are asynchronous: a request method returns at once and its answer
// goes through the worker's link, exactly once per request, from whichever
// thread produced it (possibly the caller's, before the method returns, or
// one of the coordinator's own threads much later, when a blocked call
// completes or its grace period ends). A worker has at most one request
// waiting for an answer at a time.
//
// Thread safety: WorkerService methods may be called from any thread;
// WorkerLink::send may be called from any thread, never twice at once for
// the same link.
#pragma once

#include <cstdint>
#include <memory>

#include "protocol/messages.h"

namespace kappa::detail {

/// One worker's connection, as the coordinator sees it.
class WorkerLink {
 public:
  virtual ~WorkerLink() = default;
  virtual void send(Assignment a) = 0;
  virtual void send(CallOutcome o) = 0;
  /// The answer to a finish that did not ask for the next assignment.
  virtual void send_finished() = 0;
};

class WorkerService {
 public:
  virtual ~WorkerService() = default;
  /// An authenticated session of `worker` opened: its answers go to `link`.
  virtual void connect(uint64_t worker, std::shared_ptr<WorkerLink> link) = 0;
  /// The session ended. With `lost`, the worker counts as dead (for
  /// platforms that cannot watch their workers' processes).
  virtual void disconnect(uint64_t worker, bool lost) = 0;

  /// The worker asks for work. Answer: an Assignment.
  virtual void next(uint64_t worker) = 0;
  /// A pause point. Answer: a CallOutcome.
  virtual void call(CallInfo info) = 0;
  /// The task ended. Answer: an Assignment when info.and_next, else finished.
  virtual void finish(FinishInfo info) = 0;
  /// The worker is alive (sent from a thread of its own every fraction of a
  /// second, also while task code runs). No answer.
  virtual void heartbeat(uint64_t worker) = 0;
  /// The worker is dying of a synchronous signal. No answer.
  virtual void crash_report(CrashReport report) = 0;
};

}  // namespace kappa::detail
