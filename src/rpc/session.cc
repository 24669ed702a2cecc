#include <openssl/crypto.h>

#include "rpc/transport.h"

namespace kappa::detail {

bool is_socket_address(std::string_view address) { return address.starts_with("unix:"); }

void to_proto(Assignment a, rpc::CoordinatorMessage* m) {
  rpc::Assignment* out = m->mutable_assignment();
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

void MessageLink::send(Assignment a) {
  rpc::CoordinatorMessage m;
  to_proto(std::move(a), &m);
  write(m);
}

void MessageLink::send(CallOutcome o) {
  rpc::CoordinatorMessage m;
  rpc::CallReply* out = m.mutable_reply();
  out->set_kind(static_cast<rpc::CallReply::Kind>(o.kind));
  out->set_error(std::move(o.error));
  write(m, o.reply);  // shared with the coordinator's record: not copied here
}

void MessageLink::send_finished() {
  rpc::CoordinatorMessage m;
  m.mutable_finished();
  write(m);
}

bool Session::authenticate(std::string_view token, uint64_t worker) {
  const std::string& want = config_.token;
  // Constant time: how much of a guess matches must not show in the timing.
  if (token.size() != want.size() || CRYPTO_memcmp(token.data(), want.data(), want.size()) != 0)
    return false;
  authenticated_ = true;
  worker_ = worker;
  config_.service->connect(worker_, link_);
  return true;
}

bool Session::handle(rpc::WorkerMessage& in, std::string* refusal) {
  WorkerService& service = *config_.service;
  if (!authenticated_ && !authenticate(in.token(), in.worker_id())) {
    *refusal = "bad job token";
    return false;
  }
  switch (in.body_case()) {
    case rpc::WorkerMessage::kHello:
      return true;
    case rpc::WorkerMessage::kHeartbeat:
      service.heartbeat(worker_);
      return true;
    case rpc::WorkerMessage::kCrash: {
      rpc::CrashReport& r = *in.mutable_crash();
      service.crash_report(
          CrashReport{worker_, r.task_id(), r.signal(), std::move(*r.mutable_backtrace())});
      return true;
    }
    case rpc::WorkerMessage::kNext:
      service.next(worker_);
      return true;
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
      info.image_bytes = req.image_bytes();
      info.capture_us = req.capture_us();
      info.write_us = req.write_us();
      service.call(std::move(info));
      return true;
    }
    case rpc::WorkerMessage::kFinish: {
      rpc::FinishRequest& req = *in.mutable_finish();
      service.finish(FinishInfo{worker_, req.task_id(), req.seqno(), req.failed(),
                                std::move(*req.mutable_result()), std::move(*req.mutable_error()),
                                req.and_next()});
      return true;
    }
    default:
      *refusal = "a message with no request";
      return false;
  }
}

Session::~Session() {
  // Whatever the worker was running restarts elsewhere. Backends that watch
  // their workers report deaths themselves, with the cause (a signal, an exit
  // status); report_closed_sessions is for those that can't.
  if (authenticated_) config_.service->disconnect(worker_, config_.report_closed_sessions);
}

}  // namespace kappa::detail
