// The two transports of the worker <-> coordinator protocol (kappa.proto):
// gRPC for workers on other machines, length-prefixed frames on a Unix socket
// for local ones. Both carry the same messages and share the coordinator's
// side of a session (Session) and the worker's (CoordinatorClient, over a
// Channel); server.h and client.h pick one from the address.
//
// Internal to the rpc layer.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kappa.pb.h"
#include "protocol/worker_service.h"
#include "rpc/client.h"
#include "rpc/tls.h"

namespace kappa::detail {

/// True for the addresses of the Unix-socket transport: "unix:PATH" or
/// "unix:@NAME" (Linux's abstract namespace: no file to clean up).
bool is_socket_address(std::string_view address);

/// What every session of one server shares.
struct ServerConfig {
  WorkerService* service = nullptr;
  std::string token;
  /// A session that ends counts as its worker's death (for backends that
  /// cannot watch their workers' processes).
  bool report_closed_sessions = false;
  /// Sessions served at once; more connections are refused.
  size_t max_sessions = 1024;
  /// Of which not yet authenticated (they have auth_timeout to send the
  /// token, and their first frame may announce at most 64 KiB).
  size_t max_unauthenticated = 64;
  std::chrono::milliseconds auth_timeout{5000};
  /// gRPC: serve over TLS with this certificate (else plaintext).
  std::optional<TlsIdentity> tls;
};

/// The coordinator's side of one worker's session. Answers go out through
/// the transport's WorkerLink, from whichever thread produces them.
class Session {
 public:
  Session(const ServerConfig& config, std::shared_ptr<WorkerLink> link)
      : config_(config), link_(std::move(link)) {}
  /// Tells the service the session ended (a death, with
  /// report_closed_sessions).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Checks the job token (in constant time) and connects the worker.
  bool authenticate(std::string_view token, uint64_t worker);
  bool authenticated() const { return authenticated_; }

  /// Applies one message (its fields may be moved from). False: the
  /// session must end, after sending `refusal` to the worker.
  bool handle(rpc::WorkerMessage& in, std::string* refusal);

 private:
  const ServerConfig& config_;
  std::shared_ptr<WorkerLink> link_;
  bool authenticated_ = false;
  uint64_t worker_ = 0;
};

/// Wire forms of the coordinator's answers.
void to_proto(Assignment a, rpc::CoordinatorMessage* out);

/// A WorkerLink that sends every answer as one CoordinatorMessage.
class MessageLink : public WorkerLink {
 public:
  void send(Assignment a) final;
  void send(CallOutcome o) final;
  void send_finished() final;

 protected:
  /// Sends `m` to the worker, from any thread (never two at once for one
  /// link: implementations serialize). `reply`: the bytes of m's call reply
  /// when the caller keeps them elsewhere (the field is empty then), sent as
  /// that field; the socket transport sends them from where they lie.
  virtual void write(rpc::CoordinatorMessage& m, std::string_view reply = {}) = 0;
};

/// A worker's end of a session. send() may be called from two threads (the
/// worker's requests and its heartbeats); receive() from one.
class Channel {
 public:
  virtual ~Channel() = default;
  /// Throws kappa::Error when the coordinator is gone. `out` may be changed
  /// meanwhile, but is as it was when this returns.
  virtual void send(rpc::WorkerMessage& out) = 0;
  /// The next answer. Throws kappa::Error when the coordinator is gone or
  /// refuses the session; `what` names the request in that message. With
  /// `payload`, the answer's large bytes field may be left empty and its
  /// bytes shown there instead, where the transport received them (not
  /// copied), until the next request is sent or receive() is called; else
  /// `*payload` is empty.
  virtual void receive(rpc::CoordinatorMessage* in, const char* what,
                       std::string_view* payload) = 0;
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

/// gRPC call metadata carrying the session's credentials.
inline constexpr const char* kTokenMetadata = "kappa-token";
inline constexpr const char* kWorkerMetadata = "kappa-worker";

std::unique_ptr<Listener> listen_grpc(const std::string& address, const ServerConfig& config);
std::unique_ptr<Channel> connect_grpc(const std::string& address, const std::string& token,
                                      uint64_t worker, const ClientOptions& options);
std::unique_ptr<Listener> listen_socket(const std::string& address, const ServerConfig& config);
std::unique_ptr<Channel> connect_socket(const std::string& address);

}  // namespace kappa::detail
