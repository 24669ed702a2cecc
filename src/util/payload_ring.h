// Shared memory beside a local worker's socket. A large payload (a call's
// request, its reply, a task's result) crosses it with two memcpy()s instead
// of two copies through the kernel's socket buffers, which allocate, copy and
// free pages at each crossing: 1 MiB went through a Unix socket in ~200 us
// here, through a shared ring in ~70 us. The frame that announces a payload
// still travels on the socket, so wake-ups and ordering are the socket's.
//
// The worker makes the area (a sealed memfd) and passes it to the
// coordinator with its first frame (SCM_RIGHTS); the coordinator maps it
// once the session is authenticated. Each direction has a ring with one
// producer (whoever holds the sending side's lock) and one consumer (the
// receiving side's reader). Payloads go into a ring in the order of their
// frames, so both sides know where each lies without it being sent: the
// consumer computes the same places as the producer (PayloadRing::place).
// A payload that does not fit (larger than the ring, or the ring holds
// unread ones) travels on the socket, as without a ring.
//
// Used by the Unix-socket transport (rpc/socket_transport.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace kappa::detail {

/// One direction of a connection's shared area.
class PayloadRing {
 public:
  /// `bytes`: the ring (`size` bytes); `taken`: the consumer's counter, in
  /// the shared area (8-byte aligned).
  PayloadRing(char* bytes, size_t size, uint64_t* taken)
      : bytes_(bytes), size_(size), taken_(taken) {}
  PayloadRing(const PayloadRing&) = delete;
  PayloadRing& operator=(const PayloadRing&) = delete;

  size_t size() const { return size_; }

  /// Producer: copies `payload` in. False when it does not fit now (the
  /// caller sends it another way). `*restart` tells the consumer that it
  /// starts the ring afresh (the ring was empty: with requests and replies
  /// taking turns, payloads reuse the ring's first pages).
  bool put(std::string_view payload, bool* restart);

  /// Consumer: copies the next payload, of `n` bytes, into `out`, and frees
  /// its room. `restart` as put() said. False if `n` exceeds the ring (a
  /// malformed frame). Never reads outside the ring, whatever the producer
  /// wrote into the shared counters.
  bool take(char* out, size_t n, bool restart);
  /// Consumer: the next payload where it lies, without freeing its room
  /// until release(); nullptr if `n` exceeds the ring. The producer may
  /// write the ring meanwhile, never over it.
  const char* view(size_t n, bool restart);
  /// Consumer: frees the room of every payload viewed or taken.
  void release();

  /// Where a payload of `n` (<= size) bytes goes, as a position in the
  /// stream of bytes through the ring (its offset is that modulo the size),
  /// given the end of the one before: right after it, or at the start of
  /// the ring if it would wrap or if it restarts the ring.
  static uint64_t place(uint64_t after, size_t n, size_t size, bool restart);

 private:
  char* bytes_;
  size_t size_;
  uint64_t* taken_;    // shared: the end of the last payload the consumer took
  uint64_t next_ = 0;  // the end of the last payload put (producer) or taken (consumer)
};

/// The shared area of one worker's connection: two rings, one per direction.
class PayloadArea {
 public:
  /// Bytes of each ring: room for a 1 MiB item and a few more in flight.
  static constexpr size_t kRingBytes = size_t(4) << 20;

  /// A new area, made by the worker; nullptr if the system cannot make one
  /// (the connection then sends every payload on the socket).
  static std::unique_ptr<PayloadArea> create();
  /// Maps the area a worker passed (the descriptor is taken over, closed
  /// either way). Throws kappa::Error if it is not one: the wrong size, or
  /// not sealed against shrinking (which would let the worker make the
  /// coordinator fault on a read).
  static std::unique_ptr<PayloadArea> map(int fd);

  ~PayloadArea();
  PayloadArea(const PayloadArea&) = delete;
  PayloadArea& operator=(const PayloadArea&) = delete;

  /// The memfd (to pass to the coordinator).
  int fd() const { return fd_; }
  PayloadRing& to_coordinator() { return *to_coordinator_; }
  PayloadRing& to_worker() { return *to_worker_; }

 private:
  PayloadArea(int fd, char* base);
  int fd_;
  char* base_;
  std::unique_ptr<PayloadRing> to_coordinator_, to_worker_;
};

}  // namespace kappa::detail
