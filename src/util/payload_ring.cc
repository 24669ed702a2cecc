#include "util/payload_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

// The area: a page holding the two rings' counters (a cache line each),
// then the ring to the coordinator, then the ring to the worker.
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kAreaBytes = kHeaderBytes + 2 * PayloadArea::kRingBytes;
constexpr unsigned kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

RingCounters* counters(char* base, size_t ring) {
  return reinterpret_cast<RingCounters*>(base) + ring;  // the page is zeroed: as constructed
}

// A consumer waiting for bytes spins while they come (a 64 KiB piece takes
// a few microseconds to write) and for kSpin after they stop: the producer
// sends the frame, which wakes the consumer, before it starts writing, and
// that send can take ~45 us (an IPI to a halted virtual CPU). Each check
// yields the CPU, in case the producer waits for this one (both on one
// core: the woken consumer may have preempted it). Then it sleeps on the
// futex, kNap at a time, asking `alive` between naps.
constexpr auto kSpin = std::chrono::microseconds(200);
constexpr timespec kNap = {0, 20'000'000};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Shared between processes: no FUTEX_PRIVATE_FLAG.
void futex_wait(uint32_t* word, uint32_t expected, const timespec* timeout) {
  syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
}
void futex_wake(uint32_t* word) { syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0); }

}  // namespace

uint64_t PayloadRing::place(uint64_t after, size_t n, size_t size, bool restart) {
  uint64_t offset = after % size;
  if (offset == 0 || (!restart && offset + n <= size)) return after;
  return after - offset + size;  // the start of the ring's next lap
}

std::optional<uint64_t> PayloadRing::claim(size_t n, bool* restart) {
  if (n > size_) return std::nullopt;
  uint64_t taken = std::atomic_ref(shared_->taken).load(std::memory_order_acquire);
  bool empty = taken == next_;
  uint64_t at = place(next_, n, size_, empty);
  // Unread payloads lie in [taken, next_): the new one must not reach into
  // them a lap later.
  if (!empty && at + n > taken + size_) return std::nullopt;
  next_ = at + n;
  *restart = empty;
  return at;
}

void PayloadRing::write(uint64_t at, std::string_view payload) {
  std::atomic_ref written(shared_->written);
  std::atomic_ref sleeping(shared_->sleeping);
  char* to = bytes_ + at % size_;  // claim() placed it: at % size_ + size <= size_
  for (size_t done = 0; done < payload.size();) {
    size_t n = std::min(kPieceBytes, payload.size() - done);
    std::memcpy(to + done, payload.data() + done, n);
    done += n;
    // seq_cst, against the consumer's: it either sees this progress after
    // saying it sleeps, or is seen sleeping here (and woken).
    written.store(at + done, std::memory_order_seq_cst);
    if (sleeping.load(std::memory_order_seq_cst) != 0 && sleeping.exchange(0) != 0) {
      std::atomic_ref(shared_->wake).fetch_add(1);
      futex_wake(&shared_->wake);
    }
  }
}

std::optional<uint64_t> PayloadRing::next_place(size_t n, bool restart) {
  if (n > size_) return std::nullopt;
  uint64_t at = place(next_, n, size_, restart);  // at % size_ + n <= size_
  next_ = at + n;
  return at;
}

bool PayloadRing::await_written(uint64_t end, const Alive& alive) {
  using Clock = std::chrono::steady_clock;
  std::atomic_ref written(shared_->written);
  uint64_t seen = written.load(std::memory_order_acquire);
  if (seen >= end) return true;
  auto since = Clock::now();  // the last progress seen
  for (;;) {
    for (int i = 0; i < 64; ++i) cpu_relax();
    uint64_t now_written = written.load(std::memory_order_acquire);
    if (now_written >= end) return true;
    auto now = Clock::now();
    if (now_written != seen) {
      seen = now_written;
      since = now;
      continue;
    }
    if (now - since < kSpin) {
      sched_yield();
      continue;
    }
    std::atomic_ref wake(shared_->wake);
    std::atomic_ref sleeping(shared_->sleeping);
    uint32_t ticket = wake.load(std::memory_order_seq_cst);
    sleeping.store(1, std::memory_order_seq_cst);
    if (written.load(std::memory_order_seq_cst) < end) futex_wait(&shared_->wake, ticket, &kNap);
    sleeping.store(0, std::memory_order_relaxed);
    if (written.load(std::memory_order_acquire) >= end) return true;
    if (alive && !alive()) return false;
    since = Clock::now();
  }
}

const char* PayloadRing::view(size_t n, bool restart, const Alive& alive) {
  std::optional<uint64_t> at = next_place(n, restart);
  if (!at || !await_written(*at + n, alive)) return nullptr;
  return bytes_ + *at % size_;
}

void PayloadRing::release() {
  std::atomic_ref(shared_->taken).store(next_, std::memory_order_release);
}

bool PayloadRing::take(char* out, size_t n, bool restart, const Alive& alive) {
  std::optional<uint64_t> at = next_place(n, restart);
  if (!at) return false;
  const char* from = bytes_ + *at % size_;
  for (size_t done = 0; done < n;) {
    size_t piece = std::min(kPieceBytes, n - done);
    if (!await_written(*at + done + piece, alive)) return false;
    std::memcpy(out + done, from + done, piece);
    done += piece;
  }
  release();
  return true;
}

PayloadArea::PayloadArea(int fd, char* base) : fd_(fd), base_(base) {
  static_assert(2 * sizeof(RingCounters) <= kHeaderBytes);
  to_coordinator_ =
      std::make_unique<PayloadRing>(base + kHeaderBytes, kRingBytes, counters(base, 0));
  to_worker_ = std::make_unique<PayloadRing>(base + kHeaderBytes + kRingBytes, kRingBytes,
                                             counters(base, 1));
}

PayloadArea::~PayloadArea() {
  munmap(base_, kAreaBytes);
  close(fd_);
}

std::unique_ptr<PayloadArea> PayloadArea::create() {
  int fd = memfd_create("kappa-payloads", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  void* base = MAP_FAILED;
  if (ftruncate(fd, off_t(kAreaBytes)) == 0 && fcntl(fd, F_ADD_SEALS, kSeals) == 0)
    base = mmap(nullptr, kAreaBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    close(fd);
    return nullptr;
  }
  return std::unique_ptr<PayloadArea>(new PayloadArea(fd, static_cast<char*>(base)));
}

std::unique_ptr<PayloadArea> PayloadArea::map(int fd) {
  auto refuse = [&](const std::string& why) {
    close(fd);
    throw Error("the worker's shared payload area is refused: " + why);
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode) || size_t(st.st_size) != kAreaBytes)
    refuse("not an area of " + std::to_string(kAreaBytes) + " bytes");
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 ||
      (unsigned(seals) & (F_SEAL_SHRINK | F_SEAL_SEAL)) != (F_SEAL_SHRINK | F_SEAL_SEAL))
    refuse("not sealed against shrinking");
  void* base = mmap(nullptr, kAreaBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) refuse(std::string("mmap: ") + std::strerror(errno));
  return std::unique_ptr<PayloadArea>(new PayloadArea(fd, static_cast<char*>(base)));
}

}  // namespace kappa::detail
