// The coordinator's endpoint, and the worker's client of it. The address
// picks the transport (rpc/transport.h): "unix:PATH" or "unix:@NAME" for the
// Unix-socket transport (local workers), "host:port" for gRPC.
#pragma once

#include <memory>
#include <string>

#include "coordinator/coordinator.h"

namespace kappa::detail {

class Listener;
class Channel;

/// Serves `coordinator` on `listen` ("127.0.0.1:0" picks a port). Every
/// session must start with `token`. With report_closed_sessions, a session
/// that ends counts as its worker's death (for backends that cannot watch
/// their workers' processes).
class CoordinatorServer {
 public:
  CoordinatorServer(Coordinator* coordinator, const std::string& listen, std::string token,
                    bool report_closed_sessions = false);
  ~CoordinatorServer();
  /// The address workers connect to ("127.0.0.1:PORT", "unix:@NAME", ...).
  const std::string& address() const;
  void stop();

 private:
  std::unique_ptr<Listener> listener_;
};

/// A worker's connection to the coordinator. Methods throw kappa::Error when
/// the coordinator cannot be reached (after retrying for a few seconds). One
/// thread at a time.
class CoordinatorClient {
 public:
  CoordinatorClient(const std::string& address, std::string token, uint64_t worker_id);
  ~CoordinatorClient();
  AssignmentInfo next();
  CallOutcome call(CallInfo info);
  /// Reports the end of the task and returns the worker's next assignment.
  AssignmentInfo finish(uint64_t task_id, bool failed, const std::string& result,
                        const std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kappa::detail
