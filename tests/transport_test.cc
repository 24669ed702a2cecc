// Both transports of the worker <-> coordinator protocol (rpc/transport.h),
// each with a real Coordinator behind it: the same messages must come through
// either, and both must refuse a session without the job's token.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "coordinator/coordinator.h"
#include "kappa.pb.h"
#include "kappa/detail/calls.h"
#include "kappa/serialize.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "rpc/tls.h"
#include "util/hex.h"
#include "util/payload_ring.h"

namespace kappa::detail {
namespace {

using namespace std::chrono_literals;

class Transport : public ::testing::TestWithParam<std::string> {
 protected:
  Transport() : coordinator(options(), nullptr) {}
  static JobStateOptions options() {
    JobStateOptions o;
    o.grace = std::chrono::milliseconds(0);
    o.idle_poll = std::chrono::milliseconds(0);
    o.tracing = true;  // the trace shows what calls carried
    return o;
  }
  ServerOptions server_options(bool report_closed_sessions = false) const {
    ServerOptions so;
    so.listen = listen();
    so.token = "secret";
    so.report_closed_sessions = report_closed_sessions;
    if (GetParam() == "grpc_tls") so.tls = identity();
    return so;
  }
  // The job's self-signed certificate (grpc_tls), made once per test.
  const TlsIdentity& identity() const {
    if (!identity_) identity_ = make_self_signed({"127.0.0.1"});
    return *identity_;
  }
  ClientOptions client_options() const {
    ClientOptions o;
    if (GetParam() == "grpc_tls") o.tls.pin = certificate_fingerprint(identity().cert_pem);
    return o;
  }
  // A fresh address of the transport under test.
  std::string listen() const {
    return GetParam() == "socket" ? "unix:@kappa-transport-test-" + random_hex(6) : "127.0.0.1:0";
  }
  Coordinator coordinator;
  mutable std::optional<TlsIdentity> identity_;
};

TEST_P(Transport, CarriesAssignmentsCallsAndFinishes) {
  SpawnSpec root;
  root.fn = 0x1000;
  root.trampoline = 0x2000;
  root.name = "root";
  root.args.push_back({0, encode(std::string("event"))});
  coordinator.spawn_root(root);
  CoordinatorServer server(&coordinator, server_options());
  CoordinatorClient client(server.address(), "secret", 7, client_options());

  Assignment a = client.next();
  ASSERT_EQ(a.kind, Assignment::Kind::kStart);
  EXPECT_EQ(a.task_id, 1u);
  EXPECT_EQ(a.fn, 0x1000u);
  EXPECT_EQ(a.name, "root");
  ASSERT_EQ(a.args.size(), 1u);
  EXPECT_EQ(decode<std::string>(a.args[0]), "event");

  // A large request and an inline image make the trip whole.
  std::string item(3 << 20, '\0');
  for (size_t i = 0; i < item.size(); ++i) item[i] = char(i * 2654435761u >> 24);
  // What the checkpoint cost the worker comes along.
  auto queue = client.call(CallInfo{.task_id = 1,
                                    .seqno = 0,
                                    .image = "img-0",
                                    .op = Op::kMakeQueue,
                                    .request = encode(uint64_t{1}),
                                    .image_bytes = 123456789012,
                                    .capture_us = 67,
                                    .write_us = 89});
  ASSERT_EQ(queue.kind, CallOutcome::Kind::kResult);
  uint64_t q = decode<uint64_t>(queue.reply);
  auto enq = client.call(CallInfo{.task_id = 1,
                                  .seqno = 1,
                                  .image = "img-1",
                                  .op = Op::kEnqueue,
                                  .request = enqueue_request(q, item)});
  ASSERT_EQ(enq.kind, CallOutcome::Kind::kResult) << enq.error;
  auto deq = client.call(CallInfo{
      .task_id = 1, .seqno = 2, .image = "img-2", .op = Op::kDequeue, .request = encode(q)});
  ASSERT_EQ(deq.kind, CallOutcome::Kind::kResult);
  EXPECT_TRUE(decode<std::string>(deq.reply) == item);

  JobStats stats = coordinator.stats();
  EXPECT_EQ(stats.checkpoints, 3u);
  EXPECT_EQ(stats.checkpoint_bytes, 123456789012u + 5 + 5);  // the others: their inline images
  EXPECT_EQ(stats.calls_by_op[size_t(Op::kEnqueue)], 1u);

  std::string result(1 << 20, 'r');  // a large result, too
  Assignment after = client.finish(FinishInfo{7, 1, 3, false, encode(result), ""});
  EXPECT_EQ(after.kind, Assignment::Kind::kIdle);  // nothing else to run
  JobOutcome job = coordinator.wait_job(std::chrono::milliseconds(1000));
  ASSERT_TRUE(job.done);
  EXPECT_FALSE(job.failed);
  EXPECT_TRUE(decode<std::string>(job.result) == result);
  // The checkpoint's costs, in the trace once its invocation has ended.
  std::string trace_path =
      std::filesystem::temp_directory_path() / ("kappa-transport-trace-" + random_hex(6) + ".json");
  coordinator.write_trace(trace_path);
  std::ifstream trace_file(trace_path);
  nlohmann::json trace = nlohmann::json::parse(trace_file);
  std::filesystem::remove(trace_path);
  bool seen = false;
  for (const nlohmann::json& e : trace.at("traceEvents")) {
    if (e.at("name") != "checkpoint capture" || e["args"]["op"] != "make_queue") continue;
    seen = true;
    EXPECT_EQ(e["args"]["bytes"], 123456789012u);
    EXPECT_EQ(e["args"]["capture_us"], 67u);
    EXPECT_EQ(e["args"]["write_us"], 89u);
  }
  EXPECT_TRUE(seen) << trace.dump();
  coordinator.shutdown();
}

// A worker whose platform is about to end it (a Lambda invocation, a Slurm
// job) reports its finish without asking for more (finish_last): the answer
// is that the report arrived, and the coordinator hands it nothing.
TEST_P(Transport, AFinishCanAskForNothingMore) {
  SpawnSpec root;
  root.fn = 0x1000;
  root.trampoline = 0x2000;
  root.name = "root";
  coordinator.spawn_root(root);
  CoordinatorServer server(&coordinator, server_options());
  CoordinatorClient client(server.address(), "secret", 7, client_options());
  ASSERT_EQ(client.next().kind, Assignment::Kind::kStart);
  client.finish_last(FinishInfo{7, 1, 0, false, encode(1), ""});
  JobOutcome job = coordinator.wait_job(std::chrono::milliseconds(1000));
  ASSERT_TRUE(job.done);
  EXPECT_EQ(decode<int>(job.result), 1);
  coordinator.shutdown();
}

TEST_P(Transport, AParkedTaskIsRelaunchedWithALargeResult) {
  SpawnSpec root;
  root.fn = 0x1000;
  coordinator.spawn_root(root);
  CoordinatorServer server(&coordinator, server_options());
  CoordinatorClient producer(server.address(), "secret", 7, client_options());
  CoordinatorClient consumer(server.address(), "secret", 8, client_options());
  ASSERT_EQ(producer.next().task_id, 1u);
  uint64_t q = decode<uint64_t>(
      producer
          .call(CallInfo{
              .task_id = 1, .seqno = 0, .op = Op::kMakeQueue, .request = encode(uint64_t{1})})
          .reply);
  SpawnSpec child;
  child.fn = 0x1000;
  producer.call(CallInfo{.task_id = 1,
                         .seqno = 1,
                         .op = Op::kSpawn,
                         .request = encode(std::vector<SpawnSpec>{child})});
  ASSERT_EQ(consumer.next().task_id, 2u);
  // Nothing to dequeue: with no grace period the consumer is parked.
  CallOutcome parked = consumer.call(
      CallInfo{.task_id = 2, .seqno = 0, .image = "img", .op = Op::kDequeue, .request = encode(q)});
  ASSERT_EQ(parked.kind, CallOutcome::Kind::kPark);
  std::string item(2 << 20, 'q');
  ASSERT_EQ(
      producer
          .call(CallInfo{
              .task_id = 1, .seqno = 2, .op = Op::kEnqueue, .request = enqueue_request(q, item)})
          .kind,
      CallOutcome::Kind::kResult);
  Assignment resumed = consumer.next();
  ASSERT_EQ(resumed.kind, Assignment::Kind::kResume);
  EXPECT_EQ(resumed.task_id, 2u);
  EXPECT_EQ(resumed.image, "img");
  EXPECT_TRUE(decode<std::string>(resumed.reply) == item);
  coordinator.shutdown();
}

// Items of every size go to the coordinator (enqueue) and back (dequeue):
// over the socket, those from 16 KiB up to the shared ring's size cross it,
// and larger ones the socket, with every byte intact. A reply left in the
// ring (call()'s shared_reply) is read from there.
TEST_P(Transport, ItemsOfEverySizeCrossBothWaysIntact) {
  SpawnSpec root;
  root.fn = 0x1000;
  coordinator.spawn_root(root);
  CoordinatorServer server(&coordinator, server_options());
  CoordinatorClient client(server.address(), "secret", 7, client_options());
  ASSERT_EQ(client.next().task_id, 1u);
  uint64_t seqno = 0;
  uint64_t q = decode<uint64_t>(
      client
          .call(CallInfo{
              .task_id = 1, .seqno = seqno++, .op = Op::kMakeQueue, .request = encode(uint64_t{1})})
          .reply);
  constexpr size_t kRing = PayloadArea::kRingBytes;
  std::vector<size_t> sizes = {100,     16 << 10,  (16 << 10) + 1,   100 << 10,
                               1 << 20, 4 << 20,   5 << 20,          kRing - 16,
                               kRing,   kRing + 1, kRing + (1 << 20)};
  for (int i = 0; i < 12; ++i) sizes.push_back(size_t(700 + 300 * i) << 10);  // laps
  bool socket = GetParam() == "socket";
  size_t shared_replies = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string item(sizes[i], '\0');
    for (size_t b = 0; b < item.size(); b += 64) item[b] = char(b / 64 * 31 + i);
    ASSERT_EQ(client
                  .call(CallInfo{.task_id = 1,
                                 .seqno = seqno++,
                                 .op = Op::kEnqueue,
                                 .request = enqueue_request(q, item)})
                  .kind,
              CallOutcome::Kind::kResult);
    std::string_view shared;
    bool view = i % 3 != 2;  // some replies copied out as before
    CallOutcome o = client.call(
        CallInfo{.task_id = 1, .seqno = seqno++, .op = Op::kDequeue, .request = encode(q)},
        view ? &shared : nullptr);
    ASSERT_EQ(o.kind, CallOutcome::Kind::kResult) << o.error;
    std::string_view reply = shared.empty() ? std::string_view(o.reply) : shared;
    ASSERT_TRUE(decode<std::string>(reply) == item) << "item " << i << " of " << sizes[i];
    // The reply (the item and its 8-byte length) is left in the ring when it fits.
    size_t reply_bytes = sizes[i] + 8;
    bool in_ring = socket && view && reply_bytes >= (16 << 10) && reply_bytes <= kRing;
    EXPECT_EQ(!shared.empty(), in_ring) << "item " << i << " of " << sizes[i];
    shared_replies += !shared.empty();
  }
  if (socket) EXPECT_GE(shared_replies, 10u);
  coordinator.shutdown();
}

TEST_P(Transport, RefusesASessionWithoutTheToken) {
  coordinator.spawn_root(SpawnSpec{});
  CoordinatorServer server(&coordinator, server_options());
  try {
    CoordinatorClient client(server.address(), "guess", 7, client_options());
    client.next();
    FAIL() << "a session with the wrong token was served";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad job token"), std::string::npos) << e.what();
  }
  EXPECT_EQ(coordinator.stats().running, 0u);  // nothing was handed out
  coordinator.shutdown();
}

TEST_P(Transport, AClosedSessionCountsAsTheWorkersDeath) {
  coordinator.spawn_root(SpawnSpec{});
  CoordinatorServer server(&coordinator, server_options(/*report_closed_sessions=*/true));
  {
    CoordinatorClient client(server.address(), "secret", 7, client_options());
    ASSERT_EQ(client.next().kind, Assignment::Kind::kStart);
  }  // the worker goes away holding the task
  for (int i = 0; i < 200 && coordinator.stats().total_deaths() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(coordinator.stats().total_deaths(), 1u);
  EXPECT_EQ(coordinator.stats().ready, 1u);  // to be run again
  coordinator.shutdown();
}

// A raw connection to a socket coordinator's abstract address.
int connect_raw(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path + 1, name.data(), name.size());
  socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), len), 0);
  timeval wait{5, 0};  // fail, rather than hang, if the coordinator never answers
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  return fd;
}

