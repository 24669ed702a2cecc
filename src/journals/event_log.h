// EventLog: an append-only file of checksummed records, the fast path of a
// journal. Appending a record is one pwritev(): once it returns, the record
// survives the death of the process (kill -9: the operating system has the
// bytes). A power loss or a kernel crash may lose the records not yet
// written back (there is no fsync), like SQLite's synchronous=NORMAL.
// (Writing through a shared mapping instead, measured here, cost more: two
// page faults per event, each dearer on this virtual machine than the
// system call.)
//
// Format: a 16-byte header (an 8-byte magic, the 8-byte generation), then
// records, each a 4-byte payload length, an 8-byte XXH3 of the payload
// seeded with the generation and the length, and the payload (native byte
// order: the log is read back on the machine that wrote it). clear() starts
// a new generation at the start of the file: the space is reused (no
// truncation, no new pages), and the records of the old generation no
// longer check out. The log ends at the first record that does not check
// out, as SQLite's WAL ends at its first bad frame: a process killed in the
// middle of an append leaves exactly that, and that event was never
// answered.
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
  /// Opens (or creates) the log at `path` and finds its end. Throws
  /// kappa::Error for a file that is not an event log, or that cannot be
  /// opened.
  explicit EventLog(std::string path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// Calls `apply` with each record's payload, in order (views valid during
  /// the call).
  void replay(const std::function<void(std::string_view)>& apply) const;
  /// Appends one record. Throws kappa::Error if it cannot be written (a
  /// full disk), and then leaves the log as it was.
  void append(std::string_view payload);
  /// Empties the log (a new generation).
  void clear();
  /// Bytes of records in the log.
  uint64_t bytes() const { return end_ - kHeaderBytes; }
  const std::string& path() const { return path_; }

 private:
  static constexpr uint64_t kHeaderBytes = 16;
  static constexpr uint64_t kRecordHeaderBytes = 12;
  [[noreturn]] void fail(const std::string& what, int err) const;
  void write_at(uint64_t at, const char* p, size_t n);
  /// The file from byte `from` to its end.
  std::string read_from(uint64_t from) const;
  /// Calls `apply` with each record of this generation in `bytes` (the file
  /// from the end of its header); returns where they end.
  uint64_t scan(std::string_view bytes, const std::function<void(std::string_view)>& apply) const;

  std::string path_;
  int fd_ = -1;
  uint64_t generation_ = 0;
  uint64_t end_ = 0;  // the end of the last record
};

}  // namespace kappa::detail
