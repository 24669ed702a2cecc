#include "rpc/coordinator_service.h"

#include "rpc/transport.h"

namespace kappa::detail {

CoordinatorServer::CoordinatorServer(Coordinator* coordinator, const std::string& listen,
                                     std::string token, bool report_closed_sessions) {
  SessionConfig config{coordinator, std::move(token), report_closed_sessions};
  listener_ =
      is_socket_address(listen) ? listen_socket(listen, config) : listen_grpc(listen, config);
}

CoordinatorServer::~CoordinatorServer() { stop(); }

const std::string& CoordinatorServer::address() const { return listener_->address(); }

void CoordinatorServer::stop() { listener_->stop(); }

struct CoordinatorClient::Impl {
  std::unique_ptr<Channel> channel;
  std::string token;
  uint64_t worker_id;
  bool first = true;
  rpc::WorkerMessage out;
  rpc::CoordinatorMessage in;

  // Sends `out` (then cleared) and returns the reply, valid until the next.
  rpc::CoordinatorMessage& exchange(const char* what) {
    if (first) {
      out.set_token(token);
      out.set_worker_id(worker_id);
      first = false;
    }
    in.Clear();
    channel->exchange(out, &in, what);
    out.Clear();
    return in;
  }
};

CoordinatorClient::CoordinatorClient(const std::string& address, std::string token,
                                     uint64_t worker_id)
    : impl_(std::make_unique<Impl>()) {
  impl_->channel = is_socket_address(address) ? connect_socket(address) : connect_grpc(address);
  impl_->token = std::move(token);
  impl_->worker_id = worker_id;
}

CoordinatorClient::~CoordinatorClient() = default;

namespace {
AssignmentInfo from_proto(rpc::Assignment& rep) {
  AssignmentInfo a;
  a.kind = static_cast<AssignmentInfo::Kind>(rep.kind());
  a.task_id = rep.task_id();
  a.fn = rep.fn();
  a.trampoline = rep.trampoline();
  for (std::string& arg : *rep.mutable_args()) a.args.push_back(std::move(arg));
  a.image_key = std::move(*rep.mutable_image_key());
  a.image = std::move(*rep.mutable_image());
  a.seqno = rep.seqno();
  a.reply = std::move(*rep.mutable_reply());
  a.error = std::move(*rep.mutable_error());
  a.time_left = rep.time_left();
  a.name = std::move(*rep.mutable_name());
  return a;
}
}  // namespace

AssignmentInfo CoordinatorClient::next() {
  impl_->out.mutable_next();
  return from_proto(*impl_->exchange("Next").mutable_assignment());
}

CallOutcome CoordinatorClient::call(CallInfo info) {
  rpc::CallRequest* req = impl_->out.mutable_call();
  req->set_task_id(info.task_id);
  req->set_seqno(info.seqno);
  req->set_image_key(std::move(info.image_key));
  req->set_image(std::move(info.image));
  req->set_op(uint32_t(info.op));
  req->set_request(std::move(info.request));
  rpc::CallReply& rep = *impl_->exchange("Call").mutable_reply();
  return {static_cast<CallOutcome::Kind>(rep.kind()), std::move(*rep.mutable_reply()),
          std::move(*rep.mutable_error())};
}

AssignmentInfo CoordinatorClient::finish(uint64_t task_id, bool failed, const std::string& result,
                                         const std::string& error) {
  rpc::FinishRequest* req = impl_->out.mutable_finish();
  req->set_task_id(task_id);
  req->set_failed(failed);
  req->set_result(result);
  req->set_error(error);
  req->set_and_next(true);
  return from_proto(*impl_->exchange("Finish").mutable_assignment());
}

}  // namespace kappa::detail