// A coordinator with a task to hand out, served on a fresh abstract socket
// (unix:@NAME) to workers with the token "secret"; `tune` may change the
// server's options.
struct SocketServer {
  explicit SocketServer(const std::function<void(ServerOptions&)>& tune = {})
      : server(&coordinator, [&] {
          ServerOptions so{.listen = "unix:@" + name, .token = "secret"};
          if (tune) tune(so);
          return so;
        }()) {
    coordinator.spawn_root(SpawnSpec{});
  }
  ~SocketServer() { coordinator.shutdown(); }
  Coordinator coordinator{JobStateOptions{}, nullptr};
  std::string name = "kappa-transport-test-" + random_hex(6);
  CoordinatorServer server;
};

// Before the token has been checked, a frame announcing a large message is
// refused without the coordinator allocating it, and others are served on.
TEST(SocketTransport, AHugeFirstFrameIsRefused) {
  SocketServer s;
  int fd = connect_raw(s.name);        // times out, rather than hangs, if the coordinator waits
  uint32_t header[2] = {1u << 30, 0};  // a 1 GiB message
  ASSERT_EQ(send(fd, header, sizeof header, MSG_NOSIGNAL), ssize_t(sizeof header));
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "the session was not ended";
  close(fd);
  CoordinatorClient client(s.server.address(), "secret", 7);
  EXPECT_EQ(client.next().kind, Assignment::Kind::kStart);
}

