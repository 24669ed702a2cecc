// Checkpoint store latency: times writes and reads of values of given sizes
// through any store URL, one operation at a time, and prints every sample as
// JSON lines for bench/store_bench.py to summarize. Each size starts with a
// write and a read that are not timed (connections, first faults).
//
//   kappa_store_bench --store URL [--with-raw] [--stream PIECE [--data-stream]]
//                     [--sizes 4096,1048576]
//                     [--reps 10] [--writes-only] [--s3-multipart-threshold BYTES]
//   -> {"size": 4096, "target": "store", "op": "write", "seconds": [0.0011, ...]}
//      {"size": 4096, "target": "store", "op": "read", "seconds": [...]}
//
// The store: put(), and get_checked() with the image header's size and a
// check that accepts anything, as workers read images. Each value comes back
// in a new string, as from the store's API.
//
// --with-raw: also the same operations without the store layer ("target":
// "raw"), the least a client can do on its own (a lower bound for the store),
// in turn with the store's, operation by operation, so that both meet the
// same moments of a busy machine:
// - file://DIR: write() of the bytes to a temporary file and rename() over
//   the key's file, no fsync (as the store), in DIR/raw; read() of the whole
//   file;
// - redis://HOST:PORT: SET sent from the caller's bytes with one sendmsg, GET
//   received up to the reply's last byte, on a connection of its own.
// Raw reads land in one buffer reused from one read to the next (no
// allocation, no page to fault in). The raw S3 baseline is curl
// (bench/store_bench.py runs it).
//
// --stream PIECE: also the same store's streams ("target": "stream"), in
// turn with its put and get: put_stream written in pieces of PIECE bytes,
// and open_value read in ranges of PIECE bytes into one reused buffer.
// --data-stream: also a data store's streams ("target": "data-stream"), the
// same through open_store(URL, {.shared = true}): a checkpoint store and a
// data store may lay streams out differently (redis://: in pieces, or one
// string).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kappa/error.h"
#include "runtime/checkpoint_image.h"
#include "runtime/runtime.h"
#include "stores/checkpoint_store.h"
#include "stores/s3_store.h"

namespace {

using Clock = std::chrono::steady_clock;
using kappa::Error;

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(n);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = rng();
    std::memcpy(s.data() + i, &r, std::min<size_t>(8, n - i));
  }
  return s;
}

[[noreturn]] void fail(const std::string& what) { throw Error(what + ": " + std::strerror(errno)); }

// What is timed: writes of a value, and reads of it (checked after each, untimed).
class Target {
 public:
  virtual ~Target() = default;
  /// "store" or "raw": what the output calls it, and its keys' prefix.
  virtual std::string name() const = 0;
  virtual void write(const std::string& key, std::string_view value) = 0;
  /// Reads `key`, which holds `size` bytes.
  virtual void read(const std::string& key, size_t size) = 0;
  /// Whether the last read returned `value` (checked after the clock stops).
  virtual bool holds(std::string_view value) const = 0;
};

class Store final : public Target {
 public:
  explicit Store(std::unique_ptr<kappa::detail::CheckpointStore> store)
      : store_(std::move(store)) {}
  std::string name() const override { return "store"; }
  void write(const std::string& key, std::string_view value) override { store_->put(key, value); }
  void read(const std::string& key, size_t) override {
    last_ = store_->get_checked(key, kappa::detail::image_header_bytes(),
                                [](std::string_view, uint64_t) {});
  }
  bool holds(std::string_view value) const override { return last_ && *last_ == value; }

 private:
  std::unique_ptr<kappa::detail::CheckpointStore> store_;
  std::optional<std::string> last_;
};

class Stream final : public Target {
 public:
  Stream(std::unique_ptr<kappa::detail::CheckpointStore> store, size_t piece,
         std::string name = "stream")
      : store_(std::move(store)), piece_(piece), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void write(const std::string& key, std::string_view value) override {
    std::unique_ptr<kappa::detail::ValueWriter> writer = store_->put_stream(key);
    for (size_t at = 0; at < value.size(); at += piece_) writer->write(value.substr(at, piece_));
    writer->commit();
  }
  void read(const std::string& key, size_t size) override {
    std::unique_ptr<kappa::detail::ValueReader> reader = store_->open_value(key);
    if (!reader || reader->size() != size) throw Error("stream: " + key + " is not there whole");
    if (buffer_.size() < size) buffer_.resize(size);
    for (size_t at = 0; at < size; at += piece_)
      reader->read(at, buffer_.data() + at, std::min(piece_, size - at));
    size_ = size;
  }
  bool holds(std::string_view value) const override {
    return std::string_view(buffer_).substr(0, size_) == value;
  }

