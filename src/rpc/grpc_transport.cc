// The gRPC transport: one bidirectional stream (Coordinator.Session) per
// worker, for workers on other machines.
//
// The job token travels as call metadata and is checked before any message
// is read, so that nothing a stranger sends is buffered or parsed. Answers
// are written by whichever thread produces them (a stream allows one reader
// and one writer at a time), while the handler's thread reads.
//
// With TLS (rpc/tls.h) the server presents the job's certificate; a worker
// given a pin accepts only that certificate (its own verifier compares the
// fingerprint, and the host name is not checked: the pin says more), one
// given an authority checks the chain and the host name as usual. A
// plaintext client of a TLS server fails in the handshake, before any
// message.
//
// Workers keep the connection alive with HTTP/2 pings: one whose coordinator
// stops answering gives up within about ten seconds instead of waiting
// forever, and one that cannot reach it at all gives up after
// ClientOptions::connect_timeout.
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>

#include "kappa.grpc.pb.h"
#include "kappa/error.h"
#include "rpc/transport.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

using Stream = grpc::ServerReaderWriter<rpc::CoordinatorMessage, rpc::WorkerMessage>;

constexpr int kKeepaliveMs = 2000;         // a ping after this much silence
constexpr int kKeepaliveTimeoutMs = 8000;  // no answer to it: the connection is dead

// Writes answers to one session's stream, from any thread, until the
// handler returns.
class StreamLink final : public MessageLink {
 public:
  explicit StreamLink(Stream* stream) : stream_(stream) {}
  void write(rpc::CoordinatorMessage& m, std::string_view reply) override {
    if (!reply.empty()) m.mutable_reply()->set_reply(std::string(reply));  // a copy: gRPC owns it
    std::lock_guard lock(mu_);
    if (stream_ && !stream_->Write(m))
      spdlog::warn("a message to a worker was lost (gRPC write failed)");
  }
  void end() {
    std::lock_guard lock(mu_);
    stream_ = nullptr;
  }

 private:
  std::mutex mu_;
  Stream* stream_;
};

std::string metadata(const grpc::ServerContext* ctx, const char* key) {
  auto range = ctx->client_metadata().equal_range(key);
  if (range.first == range.second) return {};
  return std::string(range.first->second.data(), range.first->second.size());
}

class Service final : public rpc::Coordinator::Service {
 public:
  explicit Service(ServerConfig config) : config_(std::move(config)) {}

  grpc::Status Session(grpc::ServerContext* ctx, Stream* stream) override {
    auto link = std::make_shared<StreamLink>(stream);
    grpc::Status status = grpc::Status::OK;
    {
      detail::Session session(config_, link);
      uint64_t worker = 0;
      try {
        worker = std::stoull(metadata(ctx, kWorkerMetadata));
      } catch (const std::exception&) {
      }
      if (!session.authenticate(metadata(ctx, kTokenMetadata), worker)) {
        status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad job token");
      } else {
        rpc::WorkerMessage in;
        std::string refusal;
        while (stream->Read(&in)) {
          in.clear_token();  // checked already, from the metadata
          if (!session.handle(in, &refusal)) {
            status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, refusal);
            break;
          }
        }
      }
    }
    link->end();  // no write once the handler returns
    return status;
  }

 private:
  ServerConfig config_;
};

std::shared_ptr<grpc::ServerCredentials> credentials(const ServerConfig& config) {
  if (!config.tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({config.tls->key_pem, config.tls->cert_pem});
  return grpc::SslServerCredentials(options);
}

// Accepts the coordinator's certificate only if it is the pinned one.
class PinVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PinVerifier(std::string pin) : pin_(std::move(pin)) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    std::string fingerprint;
    try {
      fingerprint = certificate_fingerprint(
          std::string(request->peer_cert().data(), request->peer_cert().size()));
    } catch (const std::exception&) {
    }
    *sync_status = fingerprint == pin_
                       ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                      "the coordinator's certificate is not the job's (its "
                                      "fingerprint is " +
                                          (fingerprint.empty() ? "unreadable" : fingerprint) + ")");
    return true;  // decided synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::string pin_;
};

