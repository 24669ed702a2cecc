// CoordinatorClient: a worker's connection to the coordinator, over the
// transport its address names (see server.h).
//
// Thread safety: next(), call() and finish() from one thread (the worker's
// loop), heartbeat() and crash_report() from one other (its liveness thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/messages.h"

namespace kappa::detail {

class Channel;

class CoordinatorClient {
 public:
  /// Connects and authenticates. Throws kappa::Error when the coordinator
  /// cannot be reached (after retrying for a while).
  CoordinatorClient(const std::string& address, std::string token, uint64_t worker_id);
  ~CoordinatorClient();

  // Requests: each returns the coordinator's answer. They throw kappa::Error
  // when the coordinator is gone or refuses the session.
  Assignment next();
  CallOutcome call(CallInfo info);
  /// Reports the end of the task and returns the worker's next assignment.
  Assignment finish(const FinishInfo& info);
  /// Reports the end of the task without asking for more work: the worker
  /// is leaving (its platform is about to end it).
  void finish_last(const FinishInfo& info);

  // Unanswered messages. They throw kappa::Error when the coordinator is gone.
  void heartbeat();
  void crash_report(uint64_t task_id, int signal, std::string backtrace);

 private:
  std::unique_ptr<Channel> channel_;
  uint64_t worker_id_;
  struct Messages;
  std::unique_ptr<Messages> m_;  // the request thread's, reused
};

}  // namespace kappa::detail
