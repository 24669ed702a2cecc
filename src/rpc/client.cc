#include "rpc/client.h"

#include "rpc/transport.h"

namespace kappa::detail {

struct CoordinatorClient::Messages {
  rpc::WorkerMessage out;
  rpc::CoordinatorMessage in;
};

CoordinatorClient::CoordinatorClient(const std::string& address, std::string token,
                                     uint64_t worker_id, const ClientOptions& options)
    : m_(std::make_unique<Messages>()) {
  channel_ = is_socket_address(address) ? connect_socket(address)
                                        : connect_grpc(address, token, worker_id, options);
  rpc::WorkerMessage hello;
  hello.set_token(std::move(token));
  hello.set_worker_id(worker_id);
  hello.mutable_hello();
  channel_->send(hello);
}

CoordinatorClient::~CoordinatorClient() = default;

namespace {

Assignment from_proto(rpc::Assignment& rep) {
  Assignment a;
  a.kind = static_cast<Assignment::Kind>(rep.kind());
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

// The answer must be of the expected kind: anything else is a protocol error.
template <class Has>
void expect(const rpc::CoordinatorMessage& in, Has has, const char* what) {
  if (!(in.*has)()) throw Error(std::string("coordinator ") + what + ": unexpected answer");
}

void fill_finish(rpc::FinishRequest* req, const FinishInfo& info, bool and_next) {
  req->set_task_id(info.task_id);
  req->set_seqno(info.seqno);
  req->set_failed(info.failed);
  req->set_result(info.result);
  req->set_error(info.error);
  req->set_and_next(and_next);
}
}  // namespace

Assignment CoordinatorClient::next() {
  m_->out.Clear();
  m_->out.mutable_next();
  channel_->send(m_->out);
  m_->in.Clear();
  channel_->receive(&m_->in, "Next", nullptr);
  expect(m_->in, &rpc::CoordinatorMessage::has_assignment, "Next");
  return from_proto(*m_->in.mutable_assignment());
}

CallOutcome CoordinatorClient::call(CallInfo info, std::string_view* shared_reply) {
  m_->out.Clear();
  rpc::CallRequest* req = m_->out.mutable_call();
  req->set_task_id(info.task_id);
  req->set_seqno(info.seqno);
  req->set_image_key(std::move(info.image_key));
  req->set_image(std::move(info.image));
  req->set_op(uint32_t(info.op));
  req->set_request(std::move(info.request));
  req->set_image_bytes(info.image_bytes);
  req->set_capture_us(info.capture_us);
  req->set_write_us(info.write_us);
  channel_->send(m_->out);
  m_->out.Clear();  // frees the request now: it may be large
  m_->in.Clear();
  channel_->receive(&m_->in, "Call", shared_reply);
  expect(m_->in, &rpc::CoordinatorMessage::has_reply, "Call");
  rpc::CallReply& rep = *m_->in.mutable_reply();
  return {static_cast<CallOutcome::Kind>(rep.kind()), std::move(*rep.mutable_reply()),
          std::move(*rep.mutable_error())};
}

Assignment CoordinatorClient::finish(const FinishInfo& info) {
  m_->out.Clear();
  fill_finish(m_->out.mutable_finish(), info, true);
  channel_->send(m_->out);
  m_->out.Clear();
  m_->in.Clear();
  channel_->receive(&m_->in, "Finish", nullptr);
  expect(m_->in, &rpc::CoordinatorMessage::has_assignment, "Finish");
  return from_proto(*m_->in.mutable_assignment());
}

void CoordinatorClient::finish_last(const FinishInfo& info) {
  m_->out.Clear();
  fill_finish(m_->out.mutable_finish(), info, false);
  channel_->send(m_->out);
  m_->out.Clear();
  m_->in.Clear();
  channel_->receive(&m_->in, "Finish", nullptr);
  expect(m_->in, &rpc::CoordinatorMessage::has_finished, "Finish");
}

void CoordinatorClient::heartbeat() {
  rpc::WorkerMessage m;
  m.mutable_heartbeat();
  channel_->send(m);
}

void CoordinatorClient::crash_report(uint64_t task_id, int signal, std::string backtrace) {
  rpc::WorkerMessage m;
  rpc::CrashReport* r = m.mutable_crash();
  r->set_task_id(task_id);
  r->set_signal(signal);
  r->set_backtrace(std::move(backtrace));
  channel_->send(m);
}

}  // namespace kappa::detail
