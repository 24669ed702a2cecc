#include "rpc/transport.h"

namespace kappa::detail {

bool is_socket_address(std::string_view address) { return address.starts_with("unix:"); }

namespace {

void to_proto(AssignmentInfo a, rpc::Assignment* out) {
  out->set_kind(static_cast<rpc::Assignment::Kind>(a.kind));
  out->set_task_id(a.task_id);
  out->set_fn(a.fn);
  out->set_trampoline(a.trampoline);
  for (std::string& arg : a.args) out->add_args(std::move(arg));
  out->set_image_key(std::move(a.image_key));
  out->set_image(std::move(a.image));
  out->set_seqno(a.seqno);
  out->set_reply(std::move(a.reply));
  out->set_error(std::move(a.error));
  out->set_time_left(a.time_left);
  out->set_name(std::move(a.name));
}

void to_proto(CallOutcome o, rpc::CallReply* out) {
  out->set_kind(static_cast<rpc::CallReply::Kind>(o.kind));
  out->set_reply(std::move(o.reply));
  out->set_error(std::move(o.error));
}

}  // namespace

Session::Verdict Session::handle(rpc::WorkerMessage& in, rpc::CoordinatorMessage* out) {
  Coordinator* c = config_.coordinator;
  if (!authenticated_) {
    if (in.token() != config_.token) {
      out->set_refused("bad job token");
      return Verdict::kUnauthenticated;
    }
    authenticated_ = true;
    worker_ = in.worker_id();
  }
  switch (in.body_case()) {
    case rpc::WorkerMessage::kNext:
      to_proto(c->next(worker_), out->mutable_assignment());
      return Verdict::kReply;
    case rpc::WorkerMessage::kCall: {
      rpc::CallRequest& req = *in.mutable_call();
      CallInfo info;
      info.worker_id = worker_;
      info.task_id = req.task_id();
      info.seqno = req.seqno();
      info.image_key = std::move(*req.mutable_image_key());
      info.image = std::move(*req.mutable_image());
      info.op = Op(req.op());
      info.request = std::move(*req.mutable_request());
      ReplyHook hook;
      if (answer_)
        hook = [answer = answer_](CallOutcome o) {
          rpc::CoordinatorMessage m;
          to_proto(std::move(o), m.mutable_reply());
          answer(m);
        };
      CallOutcome o = c->call(std::move(info), std::move(hook));
      if (o.kind == CallOutcome::Kind::kPending) return Verdict::kDeferred;
      to_proto(std::move(o), out->mutable_reply());
      return Verdict::kReply;
    }
    case rpc::WorkerMessage::kFinish: {
      rpc::FinishRequest& req = *in.mutable_finish();
      c->finish(worker_, req.task_id(), req.failed(), std::move(*req.mutable_result()),
                std::move(*req.mutable_error()));
      if (req.and_next())
        to_proto(c->next(worker_), out->mutable_assignment());
      else
        out->mutable_finished();
      return Verdict::kReply;
    }
    default:
      out->set_refused("a message with no request");
      return Verdict::kMalformed;
  }
}

Session::~Session() {
  // Whatever the worker was running restarts elsewhere. Backends that watch
  // their workers report deaths themselves, with the cause (a signal, an exit
  // status); this is for those that can't.
  if (authenticated_ && config_.report_closed_sessions)
    config_.coordinator->worker_exited(worker_, "its session with the coordinator closed");
}

}  // namespace kappa::detail