std::shared_ptr<grpc::ChannelCredentials> credentials(const TlsTrust& trust) {
  if (!trust.enabled()) return grpc::InsecureChannelCredentials();
  if (trust.pin.empty()) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = trust.ca_pem;
    return grpc::SslCredentials(options);
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);  // the pin replaces the chain
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<PinVerifier>(trust.pin));
  return grpc::experimental::TlsCredentials(options);
}

class GrpcListener final : public Listener {
 public:
  GrpcListener(const std::string& listen, const ServerConfig& config) : service_(config) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, credentials(config), &port);
    builder.RegisterService(&service_);
    // Messages are read only once their session's token has been checked;
    // then up to protobuf's own limit (large values, queue items).
    builder.SetMaxReceiveMessageSize(INT_MAX);
    builder.SetMaxSendMessageSize(INT_MAX);
    // A synchronous server spends a thread on each open session.
    grpc::ResourceQuota quota("kappa-coordinator");
    quota.SetMaxThreads(int(config.max_sessions) + 8);
    builder.SetResourceQuota(quota);
    // Workers ping to notice a dead coordinator: allow it.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                               kKeepaliveMs / 2);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) throw Error("cannot listen on " + listen);
    address_ = listen.substr(0, listen.rfind(':')) + ":" + std::to_string(port);
  }
  ~GrpcListener() override { stop(); }
  const std::string& address() const override { return address_; }
  void stop() override {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_.reset();
  }

 private:
  Service service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

class GrpcChannel final : public Channel {
 public:
  GrpcChannel(const std::string& address, const std::string& token, uint64_t worker,
              const ClientOptions& options)
      : address_(address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    channel_ = grpc::CreateCustomChannel(address, credentials(options.tls), args);
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + options.connect_timeout))
      throw Error("cannot reach the coordinator at " + address + " within " +
                  std::to_string(options.connect_timeout.count() / 1000.0).substr(0, 4) + " s (" +
                  (options.tls.enabled() ? "over TLS: is this the job's coordinator?"
                                         : "plaintext: is the coordinator serving TLS?") +
                  ")");
    stub_ = rpc::Coordinator::NewStub(channel_);
    ctx_.AddMetadata(kTokenMetadata, token);
    ctx_.AddMetadata(kWorkerMetadata, std::to_string(worker));
    stream_ = stub_->Session(&ctx_);
  }
  ~GrpcChannel() override {
    {
      std::lock_guard lock(send_mu_);
      if (!closed_) stream_->WritesDone();
    }
    ctx_.TryCancel();
  }
  void send(rpc::WorkerMessage& out) override {
    std::lock_guard lock(send_mu_);
    if (!closed_ && stream_->Write(out)) return;
    throw Error("the coordinator at " + address_ + " ended the session: " + close());
  }
  void receive(rpc::CoordinatorMessage* in, const char* what, std::string_view* payload) override {
    if (payload) *payload = {};  // every byte is in the message
    if (!stream_->Read(in)) {
      std::string why;
      {
        std::lock_guard lock(send_mu_);  // no write may be under way
        why = close();
      }
      throw Error(std::string("coordinator ") + what + " failed: " + why);
    }
    if (in->body_case() == rpc::CoordinatorMessage::kRefused)
      throw Error(std::string("coordinator ") + what + " failed: " + in->refused());
  }

 private:
  // Ends the stream (send_mu_ held) and says why the coordinator ended it.
  std::string close() {
    if (!closed_) {
      closed_ = true;
      status_ = stream_->Finish();
    }
    return status_.ok() ? "the coordinator closed the session" : status_.error_message();
  }

  std::string address_;
  grpc::Status status_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<rpc::Coordinator::Stub> stub_;
  grpc::ClientContext ctx_;
  std::mutex send_mu_;
  bool closed_ = false;  // Finish() was called: no more writes
  std::unique_ptr<grpc::ClientReaderWriter<rpc::WorkerMessage, rpc::CoordinatorMessage>> stream_;
};

}  // namespace

std::unique_ptr<Listener> listen_grpc(const std::string& address, const ServerConfig& config) {
  return std::make_unique<GrpcListener>(address, config);
}

std::unique_ptr<Channel> connect_grpc(const std::string& address, const std::string& token,
                                      uint64_t worker, const ClientOptions& options) {
  return std::make_unique<GrpcChannel>(address, token, worker, options);
}

}  // namespace kappa::detail