// Connections that never send the token cost a thread each only for a
// while, and only so many at once: the rest are closed on arrival.
TEST(SocketTransport, ConnectionsWithoutATokenAreBoundedInNumberAndTime) {
  SocketServer s([](ServerOptions& so) {
    so.max_unauthenticated = 8;
    so.auth_timeout = std::chrono::milliseconds(300);
  });
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) fds.push_back(connect_raw(s.name));
  // Every one of them ends: most at once, the 8 served after the deadline.
  auto start = std::chrono::steady_clock::now();
  for (int fd : fds) {
    char byte;
    EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "a silent connection was kept open";
    close(fd);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  // A worker with the token is served.
  CoordinatorClient client(s.server.address(), "secret", 7);
  EXPECT_EQ(client.next().kind, Assignment::Kind::kStart);
}

// The first frame of a worker: a Hello with the token "secret" (kappa.proto's
// WorkerMessage, encoded by hand), passing `pass` along if >= 0.
void send_hello(int fd, int pass) {
  const char bytes[] = "\x0a\x06secret\x10\x07\x32\x00";
  std::string hello(bytes, sizeof bytes - 1);
  uint32_t header[2] = {uint32_t(hello.size()), 0};
  std::string frame(reinterpret_cast<const char*>(header), sizeof header);
  frame += hello;
  iovec iov{frame.data(), frame.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass, sizeof pass);
  }
  ASSERT_EQ(sendmsg(fd, &msg, MSG_NOSIGNAL), ssize_t(frame.size()));
}