 private:
  std::unique_ptr<kappa::detail::CheckpointStore> store_;
  size_t piece_;
  std::string name_;
  std::string buffer_;
  size_t size_ = 0;
};

class RawFile final : public Target {
 public:
  explicit RawFile(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
  }
  std::string name() const override { return "raw"; }
  void write(const std::string& key, std::string_view value) override {
    std::string path = dir_ + "/" + key, tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail("open " + tmp);
    for (size_t done = 0; done < value.size();) {
      ssize_t n = ::write(fd, value.data() + done, value.size() - done);
      if (n <= 0) fail("write " + tmp);
      done += size_t(n);
    }
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + tmp);
  }
  void read(const std::string& key, size_t) override {
    std::string path = dir_ + "/" + key;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open " + path);
    struct stat st;
    if (fstat(fd, &st) != 0) fail("stat " + path);
    size_ = size_t(st.st_size);
    if (buffer_.size() < size_) buffer_.resize(size_);
    for (size_t done = 0; done < size_;) {
      ssize_t n = ::read(fd, buffer_.data() + done, size_ - done);
      if (n <= 0) fail("read " + path);
      done += size_t(n);
    }
    close(fd);
  }
  bool holds(std::string_view value) const override {
    return std::string_view(buffer_).substr(0, size_) == value;
  }

 private:
  std::string dir_, buffer_;
  size_t size_ = 0;
};

class RawRedis final : public Target {
 public:
  // `address`: HOST:PORT.
  explicit RawRedis(const std::string& address) {
    size_t colon = address.rfind(':');
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found)
      throw Error("cannot resolve " + address);
    fd_ = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool connected = fd_ >= 0 && connect(fd_, found->ai_addr, found->ai_addrlen) == 0;
    freeaddrinfo(found);
    if (!connected) fail("connect to " + address);
    int one = 1;  // as hiredis
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawRedis() override { close(fd_); }
  std::string name() const override { return "raw"; }

  void write(const std::string& key, std::string_view value) override {
    std::string header = "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key +
                         "\r\n$" + std::to_string(value.size()) + "\r\n";
    iovec iov[3] = {{header.data(), header.size()},
                    {const_cast<char*>(value.data()), value.size()},
                    {const_cast<char*>("\r\n"), 2}};
    send_all(iov, 3);
    receive(5);
    if (buffer_.compare(0, 5, "+OK\r\n") != 0) throw Error("SET failed");
  }
  // The reply's size is known from the value's: it is received whole, and
  // its header checked afterwards.
  void read(const std::string& key, size_t size) override {
    std::string cmd = "*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
    iovec iov{cmd.data(), cmd.size()};
    send_all(&iov, 1);
    header_ = "$" + std::to_string(size) + "\r\n";
    receive(header_.size() + size + 2);
  }
  bool holds(std::string_view value) const override {
    return buffer_.compare(0, header_.size(), header_) == 0 &&
           std::string_view(buffer_).substr(header_.size(), value.size()) == value;
  }

 private:
  void send_all(iovec* iov, int count) {
    while (count > 0) {
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = size_t(count);
      ssize_t n = sendmsg(fd_, &m, MSG_NOSIGNAL);
      if (n < 0) fail("sendmsg");
      size_t left = size_t(n);
      for (; count > 0 && left >= iov->iov_len; ++iov, --count) left -= iov->iov_len;
      if (count > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
      }
    }
  }
  void receive(size_t n) {
    if (buffer_.size() < n) buffer_.resize(n);
    for (size_t got = 0; got < n;) {
      ssize_t r = recv(fd_, buffer_.data() + got, n - got, MSG_WAITALL);
      if (r <= 0) fail("recv");
      got += size_t(r);
    }
  }
  int fd_ = -1;
  std::string buffer_, header_;
};

std::unique_ptr<kappa::detail::CheckpointStore> open_store(const std::string& url,
                                                           size_t multipart_threshold) {
  if (multipart_threshold && url.starts_with("s3://")) {
    kappa::detail::S3Tuning tuning;
    tuning.multipart_threshold = multipart_threshold;
    return kappa::detail::open_s3_store(url.substr(5), {}, tuning);
  }
  return kappa::detail::open_store(url);
}

