// The Unix-socket transport: frames (see send_frame) on a stream socket per
// worker. The coordinator runs one thread per session, blocked in recv();
// answers are written by whichever thread produces them (the coordinator's
// WorkerLink), so that a round trip costs two wake-ups. The worker reads and
// writes from the calling thread; its heartbeat thread writes too. Over gRPC the same round
// trip took about 3x as long here, with an empty or a 1 MiB request
// (bench/rpc_bench.cc).
//
// Large payloads cross through memory the worker shares with the
// coordinator (util/payload_ring.h), announced by their frames.
//
// Sessions are authenticated like gRPC's (the job token comes first); the
// abstract-namespace form (unix:@NAME) leaves no file behind after a crash.
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "kappa/error.h"
#include "rpc/transport.h"
#include "util/byte_buffer.h"
#include "util/log.h"
#include "util/payload_ring.h"
#include "util/string_for_overwrite.h"

namespace kappa::detail {
namespace {

// Protobuf's own limit on a message.
constexpr size_t kMaxFrameBytes = (size_t(1) << 31) - 1;
// Room for a 1 MiB item and its framing in the kernel, so that large messages
// cross in one write (the system caps it at net.core.wmem_max).
constexpr int kSocketBufferBytes = 4 << 20;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

sockaddr_un socket_address(const std::string& address, socklen_t* len) {
  std::string_view path = std::string_view(address).substr(5);  // after "unix:"
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path)
    throw Error("bad socket address '" + address + "' (unix:PATH or unix:@NAME, at most " +
                std::to_string(sizeof sa.sun_path - 1) + " characters)");
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  *len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size());
  return sa;
}

// Accepted sockets do not inherit the listener's buffer sizes: every
// connected socket gets them set.
void set_buffers(int fd) {
  int bytes = kSocketBufferBytes;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

int new_socket() {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(errno_text("socket"));
  set_buffers(fd);
  return fd;
}

// Writes both pieces whole; with `pass` >= 0, passes that descriptor along
// (SCM_RIGHTS, with the first bytes).
bool write_all(int fd, std::string_view a, std::string_view b, int pass = -1) {
  iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = b.empty() ? 1 : 2;
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
  while (msg.msg_iovlen > 0) {
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    msg.msg_control = nullptr;  // passed with the first bytes
    msg.msg_controllen = 0;
    for (size_t left = size_t(w); left > 0;) {  // skip what was written
      size_t n = std::min(left, msg.msg_iov->iov_len);
      msg.msg_iov->iov_base = static_cast<char*>(msg.msg_iov->iov_base) + n;
      msg.msg_iov->iov_len -= n;
      left -= n;
      if (msg.msg_iov->iov_len == 0) {
        ++msg.msg_iov;
        --msg.msg_iovlen;
      }
    }
  }
  return true;
}

// False once the other end has closed the connection (or it failed).
bool peer_alive(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  int r = poll(&p, 1, 0);
  return r == 0 || (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0);
}

// The most a worker's first frame (its token, and a request for work) may
// announce.
constexpr size_t kFirstFrameBytes = 64 << 10;

// Larger frame buffers are freed after use rather than kept.
constexpr size_t kKeepBytes = 8 << 20;

// A frame: uint32 message length, uint32 payload length, the protobuf
// message, the payload. The payload is the message's one large bytes field
// (a call's request, a task's result, a call's reply), moved out of it: sent
// straight from its string and received straight into one, which spares a
// copy of a large value at each end (serializing it, parsing it). A call's
// reply that the coordinator keeps (SharedString) is always the payload, sent
// from the coordinator's record. A payload put in the connection's shared
// ring instead (kInRing) is not in the frame; kRingRestart is claim()'s
// `restart` (PayloadRing).
constexpr size_t kHeaderBytes = 8;
constexpr size_t kPayloadMinBytes = 16 << 10;  // smaller fields stay in the message
constexpr uint32_t kInRing = uint32_t(1) << 31;
constexpr uint32_t kRingRestart = uint32_t(1) << 30;
constexpr uint32_t kRingLengthMask = kRingRestart - 1;

std::string* payload_field(rpc::WorkerMessage& m) {
  switch (m.body_case()) {
    case rpc::WorkerMessage::kCall:
      return m.mutable_call()->mutable_request();
    case rpc::WorkerMessage::kFinish:
      return m.mutable_finish()->mutable_result();
    default:
      return nullptr;
  }
}

std::string* payload_field(rpc::CoordinatorMessage& m) {
  switch (m.body_case()) {
    case rpc::CoordinatorMessage::kReply:
      return m.mutable_reply()->mutable_reply();
    case rpc::CoordinatorMessage::kAssignment:
      return m.mutable_assignment()->mutable_reply();
    default:
      return nullptr;
  }
}

void check_size(size_t n) {
  if (n > kMaxFrameBytes)
    throw Error("message of " + std::to_string(n) + " bytes exceeds the limit of " +
                std::to_string(kMaxFrameBytes) + " (a value or queue item is too large)");
}

/// Writes `m` as one frame (its payload field is borrowed, then put back;
/// or, with `external`, the payload is those bytes and the field empty).
/// A payload that fits in `ring` goes there, written after the frame is
/// sent (the receiver wakes meanwhile). `pass` as write_all's.
/// Throws kappa::Error if it is too large for one.
template <class M>
bool send_frame(int fd, M& m, std::string_view external = {}, PayloadRing* ring = nullptr,
                int pass = -1) {
  thread_local ByteBuffer out;
  std::string payload;
  std::string* field = payload_field(m);
  if (field && external.empty() && field->size() >= kPayloadMinBytes) field->swap(payload);
  struct PutBack {
    std::string* field;
    std::string& payload;
    ~PutBack() {
      if (!payload.empty()) field->swap(payload);
    }
  } put_back{field, payload};
  std::string_view sent = external.empty() ? std::string_view(payload) : external;
  size_t n = m.ByteSizeLong();
  check_size(n);
  check_size(sent.size());
  out.resize(kHeaderBytes + n);
  uint32_t lens[2] = {uint32_t(n), uint32_t(sent.size())};
  bool restart = false;
  std::optional<uint64_t> at;  // in the ring, written after the frame is sent
  if (ring && sent.size() >= kPayloadMinBytes) at = ring->claim(sent.size(), &restart);
  std::string_view in_ring;
  if (at) {
    lens[1] |= kInRing | (restart ? kRingRestart : 0);
    in_ring = std::exchange(sent, {});
  }
  std::memcpy(out.data(), lens, sizeof lens);
  m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + kHeaderBytes));
  bool ok = write_all(fd, out.view(), sent, pass);
  if (ok && at) ring->write(*at, in_ring);
  if (out.capacity() > kKeepBytes) out.release();
  return ok;
}

