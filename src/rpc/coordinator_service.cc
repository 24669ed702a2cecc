#include "rpc/coordinator_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "kappa.grpc.pb.h"

namespace kappa::detail {
namespace {

void to_proto(AssignmentInfo a, rpc::Assignment* out) {
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
}

class Service final : public rpc::Coordinator::Service {
 public:
  Service(Coordinator* c, std::string token, bool report_closed_sessions)
      : c_(c), token_(std::move(token)), report_closed_sessions_(report_closed_sessions) {}

  // One worker's session: strictly alternating request and reply.
  grpc::Status Session(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<rpc::CoordinatorMessage, rpc::WorkerMessage>* stream) override {
    rpc::WorkerMessage in;
    if (!stream->Read(&in)) return grpc::Status::OK;
    if (in.token() != token_)
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad job token");
    const uint64_t worker = in.worker_id();
    do {
      rpc::CoordinatorMessage out;
      switch (in.body_case()) {
        case rpc::WorkerMessage::kNext:
          to_proto(c_->next(worker), out.mutable_assignment());
          break;
        case rpc::WorkerMessage::kCall: {
          const rpc::CallRequest& req = in.call();
          CallInfo info{worker,          req.task_id(), req.seqno(),
                        req.image_key(), Op(req.op()),  req.request()};
          CallOutcome o = c_->call(info);
          rpc::CallReply* rep = out.mutable_reply();
          rep->set_kind(static_cast<rpc::CallReply::Kind>(o.kind));
          rep->set_reply(std::move(o.reply));
          rep->set_error(o.error);
          break;
        }
        case rpc::WorkerMessage::kFinish: {
          const rpc::FinishRequest& req = in.finish();
          c_->finish(worker, req.task_id(), req.failed(), req.result(), req.error());
          if (req.and_next())
            to_proto(c_->next(worker), out.mutable_assignment());
          else
            out.mutable_finished();
          break;
        }
        default:
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty message");
      }
      if (!stream->Write(out)) break;
    } while (stream->Read(&in));
    // The session is over: whatever the worker was running restarts
    // elsewhere. Backends that watch their workers report deaths themselves,
    // with the cause (a signal, an exit status); this is for those that can't.
    if (report_closed_sessions_)
      c_->worker_exited(worker, "its session with the coordinator closed");
    return grpc::Status::OK;
  }

 private:
  Coordinator* c_;
  std::string token_;
  bool report_closed_sessions_;
};

}  // namespace

struct CoordinatorServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
};

CoordinatorServer::CoordinatorServer(Coordinator* coordinator, const std::string& listen,
                                     std::string token, bool report_closed_sessions)
    : impl_(std::make_unique<Impl>()) {
  impl_->service = std::make_unique<Service>(coordinator, std::move(token), report_closed_sessions);
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
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<rpc::WorkerMessage, rpc::CoordinatorMessage>> stream;
  std::string token;
  uint64_t worker_id;
  bool first = true;

  rpc::CoordinatorMessage exchange(rpc::WorkerMessage& msg, const char* what) {
    if (first) {
      msg.set_token(token);
      msg.set_worker_id(worker_id);
      first = false;
    }
    rpc::CoordinatorMessage reply;
    if (!stream->Write(msg) || !stream->Read(&reply)) {
      grpc::Status st = stream->Finish();
      throw Error(std::string("coordinator ") + what + " failed: " +
                  (st.ok() ? "the coordinator closed the session" : st.error_message()));
    }
    return reply;
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
  impl_->ctx.set_wait_for_ready(true);  // no deadline: the session lasts as long as the worker
  impl_->stream = impl_->stub->Session(&impl_->ctx);
}

CoordinatorClient::~CoordinatorClient() {
  if (impl_->stream) {
    impl_->stream->WritesDone();
    impl_->ctx.TryCancel();
  }
}

namespace {
AssignmentInfo from_proto(const rpc::Assignment& rep) {
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
}  // namespace

AssignmentInfo CoordinatorClient::next() {
  rpc::WorkerMessage msg;
  msg.mutable_next();
  return from_proto(impl_->exchange(msg, "Next").assignment());
}

CallOutcome CoordinatorClient::call(const CallInfo& info) {
  rpc::WorkerMessage msg;
  rpc::CallRequest* req = msg.mutable_call();
  req->set_task_id(info.task_id);
  req->set_seqno(info.seqno);
  req->set_image_key(info.image_key);
  req->set_op(uint32_t(info.op));
  req->set_request(info.request);
  rpc::CoordinatorMessage reply = impl_->exchange(msg, "Call");
  const rpc::CallReply& rep = reply.reply();
  return {static_cast<CallOutcome::Kind>(rep.kind()), rep.reply(), rep.error()};
}

AssignmentInfo CoordinatorClient::finish(uint64_t task_id, bool failed, const std::string& result,
                                         const std::string& error) {
  rpc::WorkerMessage msg;
  rpc::FinishRequest* req = msg.mutable_finish();
  req->set_task_id(task_id);
  req->set_failed(failed);
  req->set_result(result);
  req->set_error(error);
  req->set_and_next(true);
  return from_proto(impl_->exchange(msg, "Finish").assignment());
}

}  // namespace kappa::detail
