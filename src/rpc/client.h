// CoordinatorClient: a worker's connection to the coordinator, over the
// transport its address names (see server.h).
//
// Thread safety: next(), call() and finish() from one thread (the worker's
// loop), heartbeat() and crash_report() from one other (its liveness thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/messages.h"
#include "rpc/tls.h"

namespace kappa::detail {

class Channel;

struct ClientOptions {
  /// gRPC: how to check the coordinator (rpc/tls.h); none: plaintext.
  TlsTrust tls;
  /// gRPC: how long to keep trying to connect.
  std::chrono::milliseconds connect_timeout{30000};
};

class CoordinatorClient {
 public:
  /// Connects and authenticates. Throws kappa::Error when the coordinator
  /// cannot be reached (after retrying for options.connect_timeout), or is
  /// not the one trusted.
  CoordinatorClient(const std::string& address, std::string token, uint64_t worker_id,
                    const ClientOptions& options = {});
  ~CoordinatorClient();

  // Requests: each returns the coordinator's answer. They throw kappa::Error
  // when the coordinator is gone or refuses the session.
  Assignment next();
  /// With `shared_reply`: a reply the transport received into memory it
  /// shares with the coordinator (a large one, from a local coordinator)
  /// may be left there, not copied. `*shared_reply` then shows it, valid
  /// until the next request, and the outcome's reply is empty; else
  /// `*shared_reply` is empty.
  CallOutcome call(CallInfo info, std::string_view* shared_reply = nullptr);
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
  struct Messages;
  std::unique_ptr<Messages> m_;  // the request thread's, reused
};

}  // namespace kappa::detail