// The reading side of a connection (whose owner closes the socket). Several
// frames may arrive in one read (a worker's heartbeats come between its
// requests): bytes read past the current frame stay in the buffer for the
// next call.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  ~FrameReader() {
    if (passed_ >= 0) close(passed_);
  }
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  int fd() const { return fd_; }

  /// Frames announcing more than `bytes` (message and payload) are refused
  /// before anything is allocated for them.
  void set_limit(size_t bytes) { limit_ = bytes; }

  /// Payloads announced in a ring are read from `ring` (until then, such a
  /// frame is malformed).
  void set_ring(PayloadRing* ring) { ring_ = ring; }

  /// While on, the first descriptor passed with the bytes read is kept
  /// (take_passed()); others, and any passed later, are closed.
  void keep_passed(bool on) { keep_passed_ = on; }
  /// The descriptor kept (the caller closes it), or -1.
  int take_passed() { return std::exchange(passed_, -1); }

  /// Ends the view of the last payload received with a ring_view (if any):
  /// its room in the ring is free again.
  void end_view() {
    if (viewing_) ring_->release();
    viewing_ = false;
  }

  /// False at the end of the stream or on a malformed or refused frame.
  /// With `ring_view`, a payload that came through the ring stays there:
  /// `*ring_view` shows it (the field is left empty) until the next call.
  template <class M>
  bool receive_message(M* m, std::string_view* ring_view = nullptr) {
    end_view();
    uint32_t lens[2] = {0, 0};
    if (!fill(kHeaderBytes)) return false;
    std::memcpy(lens, in_.data() + pos_, sizeof lens);
    bool in_ring = (lens[1] & kInRing) != 0;
    bool restart = (lens[1] & kRingRestart) != 0;
    if (in_ring) lens[1] &= kRingLengthMask;
    if (lens[0] > kMaxFrameBytes || lens[1] > kMaxFrameBytes ||
        size_t(lens[0]) + lens[1] > limit_ || (in_ring && !ring_))
      return false;
    if (!fill(kHeaderBytes + lens[0])) return false;
    bool ok = m->ParseFromArray(in_.data() + pos_ + kHeaderBytes, int(lens[0]));
    pos_ += kHeaderBytes + lens[0];
    if (ok && lens[1] > 0) {
      std::string* field = payload_field(*m);
      ok = field && field->empty();
      // The payload may still be on its way into the ring: the wait for it
      // gives up if the sender is gone.
      auto alive = [fd = fd_] { return peer_alive(fd); };
      if (ok && in_ring && ring_view) {
        const char* at = ring_->view(lens[1], restart, alive);
        ok = at != nullptr;
        *ring_view = ok ? std::string_view(at, lens[1]) : std::string_view();
        viewing_ = ok;
      } else if (ok && in_ring) {
        *field = string_for_overwrite(lens[1]);  // take() writes every byte
        ok = ring_->take(field->data(), lens[1], restart, alive);
      } else if (ok) {  // the payload, straight into its string (past what was read already)
        size_t early = std::min<size_t>(end_ - pos_, lens[1]);
        *field = string_for_overwrite(lens[1]);  // every byte is written below
        std::memcpy(field->data(), in_.data() + pos_, early);
        pos_ += early;
        for (size_t got = early; ok && got < lens[1];) {
          ssize_t r = recv(fd_, field->data() + got, lens[1] - got, 0);
          if (r < 0 && errno == EINTR) continue;
          ok = r > 0;
          got += ok ? size_t(r) : 0;
        }
      }
    }
    if (pos_ == end_) {
      pos_ = end_ = 0;
      if (in_.capacity() > kKeepBytes) in_.release();
    }
    return ok;
  }

 private:
  // Makes the buffer hold at least `n` unread bytes. False at the end of
  // the stream, on an error, or when the receive timeout expires.
  bool fill(size_t n) {
    if (end_ - pos_ >= n) return true;
    if (pos_ > 0) {  // move the unread bytes to the front
      std::memmove(in_.data(), in_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    in_.resize(end_);  // what reserve() keeps
    in_.reserve(std::max(n, kReadChunk));
    while (end_ < n) {
      ssize_t r = read_some(in_.data() + end_, in_.capacity() - end_);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      end_ += size_t(r);
    }
    return true;
  }

  // recv(), catching descriptors passed along while keep_passed_ is on (a
  // plain recv() closes them: the kernel drops what it cannot deliver).
  ssize_t read_some(char* to, size_t n) {
    if (!keep_passed_) return recv(fd_, to, n, 0);
    iovec iov{to, n};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) return r;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        if (passed_ < 0)
          passed_ = passed;
        else
          close(passed);
      }
    }
    return r;
  }

  static constexpr size_t kReadChunk = 64 << 10;
  int fd_;
  size_t limit_ = SIZE_MAX;
  PayloadRing* ring_ = nullptr;
  bool viewing_ = false;  // a payload in ring_ is viewed (receive_message's ring_view)
  bool keep_passed_ = false;
  int passed_ = -1;
  ByteBuffer in_;
  size_t pos_ = 0, end_ = 0;  // the unread bytes: in_[pos_, end_)
};

