#include "journals/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "kappa/error.h"
#include "util/string_for_overwrite.h"

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
    std::string header = read_from(0).substr(0, kHeaderBytes);
    if (header.size() < kHeaderBytes) {
      // New, or its creation was cut short by a kill: made afresh.
      if (header.compare(0, header.size(), kMagic, std::min<size_t>(header.size(), 8)) != 0)
        throw Error("the journal's log " + path_ + " is not a Kappa event log");
      char fresh[kHeaderBytes];
      std::memcpy(fresh, kMagic, 8);
      generation_ = 1;
      std::memcpy(fresh + 8, &generation_, 8);
      write_at(0, fresh, sizeof fresh);
      end_ = kHeaderBytes;
      return;
    }
    if (header.compare(0, 8, kMagic, 8) != 0)
      throw Error("the journal's log " + path_ +
                  " is not a Kappa event log (or of another format)");
    std::memcpy(&generation_, header.data() + 8, 8);
    end_ = kHeaderBytes + scan(read_from(kHeaderBytes), nullptr);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

void EventLog::fail(const std::string& what, int err) const {
  std::string why = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) why += " (its disk is full)";
  throw Error("cannot " + what + " the journal's log " + path_ + ": " + why);
}

void EventLog::write_at(uint64_t at, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, off_t(at));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write", errno);
    p += w;
    at += uint64_t(w);
    n -= size_t(w);
  }
}

std::string EventLog::read_from(uint64_t from) const {
  struct stat st {};
  if (fstat(fd_, &st) != 0) fail("read", errno);
  uint64_t size = uint64_t(st.st_size);
  std::string out = string_for_overwrite(size > from ? size - from : 0);
  for (size_t got = 0; got < out.size();) {
    ssize_t r = ::pread(fd_, out.data() + got, out.size() - got, off_t(from + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("read", errno);
    if (r == 0) {
      out.resize(got);
      break;
    }
    got += size_t(r);
  }
  return out;
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
  std::string bytes = read_from(kHeaderBytes);
  bytes.resize(std::min<uint64_t>(bytes.size(), end_ - kHeaderBytes));
  scan(bytes, apply);
}

void EventLog::append(std::string_view payload) {
  if (payload.size() > UINT32_MAX)
    throw Error("an event of " + std::to_string(payload.size()) + " bytes is too large for " +
                path_);
  char header[kRecordHeaderBytes];
  uint32_t length = uint32_t(payload.size());
  uint64_t sum = checksum(payload, generation_);
  std::memcpy(header, &length, 4);
  std::memcpy(header + 4, &sum, 8);
  iovec parts[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  const size_t total = sizeof header + payload.size();
  ssize_t w;
  do w = ::pwritev(fd_, parts, 2, off_t(end_));
  while (w < 0 && errno == EINTR);
  if (w < 0) fail("write", errno);
  if (size_t(w) < total) {  // a signal, or a disk filling up: the rest, or the error
    size_t done = size_t(w);
    if (done < sizeof header) {
      write_at(end_ + done, header + done, sizeof header - done);
      done = sizeof header;
    }
    write_at(end_ + done, payload.data() + (done - sizeof header), total - done);
  }
  // (A record that failed half-written is past end_ and does not check out:
  // nothing to undo.)
  end_ += total;
}

void EventLog::clear() {
  uint64_t next = generation_ + 1;
  write_at(8, reinterpret_cast<const char*>(&next), 8);  // old records stop checking out
  generation_ = next;
  end_ = kHeaderBytes;
}

}  // namespace kappa::detail
