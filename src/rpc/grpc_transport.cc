// The gRPC transport: one bidirectional stream (Coordinator.Session) per
// worker, for workers on other machines.
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "kappa.grpc.pb.h"
#include "rpc/transport.h"

namespace kappa::detail {
namespace {

class Service final : public rpc::Coordinator::Service {
 public:
  explicit Service(SessionConfig config) : config_(std::move(config)) {}

  grpc::Status Session(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<rpc::CoordinatorMessage, rpc::WorkerMessage>* stream) override {
    detail::Session session(config_);
    rpc::WorkerMessage in;
    rpc::CoordinatorMessage out;
    while (stream->Read(&in)) {
      out.Clear();
      switch (session.handle(in, &out)) {
        case Session::Verdict::kReply:
          break;
        case Session::Verdict::kDeferred:  // never: this session gives no Answer
          continue;
        case Session::Verdict::kUnauthenticated:
          return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, out.refused());
        case Session::Verdict::kMalformed:
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, out.refused());
      }
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

 private:
  SessionConfig config_;
};

class GrpcListener final : public Listener {
 public:
  GrpcListener(const std::string& listen, const SessionConfig& config) : service_(config) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(-1);
    builder.SetMaxSendMessageSize(-1);
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
  explicit GrpcChannel(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    stub_ = rpc::Coordinator::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    ctx_.set_wait_for_ready(true);  // no deadline: the session lasts as long as the worker
    stream_ = stub_->Session(&ctx_);
  }
  ~GrpcChannel() override {
    stream_->WritesDone();
    ctx_.TryCancel();
  }
  void exchange(rpc::WorkerMessage& out, rpc::CoordinatorMessage* in, const char* what) override {
    if (!stream_->Write(out) || !stream_->Read(in)) {
      grpc::Status st = stream_->Finish();
      throw Error(std::string("coordinator ") + what + " failed: " +
                  (st.ok() ? "the coordinator closed the session" : st.error_message()));
    }
  }

 private:
  std::unique_ptr<rpc::Coordinator::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<rpc::WorkerMessage, rpc::CoordinatorMessage>> stream_;
};

}  // namespace

std::unique_ptr<Listener> listen_grpc(const std::string& address, const SessionConfig& config) {
  return std::make_unique<GrpcListener>(address, config);
}

std::unique_ptr<Channel> connect_grpc(const std::string& address) {
  return std::make_unique<GrpcChannel>(address);
}

}  // namespace kappa::detail