// The coordinator's side of a connection. Its session thread reads; answers
// come from whichever thread produces them (WorkerLink). Writes take turns,
// and none happens once the session has ended (the descriptor may be reused).
class Connection final : public MessageLink {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  /// Sends payloads through `area`'s ring to the worker from now on.
  void use_area(std::unique_ptr<PayloadArea> area) {
    std::lock_guard lock(mu_);
    area_ = std::move(area);
  }
  void write(rpc::CoordinatorMessage& m, std::string_view reply) override {
    send_message(m, reply);
  }
  /// Sends one frame (`reply`: its payload, kept by the caller); on failure
  /// (or an oversized message) ends the session, so that the worker does not
  /// wait for an answer forever.
  bool send_message(rpc::CoordinatorMessage& m, std::string_view reply = {}) {
    std::lock_guard lock(mu_);
    if (!open_) return false;
    std::string why;
    bool ok = false;
    try {
      ok = send_frame(fd_, m, reply, area_ ? &area_->to_worker() : nullptr);
      if (!ok) why = std::strerror(errno);
    } catch (const std::exception& e) {  // too large, or out of memory
      why = e.what();
    }
    if (!ok) {
      spdlog::warn("a message to a worker was lost ({}): its session ends", why);
      shutdown(fd_, SHUT_RDWR);  // the session's reader sees the end
    }
    return ok;
  }
  void end() {
    std::lock_guard lock(mu_);
    open_ = false;
  }

