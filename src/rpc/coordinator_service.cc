#include "rpc/coordinator_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "kappa.grpc.pb.h"

namespace kappa::detail {
namespace {

grpc::Status unauthenticated() {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad job token");
}

class Service final : public rpc::Coordinator::Service {
 public:
  Service(Coordinator* c, std::string token) : c_(c), token_(std::move(token)) {}

  grpc::Status Next(grpc::ServerContext*, const rpc::NextRequest* req,
                    rpc::Assignment* out) override {
    if (req->token() != token_) return unauthenticated();
    AssignmentInfo a = c_->next(req->worker_id());
    out->set_kind(static_cast<rpc::Assignment::Kind>(a.kind));
    out->set_task_id(a.task_id);
    out->set_fn(a.fn);
    out->set_trampoline(a.trampoline);
    for (std::string& arg : a.args) out->add_args(std::move(arg));
    out->set_image_key(a.image_key);
    out->set_seqno(a.seqno);
    out->set_reply(std::move(a.reply));
    out->set_error(a.error);
    out->set_time_left(a.time_left);
    out->set_name(a.name);
    return grpc::Status::OK;
  }

  grpc::Status Call(grpc::ServerContext*, const rpc::CallRequest* req,
                    rpc::CallReply* out) override {
    if (req->token() != token_) return unauthenticated();
    CallInfo info{req->worker_id(), req->task_id(), req->seqno(),
                  req->image_key(), Op(req->op()),  req->request()};
    CallOutcome o = c_->call(info);
    out->set_kind(static_cast<rpc::CallReply::Kind>(o.kind));
    out->set_reply(std::move(o.reply));
    out->set_error(o.error);
    return grpc::Status::OK;
  }

  grpc::Status Finish(grpc::ServerContext*, const rpc::FinishRequest* req,
                      rpc::FinishReply*) override {
    if (req->token() != token_) return unauthenticated();
    c_->finish(req->worker_id(), req->task_id(), req->failed(), req->result(), req->error());
    return grpc::Status::OK;
  }

 private:
  Coordinator* c_;
  std::string token_;
};

}  // namespace

struct CoordinatorServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
};

CoordinatorServer::CoordinatorServer(Coordinator* coordinator, const std::string& listen,
                                     std::string token)
    : impl_(std::make_unique<Impl>()) {
  impl_->service = std::make_unique<Service>(coordinator, std::move(token));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(impl_->service.get());
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || port == 0) throw Error("cannot listen on " + listen);
  address_ = listen.substr(0, listen.rfind(':')) + ":" + std::to_string(port);
}

CoordinatorServer::~CoordinatorServer() { stop(); }

void CoordinatorServer::stop() {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    impl_->server.reset();
  }
}

struct CoordinatorClient::Impl {
  std::unique_ptr<rpc::Coordinator::Stub> stub;
  std::string token;
  uint64_t worker_id;

  // Retries UNAVAILABLE for up to ~5 s: the coordinator may be starting.
  template <class Req, class Rep, class Fn>
  void invoke(const char* what, const Req& req, Rep* rep, Fn fn) {
    grpc::Status st;
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      st = (stub.get()->*fn)(&ctx, req, rep);
      if (st.ok()) return;
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw Error(std::string("coordinator ") + what + " failed: " + st.error_message());
  }
};

CoordinatorClient::CoordinatorClient(const std::string& address, std::string token,
                                     uint64_t worker_id)
    : impl_(std::make_unique<Impl>()) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  impl_->stub = rpc::Coordinator::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  impl_->token = std::move(token);
  impl_->worker_id = worker_id;
}

CoordinatorClient::~CoordinatorClient() = default;

AssignmentInfo CoordinatorClient::next() {
  rpc::NextRequest req;
  req.set_token(impl_->token);
  req.set_worker_id(impl_->worker_id);
  rpc::Assignment rep;
  impl_->invoke("Next", req, &rep, &rpc::Coordinator::Stub::Next);
  AssignmentInfo a;
  a.kind = static_cast<AssignmentInfo::Kind>(rep.kind());
  a.task_id = rep.task_id();
  a.fn = rep.fn();
  a.trampoline = rep.trampoline();
  a.args.assign(rep.args().begin(), rep.args().end());
  a.image_key = rep.image_key();
  a.seqno = rep.seqno();
  a.reply = rep.reply();
  a.error = rep.error();
  a.time_left = rep.time_left();
  a.name = rep.name();
  return a;
}

CallOutcome CoordinatorClient::call(const CallInfo& info) {
  rpc::CallRequest req;
  req.set_token(impl_->token);
  req.set_worker_id(impl_->worker_id);
  req.set_task_id(info.task_id);
  req.set_seqno(info.seqno);
  req.set_image_key(info.image_key);
  req.set_op(uint32_t(info.op));
  req.set_request(info.request);
  rpc::CallReply rep;
  impl_->invoke("Call", req, &rep, &rpc::Coordinator::Stub::Call);
  return {static_cast<CallOutcome::Kind>(rep.kind()), rep.reply(), rep.error()};
}

void CoordinatorClient::finish(uint64_t task_id, uint64_t seqno, bool failed,
                               const std::string& result, const std::string& error) {
  rpc::FinishRequest req;
  req.set_token(impl_->token);
  req.set_worker_id(impl_->worker_id);
  req.set_task_id(task_id);
  req.set_seqno(seqno);
  req.set_failed(failed);
  req.set_result(result);
  req.set_error(error);
  rpc::FinishReply rep;
  impl_->invoke("Finish", req, &rep, &rpc::Coordinator::Stub::Finish);
}

}  // namespace kappa::detail