// Everything the coordinator sends until it ends the session.
std::string read_to_end(int fd) {
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, size_t(n));
  return got;
}

// A payload announced in a shared area the worker never passed: the frame is
// malformed, and the session ends.
TEST(SocketTransport, APayloadInAnAreaThatWasNeverPassedEndsTheSession) {
  SocketServer s;
  int fd = connect_raw(s.name);
  send_hello(fd, -1);
  uint32_t header[2] = {0, (1u << 31) | 100};  // an empty message, 100 bytes in the ring
  ASSERT_EQ(send(fd, header, sizeof header, MSG_NOSIGNAL), ssize_t(sizeof header));
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "the session was not ended";
  close(fd);
  CoordinatorClient client(s.server.address(), "secret", 7);  // others are served on
  EXPECT_EQ(client.next().kind, Assignment::Kind::kStart);
}

// A shared area the worker could shrink under the coordinator (whose reads
// would then fault) is refused, and the worker told why.
TEST(SocketTransport, AnAreaNotSealedAgainstShrinkingIsRefused) {
  SocketServer s;
  int area = memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(area, 0);
  ASSERT_EQ(ftruncate(area, off_t(4096 + 2 * PayloadArea::kRingBytes)), 0);  // the right size
  int fd = connect_raw(s.name);
  send_hello(fd, area);
  close(area);
  std::string answer = read_to_end(fd);
  EXPECT_NE(answer.find("not sealed against shrinking"), std::string::npos) << answer;
  close(fd);
  EXPECT_EQ(s.coordinator.stats().running, 0u);  // nothing was handed to it
}