 private:
  const int fd_;
  std::mutex mu_;
  bool open_ = true;
  std::unique_ptr<PayloadArea> area_;  // the worker's shared area, once mapped
};

void set_receive_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = t.count() / 1000;
  tv.tv_usec = (t.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// After a refusal: the client may still be sending (its next request), and
// closing at once would fail its write before it has read why it was
// refused. The write side is shut (the client reads the refusal, then the
// end), and what it sends is read and dropped until it closes, for at most a
// second.
void linger(int fd) {
  shutdown(fd, SHUT_WR);
  set_receive_timeout(fd, std::chrono::milliseconds(100));
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < until) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
  }
}

class SocketListener final : public Listener {
 public:
  SocketListener(const std::string& address, const ServerConfig& config)
      : config_(config), address_(address) {
    socklen_t len;
    sockaddr_un sa = socket_address(address, &len);
    fd_ = new_socket();
    if (sa.sun_path[0] != '\0') unlink(sa.sun_path);  // a socket file left by a crash
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd_, 128) != 0) {
      std::string why = errno_text(("cannot listen on " + address).c_str());
      close(fd_);
      throw Error(why);
    }
    if (sa.sun_path[0] != '\0') path_ = sa.sun_path;
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~SocketListener() override { stop(); }
  const std::string& address() const override { return address_; }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      for (int fd : open_) shutdown(fd, SHUT_RDWR);  // ends their reads
    }
    shutdown(fd_, SHUT_RDWR);  // ends accept()
    accept_thread_.join();
    close(fd_);
    if (!path_.empty()) unlink(path_.c_str());
    std::unique_lock lock(mu_);
    ended_.wait(lock, [&] { return open_.empty(); });
  }

 private:
  void accept_loop() {
    for (;;) {
      int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      int error = errno;
      std::unique_lock lock(mu_);
      if (stopped_) {
        if (fd >= 0) close(fd);
        return;
      }
      if (fd < 0) {
        if (error == EMFILE || error == ENFILE) {  // out of descriptors: wait for some
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        if (error == EINTR || error == ECONNABORTED) continue;
        return;
      }
      // Bounded: a flood of connections (with or without the token) costs
      // at most max_sessions threads, of which max_unauthenticated wait for
      // a token, each for auth_timeout at most.
      if (open_.size() >= config_.max_sessions || unauthenticated_ >= config_.max_unauthenticated) {
        close(fd);
        if (refused_++ % 1000 == 0)
          spdlog::warn("refused a connection: {} sessions, {} without a token yet (limits {}, {})",
                       open_.size(), unauthenticated_, config_.max_sessions,
                       config_.max_unauthenticated);
        continue;
      }
      set_buffers(fd);
      set_receive_timeout(fd, config_.auth_timeout);
      open_.push_back(fd);
      ++unauthenticated_;
      try {
        std::thread([this, fd] { serve(fd); }).detach();  // stop() waits for open_ to empty
      } catch (const std::system_error&) {  // no thread for it: the worker sees the session end
        open_.pop_back();
        --unauthenticated_;
        close(fd);
      }
    }
  }

  void authenticated() {
    std::lock_guard lock(mu_);
    --unauthenticated_;
  }

  void serve(int fd) {
    auto conn = std::make_shared<Connection>(fd);
    bool counted = true;  // among the unauthenticated
    {
      Session session(config_, conn);
      FrameReader reader(fd);
      // Until the token has been checked, a frame may not make the
      // coordinator allocate much, nor the session last long.
      reader.set_limit(kFirstFrameBytes);
      reader.keep_passed(true);  // the worker's payload area comes with its first frame
      rpc::WorkerMessage in;
      std::string refusal;
      auto refuse = [&] {
        rpc::CoordinatorMessage m;
        m.set_refused(refusal);
        conn->send_message(m);
        linger(fd);
      };
      try {
        while (reader.receive_message(&in)) {
          if (!session.handle(in, &refusal)) {
            refuse();
            break;
          }
          if (counted) {
            counted = false;
            authenticated();
            reader.set_limit(SIZE_MAX);
            set_receive_timeout(fd, std::chrono::milliseconds(0));
            reader.keep_passed(false);
            if (int passed = reader.take_passed(); passed >= 0) {
              try {
                std::unique_ptr<PayloadArea> area = PayloadArea::map(passed);
                reader.set_ring(&area->to_coordinator());
                conn->use_area(std::move(area));
              } catch (const Error& e) {
                refusal = e.what();
                refuse();
                break;
              }
            }
          }
        }
      } catch (const std::exception& e) {  // out of memory, say: this session ends
        spdlog::warn("a worker's session failed: {}", e.what());
      }
    }             // the session has ended: the service is told
    conn->end();  // a late answer writes nothing
    std::lock_guard lock(mu_);
    if (counted) --unauthenticated_;
    std::erase(open_, fd);
    close(fd);  // under the lock: stop() never shuts down a reused number
    ended_.notify_all();
  }

  ServerConfig config_;
  std::string address_, path_;
  int fd_ = -1;
  std::thread accept_thread_;
  std::mutex mu_;
  bool stopped_ = false;
  std::condition_variable ended_;
  std::vector<int> open_;  // connections being served, one detached thread each
  size_t unauthenticated_ = 0;
  uint64_t refused_ = 0;
};

