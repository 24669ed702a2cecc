#include "util/payload_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

// The area: a page holding the two consumers' counters (a cache line each),
// then the ring to the coordinator, then the ring to the worker.
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kAreaBytes = kHeaderBytes + 2 * PayloadArea::kRingBytes;
constexpr unsigned kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

uint64_t* counter(char* base, size_t line) { return reinterpret_cast<uint64_t*>(base + 64 * line); }

}  // namespace

uint64_t PayloadRing::place(uint64_t after, size_t n, size_t size, bool restart) {
  uint64_t offset = after % size;
  if (offset == 0 || (!restart && offset + n <= size)) return after;
  return after - offset + size;  // the start of the ring's next lap
}

bool PayloadRing::put(std::string_view payload, bool* restart) {
  size_t n = payload.size();
  if (n > size_) return false;
  uint64_t taken = std::atomic_ref(*taken_).load(std::memory_order_acquire);
  bool empty = taken == next_;
  uint64_t at = place(next_, n, size_, empty);
  // Unread payloads lie in [taken, next_): the new one must not reach into
  // them a lap later.
  if (!empty && at + n > taken + size_) return false;
  std::memcpy(bytes_ + at % size_, payload.data(), n);
  next_ = at + n;
  *restart = empty;
  return true;
}

const char* PayloadRing::view(size_t n, bool restart) {
  if (n > size_) return nullptr;
  uint64_t at = place(next_, n, size_, restart);  // at % size_ + n <= size_
  next_ = at + n;
  return bytes_ + at % size_;
}

void PayloadRing::release() { std::atomic_ref(*taken_).store(next_, std::memory_order_release); }

bool PayloadRing::take(char* out, size_t n, bool restart) {
  const char* at = view(n, restart);
  if (!at) return false;
  std::memcpy(out, at, n);
  release();
  return true;
}

PayloadArea::PayloadArea(int fd, char* base) : fd_(fd), base_(base) {
  to_coordinator_ =
      std::make_unique<PayloadRing>(base + kHeaderBytes, kRingBytes, counter(base, 0));
  to_worker_ =
      std::make_unique<PayloadRing>(base + kHeaderBytes + kRingBytes, kRingBytes, counter(base, 1));
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
