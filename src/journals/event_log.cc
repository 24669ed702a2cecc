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
#include "util/log.h"

namespace kappa::detail {
namespace {

constexpr char kMagic[] = "KAPPAEL1";  // 8 bytes, without its '\0'

uint64_t checksum(std::string_view payload) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(), payload.size());
}

}  // namespace

EventLog::EventLog(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) fail("open", errno);
  struct stat st {};
  if (fstat(fd_, &st) != 0) fail("read", errno);
  end_ = uint64_t(st.st_size);
  if (end_ == 0) {
    write_all(kMagic, kMagicBytes);
    end_ = kMagicBytes;
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

void EventLog::write_all(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write", errno);
    p += w;
    n -= size_t(w);
  }
}

void EventLog::cut(uint64_t size) {
  if (ftruncate(fd_, off_t(size)) != 0) fail("shorten", errno);
  end_ = size;
}

void EventLog::replay(const std::function<void(std::string_view)>& apply) {
  std::string all(end_, '\0');
  for (size_t got = 0; got < all.size();) {
    ssize_t r = ::pread(fd_, all.data() + got, all.size() - got, off_t(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("read", errno);
    if (r == 0) {
      all.resize(got);
      break;
    }
    got += size_t(r);
  }
  if (all.size() < kMagicBytes || std::memcmp(all.data(), kMagic, kMagicBytes) != 0) {
    if (all.size() < kMagicBytes && std::string_view(kMagic).starts_with(all)) {
      cut(0);  // killed while creating it
      write_all(kMagic, kMagicBytes);
      end_ = kMagicBytes;
      return;
    }
    throw Error("the journal's log " + path_ + " is not a Kappa event log, or is corrupt");
  }
  uint64_t at = kMagicBytes;
  uint64_t records = 0;
  while (at < all.size()) {
    uint64_t left = all.size() - at;
    uint32_t length = 0;
    uint64_t sum = 0;
    if (left >= kRecordHeaderBytes) {
      std::memcpy(&length, all.data() + at, 4);
      std::memcpy(&sum, all.data() + at + 4, 8);
    }
    bool whole = left >= kRecordHeaderBytes && left - kRecordHeaderBytes >= length;
    std::string_view payload =
        whole ? std::string_view(all).substr(at + kRecordHeaderBytes, length) : std::string_view();
    bool last = !whole || at + kRecordHeaderBytes + length == all.size();
    if (whole && checksum(payload) == sum) {
      apply(payload);
      ++records;
      at += kRecordHeaderBytes + length;
      continue;
    }
    if (!last)
      throw Error("the journal's log " + path_ + " is corrupt: record " +
                  std::to_string(records + 1) + " (at byte " + std::to_string(at) +
                  ") does not match its checksum");
    // The end of an append the process did not live to finish: that event
    // was never answered.
    spdlog::warn("the journal's log {} ends with an event cut short ({} bytes): dropped", path_,
                 left);
    cut(at);
    break;
  }
  end_ = at;
}

void EventLog::append(std::string_view payload) {
  if (payload.size() > UINT32_MAX)
    throw Error("an event of " + std::to_string(payload.size()) + " bytes is too large for " +
                path_);
  char header[kRecordHeaderBytes];
  uint32_t length = uint32_t(payload.size());
  uint64_t sum = checksum(payload);
  std::memcpy(header, &length, 4);
  std::memcpy(header + 4, &sum, 8);
  iovec parts[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  const size_t total = sizeof header + payload.size();
  ssize_t w;
  do w = ::writev(fd_, parts, 2);
  while (w < 0 && errno == EINTR);
  try {
    if (w < 0) fail("write", errno);
    // A short write (a signal, a disk filling up): the rest, or the error.
    size_t done = size_t(w);
    if (done < sizeof header) {
      write_all(header + done, sizeof header - done);
      done = sizeof header;
    }
    write_all(payload.data() + (done - sizeof header), total - done);
  } catch (...) {
    try {
      cut(end_);  // no part of a record that failed stays behind
    } catch (const std::exception& e) {
      spdlog::warn("{}", e.what());  // replay drops it: it is at the end
    }
    throw;
  }
  end_ += total;
}

void EventLog::clear() { cut(kMagicBytes); }

}  // namespace kappa::detail