class SocketChannel final : public Channel {
 public:
  explicit SocketChannel(const std::string& address)
      : address_(address), reader_(connect_to()), area_(PayloadArea::create()) {
    if (area_) reader_.set_ring(&area_->to_worker());
  }
  ~SocketChannel() override { close(reader_.fd()); }

  void send(rpc::WorkerMessage& out) override {
    // A request comes after its caller has read the last answer (whose view
    // ends now rather than at the next receive(), so that the coordinator
    // finds the ring empty and puts the next answer at its start, in pages
    // in use already). Heartbeats, from another thread, leave it.
    if (out.has_next() || out.has_call() || out.has_finish()) reader_.end_view();
    std::lock_guard lock(send_mu_);
    // The shared area goes with the first frame (the token's).
    int pass = area_ && !area_passed_ ? area_->fd() : -1;
    if (!send_frame(reader_.fd(), out, {}, area_ ? &area_->to_coordinator() : nullptr, pass))
      throw Error("the coordinator at " + address_ + " closed the session");
    area_passed_ = true;
  }

  void receive(rpc::CoordinatorMessage* in, const char* what, std::string_view* payload) override {
    auto fail = [&](const std::string& why) {
      throw Error(std::string("coordinator ") + what + " failed: " + why);
    };
    if (payload) *payload = {};
    if (!reader_.receive_message(in, payload)) fail("the coordinator closed the session");
    if (in->body_case() == rpc::CoordinatorMessage::kRefused) fail(in->refused());
  }

 private:
  // The coordinator may still be starting: retry for a few seconds.
  int connect_to() {
    socklen_t len;
    sockaddr_un sa = socket_address(address_, &len);
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      int fd = new_socket();
      if (connect(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0) return fd;
      bool not_yet = errno == ECONNREFUSED || errno == ENOENT || errno == EAGAIN;
      std::string why = errno_text(("cannot connect to the coordinator at " + address_).c_str());
      close(fd);
      if (!not_yet || std::chrono::steady_clock::now() > give_up) throw Error(why);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string address_;
  std::mutex send_mu_;
  FrameReader reader_;
  std::unique_ptr<PayloadArea> area_;  // null: payloads travel on the socket
  bool area_passed_ = false;
};

}  // namespace

std::unique_ptr<Listener> listen_socket(const std::string& address, const ServerConfig& config) {
  return std::make_unique<SocketListener>(address, config);
}

std::unique_ptr<Channel> connect_socket(const std::string& address) {
  return std::make_unique<SocketChannel>(address);
}

}  // namespace kappa::detail
