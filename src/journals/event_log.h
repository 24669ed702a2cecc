// EventLog: an append-only file of checksummed records, the fast path of a
// journal. Appending a record is one write(): once it returns, the record
// survives the death of the process (the operating system has the bytes),
// which is all a coordinator killed with kill -9 needs. A power loss or a
// kernel crash may lose the records that were not yet written back (no
// fsync), like SQLite's synchronous=NORMAL.
//
// Format: an 8-byte magic, then records, each a 4-byte payload length, an
// 8-byte XXH3 of the payload (seeded with its length), and the payload
// (native byte order: the log is read back on the machine that wrote it).
// A process killed in the middle of an append leaves a record cut short at
// the end: replay() drops it, since its event was never answered. A record
// that is whole but does not match its checksum, with more after it, is
// corruption, and is refused.
//
// Thread safety: none; one owner.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kappa::detail {

class EventLog {
 public:
  /// Opens (or creates) the log at `path`. Throws kappa::Error.
  explicit EventLog(std::string path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// Calls `apply` with each whole record's payload, in order; a record cut
  /// short at the end (a process killed while appending) is dropped and
  /// cut off the file. Throws kappa::Error for a file that is not a log or
  /// is corrupt.
  void replay(const std::function<void(std::string_view)>& apply);
  /// Appends one record (one write). Throws kappa::Error if it cannot, and
  /// then leaves the file as it was before the call.
  void append(std::string_view payload);
  /// Empties the log.
  void clear();
  /// Bytes of records in the log.
  uint64_t bytes() const { return end_ - kMagicBytes; }
  const std::string& path() const { return path_; }

 private:
  static constexpr uint64_t kMagicBytes = 8;
  static constexpr uint64_t kRecordHeaderBytes = 12;
  [[noreturn]] void fail(const std::string& what, int err) const;
  void write_all(const char* p, size_t n);
  void cut(uint64_t size);

  std::string path_;
  int fd_ = -1;
  uint64_t end_ = 0;    // the file's size: the end of its last whole record
  std::string record_;  // scratch: header + payload, written at once
};

}  // namespace kappa::detail