// A payload's bytes follow its frame into the ring: a worker that dies
// between the two leaves the coordinator waiting for them only until it
// notices the connection closed. Its session then ends (the server stops
// promptly).
TEST(SocketTransport, ASessionWaitingForAPayloadEndsWhenItsWorkerDies) {
  SocketServer s;
  std::unique_ptr<PayloadArea> area = PayloadArea::create();
  ASSERT_NE(area, nullptr);
  int fd = connect_raw(s.name);
  send_hello(fd, area->fd());
  rpc::WorkerMessage m;
  rpc::CallRequest* call = m.mutable_call();
  call->set_task_id(1);
  call->set_seqno(1);
  call->set_op(uint32_t(Op::kEnqueue));
  std::string frame(8, '\0'), body = m.SerializeAsString();
  uint32_t header[2] = {uint32_t(body.size()), (1u << 31) | (1u << 30) | (1u << 20)};  // 1 MiB
  std::memcpy(frame.data(), header, sizeof header);
  frame += body;
  ASSERT_EQ(send(fd, frame.data(), frame.size(), MSG_NOSIGNAL), ssize_t(frame.size()));
  std::this_thread::sleep_for(100ms);  // the session waits: spins, then sleeps on the futex
  close(fd);                           // and the bytes never come
  auto stopped = std::async(std::launch::async, [&] { s.server.stop(); });
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready) << "the session still waits";
}

TEST(SocketTransport, NamesAnUnreachableCoordinator) {
  try {
    CoordinatorClient client("unix:/etc/hostname/kappa.sock", "t", 1);
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/etc/hostname/kappa.sock"), std::string::npos)
        << e.what();
  }
}

// Over TLS, a worker talks only to the job's coordinator: one without TLS, or
// expecting another certificate, is refused before any message, and the
// coordinator hands nothing out to it. With the user's own certificate, a
// worker checks the chain against the given authority.
TEST(GrpcTls, APlaintextOrWrongCertificateClientIsRefused) {
  Coordinator coordinator(JobStateOptions{}, nullptr);
  coordinator.spawn_root(SpawnSpec{});
  TlsIdentity job = make_self_signed({"127.0.0.1"});
  TlsIdentity other = make_self_signed({"127.0.0.1"});
  ASSERT_NE(certificate_fingerprint(job.cert_pem), certificate_fingerprint(other.cert_pem));
  CoordinatorServer server(&coordinator,
                           ServerOptions{.listen = "127.0.0.1:0", .token = "secret", .tls = job});
  auto refused = [&](TlsTrust trust) {
    try {
      CoordinatorClient client(server.address(), "secret", 7,
                               ClientOptions{.tls = trust, .connect_timeout = 2s});
      client.next();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("served");
  };
  EXPECT_NE(refused({}).find("plaintext: is the coordinator serving TLS?"), std::string::npos);
  EXPECT_NE(refused({.pin = certificate_fingerprint(other.cert_pem)})
                .find("over TLS: is this the job's coordinator?"),
            std::string::npos);
  EXPECT_NE(refused({.ca_pem = other.cert_pem}).find("cannot reach"), std::string::npos);
  EXPECT_EQ(coordinator.stats().running, 0u);  // nothing was handed out

  CoordinatorClient pinned(server.address(), "secret", 7,
                           ClientOptions{.tls = {.pin = certificate_fingerprint(job.cert_pem)}});
  EXPECT_EQ(pinned.next().kind, Assignment::Kind::kStart);
  // The certificate as an authority: its name (127.0.0.1) must match too.
  CoordinatorClient by_ca(server.address(), "secret", 8,
                          ClientOptions{.tls = {.ca_pem = job.cert_pem}});
  EXPECT_EQ(by_ca.next().kind, Assignment::Kind::kIdle);
  coordinator.shutdown();
}

TEST(GrpcTls, AFingerprintIsOfTheCertificateAlone) {
  TlsIdentity id = make_self_signed({"10.1.2.3", "coordinator.example"});  // IP and DNS names
  std::string fp = certificate_fingerprint(id.cert_pem);
  EXPECT_EQ(fp.size(), 64u);
  EXPECT_EQ(fp, certificate_fingerprint(id.cert_pem + "trailing text"));
  EXPECT_NE(id.key_pem.find("PRIVATE KEY"), std::string::npos);
  try {
    certificate_fingerprint("not a certificate");
    FAIL() << "a fingerprint of nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a PEM certificate"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(All, Transport, ::testing::Values("socket", "grpc", "grpc_tls"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kappa::detail
