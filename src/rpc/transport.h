// The two transports of the worker <-> coordinator protocol (kappa.proto):
// gRPC for workers on other machines, length-prefixed frames on a Unix socket
// for local ones. Both carry the same messages and share the coordinator's
// side of a session (Session); CoordinatorServer and CoordinatorClient pick
// one from the address.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "coordinator/coordinator.h"
#include "kappa.pb.h"

namespace kappa::detail {

/// True for the addresses of the Unix-socket transport: "unix:PATH" or
/// "unix:@NAME" (Linux's abstract namespace: no file to clean up).
bool is_socket_address(std::string_view address);

/// What every session of one server shares.
struct SessionConfig {
  Coordinator* coordinator = nullptr;
  std::string token;
  /// A session that ends counts as its worker's death (for backends that
  /// cannot watch their workers' processes).
  bool report_closed_sessions = false;
};

/// The coordinator's side of one worker's session: answers each message in
/// turn. The first message must carry the job token.
class Session {
 public:
  /// Sends a message to this session's worker from any thread.
  using Answer = std::function<void(rpc::CoordinatorMessage&)>;
  /// With `answer`, a call that blocks is answered later from another thread
  /// (Coordinator::call's hook): handle() says kDeferred and returns at once.
  explicit Session(const SessionConfig& config, Answer answer = {})
      : config_(config), answer_(std::move(answer)) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  enum class Verdict {
    kReply,     // send `out`
    kDeferred,  // the answer goes through `answer`: send nothing now
    kUnauthenticated,
    kMalformed,
  };
  /// Applies `in` (its fields may be moved from) and fills `out`. On
  /// kUnauthenticated or kMalformed the session must end after sending
  /// `out`, which then holds `refused`.
  Verdict handle(rpc::WorkerMessage& in, rpc::CoordinatorMessage* out);

 private:
  const SessionConfig& config_;
  Answer answer_;
  bool authenticated_ = false;
  uint64_t worker_ = 0;
};

/// A worker's end of a session: one request, then its reply.
class Channel {
 public:
  virtual ~Channel() = default;
  /// Throws kappa::Error when the coordinator cannot be reached or ends the
  /// session; `what` names the request in that message. `out` may be
  /// changed meanwhile, but is as it was when this returns.
  virtual void exchange(rpc::WorkerMessage& out, rpc::CoordinatorMessage* in, const char* what) = 0;
};

/// A running server of one transport.
class Listener {
 public:
  virtual ~Listener() = default;
  /// The address workers connect to.
  virtual const std::string& address() const = 0;
  /// Stops accepting and ends every session. Idempotent.
  virtual void stop() = 0;
};

std::unique_ptr<Listener> listen_grpc(const std::string& address, const SessionConfig& config);
std::unique_ptr<Channel> connect_grpc(const std::string& address);
std::unique_ptr<Listener> listen_socket(const std::string& address, const SessionConfig& config);
std::unique_ptr<Channel> connect_socket(const std::string& address);

}  // namespace kappa::detail
