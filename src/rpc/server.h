// CoordinatorServer: serves a WorkerService (the coordinator) to workers.
// The address picks the transport: "unix:PATH" or "unix:@NAME" for the
// Unix-socket transport (local workers), "host:port" for gRPC.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "protocol/worker_service.h"
#include "rpc/tls.h"

namespace kappa::detail {

class Listener;

struct ServerOptions {
  std::string listen;  // where to listen ("127.0.0.1:0" picks a port)
  std::string token;   // every session must start with it
  /// A session that ends counts as its worker's death (for backends that
  /// cannot watch their workers' processes).
  bool report_closed_sessions = false;
  size_t max_sessions = 1024;  // sessions at once; more connections are refused
  // Unix socket: connections that have not sent the token yet, at most this
  // many at once, each for at most auth_timeout (gRPC checks the token,
  // which travels as metadata, before reading anything).
  size_t max_unauthenticated = 64;
  std::chrono::milliseconds auth_timeout{5000};
  /// gRPC: TLS with this certificate (see rpc/tls.h); unset: plaintext.
  /// Ignored by the Unix-socket transport, which never leaves the machine.
  std::optional<TlsIdentity> tls;
};

class CoordinatorServer {
 public:
  /// Throws kappa::Error if it cannot listen there.
  CoordinatorServer(WorkerService* service, const ServerOptions& options);
  ~CoordinatorServer();
  /// The address workers connect to ("127.0.0.1:PORT", "unix:@NAME", ...).
  const std::string& address() const;
  /// Stops accepting and ends every session. Idempotent.
  void stop();

 private:
  std::unique_ptr<Listener> listener_;
};

}  // namespace kappa::detail
