// Shared memory beside a local worker's socket. A large payload (a call's
// request, its reply, a task's result) crosses it with two memcpy()s instead
// of two copies through the kernel's socket buffers, which allocate, copy and
// free pages at each crossing: 1 MiB went through a Unix socket in ~200 us
// here, through a shared ring in ~70 us. The frame that announces a payload
// still travels on the socket, so ordering is the socket's.
//
// The frame goes first and the bytes follow it: the producer publishes how
// far it has written (a shared counter, every 64 KiB), and the consumer,
// woken by the frame, reads each piece as soon as it is written; it waits
// for the rest spinning (yielding the CPU) while it comes, then asleep on a
// futex. The consumer's wake-up and its copy thus overlap the producer's
// copy rather than following it. On a 2-core KVM machine, where waking a
// process on the other core costs the sender ~45 us, the 1 MiB queue round
// trip went from 1.04 to 0.98 ms (incompressible; 1.04 to 0.91 ms for one
// repeated character: docs/benchmarks.md).
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
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace kappa::detail {

/// A ring's shared words, in the area's first page (one cache line). Either
/// side may write anything into them: they decide where the other side's
/// bytes go and when to read, never whether a read or write stays inside the
/// ring.
struct alignas(64) RingCounters {
  uint64_t taken = 0;     // consumer: the end of the last payload it freed
  uint64_t written = 0;   // producer: how far its bytes are written
  uint32_t wake = 0;      // the futex a waiting consumer sleeps on
  uint32_t sleeping = 0;  // consumer: 1 while (about to be) asleep on it
};

/// One direction of a connection's shared area.
class PayloadRing {
 public:
  /// Tells a waiting consumer whether the producer may still write (its
  /// process is alive): checked whenever a wait has lasted a while.
  using Alive = std::function<bool()>;

  /// `bytes`: the ring (`size` bytes); `shared`: its counters.
  PayloadRing(char* bytes, size_t size, RingCounters* shared)
      : bytes_(bytes), size_(size), shared_(shared) {}
  PayloadRing(const PayloadRing&) = delete;
  PayloadRing& operator=(const PayloadRing&) = delete;

  size_t size() const { return size_; }

  /// Producer: room for a payload of `n` bytes, as the position to give
  /// write(); nullopt when it does not fit now (the caller sends it another
  /// way). `*restart` tells the consumer that it starts the ring afresh (the
  /// ring was empty: with requests and replies taking turns, payloads reuse
  /// the ring's first pages). The frame that announces it may go before it
  /// is written.
  std::optional<uint64_t> claim(size_t n, bool* restart);
  /// Producer: writes the payload claimed at `at`, publishing its progress
  /// piece by piece and waking the consumer if it sleeps.
  void write(uint64_t at, std::string_view payload);

  /// Consumer: copies the next payload, of `n` bytes, into `out`, each piece
  /// as soon as the producer has written it, and frees its room. `restart`
  /// as claim() said. False if `n` exceeds the ring (a malformed frame), or
  /// if the producer stopped writing and `alive` says it is gone (`alive`
  /// empty: wait as long as it takes). Never reads outside the ring,
  /// whatever the producer wrote into the shared counters.
  bool take(char* out, size_t n, bool restart, const Alive& alive = {});
  /// Consumer: the next payload where it lies, once written whole, without
  /// freeing its room until release(); nullptr as take() fails. The
  /// producer may write the ring meanwhile, never over it.
  const char* view(size_t n, bool restart, const Alive& alive = {});
  /// Consumer: frees the room of every payload viewed or taken.
  void release();

  /// Where a payload of `n` (<= size) bytes goes, as a position in the
  /// stream of bytes through the ring (its offset is that modulo the size),
  /// given the end of the one before: right after it, or at the start of
  /// the ring if it would wrap or if it restarts the ring.
  static uint64_t place(uint64_t after, size_t n, size_t size, bool restart);

  /// The pieces write() publishes, and take() reads, one at a time.
  static constexpr size_t kPieceBytes = 64 << 10;

 private:
  // Consumer: the next payload's position (advancing past it).
  std::optional<uint64_t> next_place(size_t n, bool restart);
  // Consumer: waits until the producer has written up to `end`.
  bool await_written(uint64_t end, const Alive& alive);

  char* bytes_;
  size_t size_;
  RingCounters* shared_;
  uint64_t next_ = 0;  // the end of the last payload claimed (producer) or read (consumer)
};

/// The shared area of one worker's connection: two rings, one per direction.
class PayloadArea {
 public:
  /// Bytes of each ring: the largest payload that crosses it (larger ones
  /// take the socket). A ring's pages are allocated as payloads first reach
  /// them: about the largest payload sent that way while calls take turns
  /// (the ring restarts at its first page whenever it is empty), up to the
  /// whole ring when several are in flight. 16 MiB rather than 4 MiB: a
  /// 4 MiB queue round trip 4.61 -> 3.39 ms, 8 MiB 10.8 -> 7.8 ms
  /// (docs/benchmarks.md).
  static constexpr size_t kRingBytes = size_t(16) << 20;

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
