#include "journals/event_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "kappa/error.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

constexpr char kMagic[] = "KAPPAEL2";  // 8 bytes, without its '\0'

uint64_t checksum(std::string_view payload, uint64_t generation) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(),
                              generation ^ (uint64_t(payload.size()) << 32));
}

}  // namespace

EventLog::EventLog(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail("open", errno);
  try {
    struct stat st {};
    if (fstat(fd_, &st) != 0) fail("read", errno);
    uint64_t size = uint64_t(st.st_size);
    if (size < kHeaderBytes) {
      // New, or its creation was cut short by a kill: made afresh.
      char head[kHeaderBytes] = {};
      if (size > 0 && pread(fd_, head, size, 0) != ssize_t(size)) fail("read", errno);
      if (std::memcmp(head, kMagic, std::min<uint64_t>(size, 8)) != 0)
        throw Error("the journal's log " + path_ + " is not a Kappa event log");
      grow(kMinCapacity);
      std::memcpy(map_, kMagic, 8);
      uint64_t generation = 1;
      std::memcpy(map_ + 8, &generation, 8);
      end_ = kHeaderBytes;
      return;
    }
    map_ = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      fail("map", errno);
    }
    capacity_ = size;
    if (std::memcmp(map_, kMagic, 8) != 0)
      throw Error("the journal's log " + path_ +
                  " is not a Kappa event log (or of another format)");
    end_ = kHeaderBytes;
    std::string_view payload;
    while (record_at(end_, &payload)) end_ += kRecordHeaderBytes + payload.size();
  } catch (...) {
    if (map_) munmap(map_, capacity_);
    ::close(fd_);
    throw;
  }
}

EventLog::~EventLog() {
  if (map_) munmap(map_, capacity_);
  if (fd_ >= 0) ::close(fd_);
}

void EventLog::fail(const std::string& what, int err) const {
  std::string why = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) why += " (its disk is full)";
  throw Error("cannot " + what + " the journal's log " + path_ + ": " + why);
}

uint64_t EventLog::generation() const {
  uint64_t g;
  std::memcpy(&g, map_ + 8, 8);
  return g;
}

bool EventLog::record_at(uint64_t at, std::string_view* payload) const {
  if (capacity_ - at < kRecordHeaderBytes) return false;
  uint32_t length;
  uint64_t sum;
  std::memcpy(&length, map_ + at, 4);
  std::memcpy(&sum, map_ + at + 4, 8);
  if (capacity_ - at - kRecordHeaderBytes < length) return false;
  *payload = std::string_view(map_ + at + kRecordHeaderBytes, length);
  return checksum(*payload, generation()) == sum;
}

void EventLog::grow(uint64_t needed) {
  uint64_t size = std::max(capacity_ * 2, kMinCapacity);
  while (size < needed) size *= 2;
  // Blocks allocated now, so that a full disk is this error rather than a
  // SIGBUS when a page of the mapping is first written.
  if (int err = posix_fallocate(fd_, 0, off_t(size))) fail("grow", err);
  void* m = map_ ? mremap(map_, capacity_, size, MREMAP_MAYMOVE)
                 : mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) fail("map", errno);
  map_ = static_cast<char*>(m);
  capacity_ = size;
}

void EventLog::replay(const std::function<void(std::string_view)>& apply) const {
  std::string_view payload;
  for (uint64_t at = kHeaderBytes; at < end_ && record_at(at, &payload);
       at += kRecordHeaderBytes + payload.size())
    apply(payload);
}

void EventLog::append(std::string_view payload) {
  if (payload.size() > UINT32_MAX)
    throw Error("an event of " + std::to_string(payload.size()) + " bytes is too large for " +
                path_);
  uint64_t needed = end_ + kRecordHeaderBytes + payload.size();
  if (needed > capacity_) grow(needed);
  // The payload first, its header last: a process killed in between leaves
  // a record that does not check out, where the log ends.
  std::memcpy(map_ + end_ + kRecordHeaderBytes, payload.data(), payload.size());
  uint32_t length = uint32_t(payload.size());
  uint64_t sum = checksum(payload, generation());
  std::memcpy(map_ + end_, &length, 4);
  std::memcpy(map_ + end_ + 4, &sum, 8);
  end_ = needed;
}

void EventLog::clear() {
  uint64_t next = generation() + 1;
  std::memcpy(map_ + 8, &next, 8);  // one aligned store: the old records stop checking out
  end_ = kHeaderBytes;
}

}  // namespace kappa::detail
