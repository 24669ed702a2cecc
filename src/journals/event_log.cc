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
#include <system_error>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

constexpr char kMagic[] = "KAPPAEL2";  // 8 bytes, without its '\0'

uint64_t checksum(std::string_view payload, uint64_t generation) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(),
                              generation ^ (uint64_t(payload.size()) << 32));
}

}  // namespace

EventLog::EventLog(std::string path, uint64_t expected)
    : path_(std::move(path)), expected_(expected) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail("open", errno);
  try {
    // The header is read and checked before anything is written: a file
    // that is not a log is left as it was.
    char header[kHeaderBytes];
    size_t got = 0;
    while (got < sizeof header) {
      ssize_t r = ::pread(fd_, header + got, sizeof header - got, off_t(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("read", errno);
      if (r == 0) break;
      got += size_t(r);
    }
    if (got < kHeaderBytes) {
      // New, or its creation was cut short by a kill: made afresh.
      if (std::memcmp(header, kMagic, std::min<size_t>(got, 8)) != 0)
        throw Error("the journal's log " + path_ + " is not a Kappa event log");
      std::memcpy(header, kMagic, 8);
      generation_ = 1;
      std::memcpy(header + 8, &generation_, 8);
      for (size_t done = 0; done < sizeof header;) {
        ssize_t w = ::pwrite(fd_, header + done, sizeof header - done, off_t(done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) fail("write", errno);
        done += size_t(w);
      }
    } else if (std::memcmp(header, kMagic, 8) != 0) {
      throw Error("the journal's log " + path_ +
                  " is not a Kappa event log (or of another format)");
    } else {
      std::memcpy(&generation_, header + 8, 8);
    }
    reserve(kGrowStep);
    end_ = kHeaderBytes +
           scan(std::string_view(map_ + kHeaderBytes, capacity_ - kHeaderBytes), nullptr);
    populate_from(end_);
  } catch (...) {
    if (map_) ::munmap(map_, capacity_);
    ::close(fd_);
    throw;
  }
}

EventLog::~EventLog() {
  stop_populating();
  if (map_) ::munmap(map_, capacity_);
  if (fd_ >= 0) ::close(fd_);
}

void EventLog::fail(const std::string& what, int err) const {
  std::string why = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) why += " (its disk is full)";
  throw Error("cannot " + what + " the journal's log " + path_ + ": " + why);
}

void EventLog::reserve(uint64_t bytes) {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("read", errno);
  const uint64_t size = std::max(uint64_t(st.st_size), bytes);
  if (uint64_t(st.st_size) < size) {
    // Blocks for the whole file: a copy into the mapping never needs one
    // (without them, a full disk would be a SIGBUS there).
    if (int err = ::posix_fallocate(fd_, 0, off_t(size)); err != 0) fail("write", err);
  }
  if (map_ && size == capacity_) return;
  stop_populating();  // its range is about to move
  void* m = map_ ? ::mremap(map_, capacity_, size, MREMAP_MAYMOVE)
                 : ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) fail("map", errno);
  map_ = static_cast<char*>(m);
  capacity_ = size;
}

void EventLog::grow(uint64_t bytes) {
  reserve((bytes + kGrowStep - 1) / kGrowStep * kGrowStep);
  populate_from(end_);
}

void EventLog::populate_from(uint64_t from) {
  stop_populating();
#ifdef MADV_POPULATE_WRITE
  stop_populating_.store(false, std::memory_order_relaxed);
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  try {
    populator_ = std::thread([this, base = map_, end = capacity_, from = from / page * page] {
      constexpr uint64_t kStep = 128 << 10;  // between checks: a join waits ~0.3 ms at most
      for (uint64_t at = from; at < end; at += kStep) {
        if (stop_populating_.load(std::memory_order_relaxed)) return;
        // Fails before Linux 5.14: the appends take the faults instead.
        if (::madvise(base + at, std::min(kStep, end - at), MADV_POPULATE_WRITE) != 0) return;
      }
    });
  } catch (const std::system_error&) {
    // No thread to spare: the appends take the faults instead.
  }
#else
  (void)from;
#endif
}

void EventLog::stop_populating() {
  if (!populator_.joinable()) return;
  stop_populating_.store(true, std::memory_order_relaxed);
  populator_.join();
}

uint64_t EventLog::scan(std::string_view bytes,
                        const std::function<void(std::string_view)>& apply) const {
  uint64_t at = 0;
  while (bytes.size() - at >= kRecordHeaderBytes) {
    uint32_t length;
    uint64_t sum;
    std::memcpy(&length, bytes.data() + at, 4);
    std::memcpy(&sum, bytes.data() + at + 4, 8);
    if (bytes.size() - at - kRecordHeaderBytes < length) break;
    std::string_view payload = bytes.substr(at + kRecordHeaderBytes, length);
    if (checksum(payload, generation_) != sum) break;
    if (apply) apply(payload);
    at += kRecordHeaderBytes + length;
  }
  return at;
}

void EventLog::replay(const std::function<void(std::string_view)>& apply) const {
  scan(std::string_view(map_ + kHeaderBytes, end_ - kHeaderBytes), apply);
}

void EventLog::append(std::string_view payload) {
  if (payload.size() > UINT32_MAX)
    throw Error("an event of " + std::to_string(payload.size()) + " bytes is too large for " +
                path_);
  const uint64_t total = kRecordHeaderBytes + payload.size();
  if (end_ + total > capacity_) {
    grow(std::max(capacity_ * 2, end_ + total));  // throws, and changes nothing, if it cannot
    growth_failed_ = false;
  }
  // A copy cut short by a kill leaves a record that does not check out.
  char* at = map_ + end_;
  const uint32_t length = uint32_t(payload.size());
  const uint64_t sum = checksum(payload, generation_);
  std::memcpy(at, &length, 4);
  std::memcpy(at + 4, &sum, 8);
  std::memcpy(at + kRecordHeaderBytes, payload.data(), payload.size());
  end_ += total;
  if (end_ > capacity_ / 4 * 3 && capacity_ < expected_ && !growth_failed_) {
    // Grows before the room runs out, so that the pages the next appends
    // write are ready when they come.
    try {
      grow(std::min(capacity_ * 2, expected_));
    } catch (const Error&) {
      growth_failed_ = true;
    }
  }
}

void EventLog::clear() {
  const uint64_t next = generation_ + 1;
  std::memcpy(map_ + 8, &next, 8);  // old records stop checking out
  generation_ = next;
  end_ = kHeaderBytes;
  // Pages written back to the disk since they were last written are
  // read-only again in the mapping: made writable again, ahead of the
  // appends (the others cost nothing).
  populate_from(end_);
}

}  // namespace kappa::detail
