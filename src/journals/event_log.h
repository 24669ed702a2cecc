// EventLog: an append-only file of checksummed records, the fast path of a
// journal. The file is mapped into memory, and appending a record is a copy
// into the mapping: once it is done, the record survives the death of the
// process (kill -9: the bytes are in the operating system's page cache,
// exactly as after a write()). A power loss or a kernel crash may lose the
// records not yet written back (there is no fsync), like SQLite's
// synchronous=NORMAL.
//
// Why a mapping: a pwrite() of an event's ~10 KiB cost 17-22 us inside the
// coordinator, about as much for 1 KiB, and two of them lie on the path of
// every queue round trip; a copy into pages already present and dirty costs
// ~1 us. So the file's blocks are allocated before its pages are written
// (posix_fallocate: a full disk shows as an error of the append that needs
// more room, never as a SIGBUS in the middle of a copy), and a thread of the
// log's own makes its pages present and writable ahead of the appends
// (MADV_POPULATE_WRITE: the first write to a page of a file mapping
// otherwise faults, ~2.5 us a page here). The file grows ahead of the
// appends, doubling, up to the size its owner expects the log to reach, and
// beyond that as records need. It keeps its size: clear() starts again from
// the beginning, over pages that are already there.
//
// Format: a 16-byte header (an 8-byte magic, the 8-byte generation), then
// records, each a 4-byte payload length, an 8-byte XXH3 of the payload
// seeded with the generation and the length, and the payload (native byte
// order: the log is read back on the machine that wrote it). The rest of
// the file is zeros or stale records. clear() starts a new generation at the
// start of the file, and the records of the old generation no longer check
// out. The log ends at the first record that does not check out, as
// SQLite's WAL ends at its first bad frame: a process killed in the middle
// of an append leaves exactly that, and that event was never answered.
//
// Thread safety: none; one owner (the populating thread only faults pages
// in, and never changes a byte).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace kappa::detail {

class EventLog {
 public:
  /// Opens (or creates) the log at `path` and finds its end. `expected` is
  /// how large the owner expects it to get (its file grows ahead of the
  /// appends up to that). Throws kappa::Error for a file that is not an
  /// event log (left untouched), or that cannot be opened, extended (a full
  /// disk) or mapped.
  explicit EventLog(std::string path, uint64_t expected = 0);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// Calls `apply` with each record's payload, in order (views valid during
  /// the call).
  void replay(const std::function<void(std::string_view)>& apply) const;
  /// Appends one record. Throws kappa::Error if it cannot be written (it
  /// does not fit, and the disk is full), and then leaves the log as it was.
  void append(std::string_view payload);
  /// Empties the log (a new generation).
  void clear();
  /// Bytes of records in the log.
  uint64_t bytes() const { return end_ - kHeaderBytes; }
  /// Bytes the file holds (records and room for more).
  uint64_t capacity() const { return capacity_; }
  const std::string& path() const { return path_; }

 private:
  static constexpr uint64_t kHeaderBytes = 16;
  static constexpr uint64_t kRecordHeaderBytes = 12;
  static constexpr uint64_t kGrowStep = 64 << 10;  // a file's least size, and growth
  [[noreturn]] void fail(const std::string& what, int err) const;
  /// Grows the file to at least `bytes` and maps it.
  void reserve(uint64_t bytes);
  /// reserve() of `bytes` rounded up to kGrowStep, and the new pages
  /// populated from the end of the log on.
  void grow(uint64_t bytes);
  /// Calls `apply` with each record of this generation in `bytes` (the file
  /// from the end of its header); returns where they end.
  uint64_t scan(std::string_view bytes, const std::function<void(std::string_view)>& apply) const;
  /// Makes the mapping's pages from `from` on present and writable, in the
  /// background.
  void populate_from(uint64_t from);
  void stop_populating();

  std::string path_;
  int fd_ = -1;
  char* map_ = nullptr;  // the whole file
  uint64_t capacity_ = 0;
  uint64_t expected_ = 0;
  bool growth_failed_ = false;  // growing ahead failed: the append that needs room says why
  uint64_t generation_ = 0;
  uint64_t end_ = 0;  // the end of the last record
  std::thread populator_;
  std::atomic<bool> stop_populating_{false};
};

}  // namespace kappa::detail