std::unique_ptr<Target> open_raw(const std::string& url) {
  if (url.starts_with("file://")) return std::make_unique<RawFile>(url.substr(7));
  if (url.starts_with("redis://")) return std::make_unique<RawRedis>(url.substr(8));
  throw Error("no raw baseline here for " + url + " (the S3 one is curl: bench/store_bench.py)");
}

// Seconds of each of `n` rounds of `op` on every target, in turn: the first
// target first in even rounds, last in odd ones. `after` runs after each
// operation, not timed.
std::vector<std::vector<double>> time_in_turn(
    std::vector<std::unique_ptr<Target>>& targets, int n, const std::function<void(Target&)>& op,
    const std::function<void(Target&)>& after = [](Target&) {}) {
  std::vector<std::vector<double>> seconds(targets.size());
  for (int round = 0; round < n; ++round) {
    for (size_t k = 0; k < targets.size(); ++k) {
      size_t i = round % 2 ? targets.size() - 1 - k : k;
      auto t0 = Clock::now();
      op(*targets[i]);
      seconds[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      after(*targets[i]);
    }
  }
  return seconds;
}

void print(size_t size, const std::string& target, const char* op,
           const std::vector<double>& seconds) {
  std::printf("{\"size\": %zu, \"target\": \"%s\", \"op\": \"%s\", \"seconds\": [", size,
              target.c_str(), op);
  for (size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.6f", i ? ", " : "", seconds[i]);
  std::printf("]}\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  kappa::detail::runtime_init();  // heap settings for large values, as in workers
  std::string url;
  bool with_raw = false, with_reads = true, data_stream = false;
  std::vector<size_t> sizes = {4096, 1 << 20};
  int reps = 10;
  size_t multipart_threshold = 0, stream_piece = 0;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--with-raw" || flag == "--writes-only" || flag == "--data-stream") {
      if (flag == "--with-raw") with_raw = true;
      if (flag == "--writes-only") with_reads = false;
      if (flag == "--data-stream") data_stream = true;
      continue;
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    std::string value = argv[++i];
    if (flag == "--store") {
      url = value;
    } else if (flag == "--s3-multipart-threshold") {
      multipart_threshold = std::stoull(value);
    } else if (flag == "--stream") {
      stream_piece = std::stoull(value);
    } else if (flag == "--reps") {
      reps = std::atoi(value.c_str());
    } else if (flag == "--sizes") {
      sizes.clear();
      std::stringstream ss(value);
      for (std::string s; std::getline(ss, s, ',');) sizes.push_back(std::stoull(s));
    } else {
      std::fprintf(stderr, "unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  if (url.empty() || reps < 1) {
    std::fprintf(stderr,
                 "usage: %s --store URL [--with-raw] [--stream PIECE [--data-stream]] "
                 "[--sizes N,N...] [--reps N] "
                 "[--writes-only] [--s3-multipart-threshold BYTES]\n",
                 argv[0]);
    return 2;
  }
  try {
    std::vector<std::unique_ptr<Target>> targets;
    targets.push_back(std::make_unique<Store>(open_store(url, multipart_threshold)));
    if (with_raw) targets.push_back(open_raw(url));
    if (stream_piece)
      targets.push_back(
          std::make_unique<Stream>(open_store(url, multipart_threshold), stream_piece));
    if (stream_piece && data_stream)
      targets.push_back(std::make_unique<Stream>(kappa::detail::open_store(url, {.shared = true}),
                                                 stream_piece, "data-stream"));
    for (size_t size : sizes) {
      const std::string value = random_bytes(size);
      const std::string key = "value-" + std::to_string(size);
      auto write = [&](Target& t) { t.write(t.name() + "-" + key, value); };
      auto read = [&](Target& t) { t.read(t.name() + "-" + key, size); };
      auto check = [&](Target& t) {
        if (!t.holds(value)) throw Error("a read returned another value than was written");
      };
      time_in_turn(targets, 1, write);
      if (with_reads) time_in_turn(targets, 1, read, check);
      std::vector<std::vector<double>> writes = time_in_turn(targets, reps, write), reads;
      if (with_reads) reads = time_in_turn(targets, reps, read, check);
      for (size_t i = 0; i < targets.size(); ++i) {
        print(size, targets[i]->name(), "write", writes[i]);
        if (with_reads) print(size, targets[i]->name(), "read", reads[i]);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kappa_store_bench: %s\n", e.what());
    return 1;
  }
}
