// CheckpointStore: where checkpoint images live (DESIGN.md section 5).
//
// A store maps keys ("JOB/task-3/seq-000000000042-w7.kpk") to immutable byte
// strings. put() is atomic: a reader sees the whole value or nothing, even
// when the writer is killed mid-write. Stores know nothing of jobs, tasks or
// the coordinator.
//
// Implementations: FileStore (file://DIR, file_store.cc), S3Store
// (s3://BUCKET/PREFIX, s3_store.cc), RedisStore (redis://HOST:PORT[/DB],
// redis_store.cc). open_store() (store_factory.cc) picks one by the URL's
// scheme.
//
// A value written in pieces (put_stream) waits where list() does not look
// until its commit: in KEY.tmp.PID.N (file://; list() hides every ".tmp."
// name), in KEY.tmp.R or KEY.part.R.N, R 16 hex digits (redis://; list()
// hides these), in a multipart upload (s3://). Each store's file says what
// it does in full.
//
// Thread safety: implementations may be used from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/byte_stream.h"

namespace kappa::detail {

/// Judges a value from its first bytes before the rest is read (see
/// CheckpointStore::get_checked): `head` holds its first bytes (all of it if
/// it is short), `size` is its whole size. Throws to refuse the value.
using HeadCheck = std::function<void(std::string_view head, uint64_t size)>;

/// Writes one value in pieces (CheckpointStore::put_stream), so that a large
/// value never needs a buffer of its whole size. Nothing is visible under the
/// key until commit() returns, and then all of it, atomically, as with put();
/// a writer destroyed without commit() (or whose write or commit threw)
/// leaves the key as it was and removes what it wrote, as far as it can (a
/// killed process may leave debris that list() does not show, as put() may).
/// Used by one thread at a time; must not outlive its store.
/// write() appends; it may keep a bounded part of what it was given (a
/// store's part size) until the next write or commit.
class ValueWriter : public ByteSink {
 public:
  /// Makes the value written so far the value under the key. Throws
  /// kappa::Error; the key is then as it was.
  virtual void commit() = 0;
};

/// Reads one value in pieces (CheckpointStore::open_value). The value is the
/// one under the key when it was opened, or the reads throw: a store that
/// cannot pin a version (a value replaced meanwhile) says so rather than
/// mixing two values. Used by one thread at a time; must not outlive its
/// store.
using ValueReader = ByteSource;

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  /// Stores `bytes` under `key`, replacing any previous value atomically.
  /// Throws kappa::Error on failure.
  virtual void put(const std::string& key, std::string_view bytes) = 0;
  /// The value under `key`, or nullopt if there is none. Throws kappa::Error
  /// if it cannot be read whole.
  virtual std::optional<std::string> get(const std::string& key) = 0;
  /// Like get(), but passes the value's first `head_bytes` bytes and its
  /// size to `check`, which may refuse it (what it throws comes out of
  /// get_checked) before the value is returned. A value that cannot be what
  /// the caller expects (a huge file where a checkpoint image should be) is
  /// refused without being read in whole: the head is checked as soon as it
  /// has arrived, except that a store may read a value of up to 16 MiB whole
  /// first (FileStore does: reading its head alone would cost more than the
  /// rare refusal saves).
  virtual std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                                 const HeadCheck& check) = 0;
  /// A writer for a value under `key` written in pieces (see ValueWriter).
  /// The default collects the pieces and put()s them on commit; stores that
  /// can append (a file, a multipart upload, Redis APPEND) do, holding at
  /// most one part in memory.
  virtual std::unique_ptr<ValueWriter> put_stream(const std::string& key);
  /// A reader for the value under `key`, or nullptr if there is none. The
  /// default get()s the whole value and reads from it; stores that can read a
  /// range (pread, an HTTP Range GET, GETRANGE) do.
  virtual std::unique_ptr<ValueReader> open_value(const std::string& key);
  /// Keys starting with `prefix`, sorted.
  virtual std::vector<std::string> list(const std::string& prefix) = 0;
  /// Removes `key`; no error if it is absent. Throws kappa::Error otherwise.
  virtual void remove(const std::string& key) = 0;
  /// Removes every key starting with `prefix` (which ends with '/').
  virtual void remove_prefix(const std::string& prefix) = 0;
  /// Makes the value under `from` the value under `to` (replacing it
  /// atomically, as put does) and removes `from`. Idempotent: with `from`
  /// gone and `to` present, there is nothing to do. Throws kappa::Error when
  /// both are missing. The default copies (get, put, remove); stores that
  /// can rename do.
  virtual void move(const std::string& from, const std::string& to);
  /// A description for messages ("file:///tmp/x").
  virtual std::string url() const = 0;
};

struct StoreOptions {
  /// Create the store if it does not exist (a job's store), or insist that
  /// it does (a store to resume from).
  bool create = true;
  /// Values for other tools to read (a data store: its objects are a job's
  /// output). file://: readable by others as the umask allows, else by the
  /// owner only (checkpoint images hold a task's memory); redis://: every
  /// value one plain string, else a long stream is written in pieces
  /// (redis_store.cc).
  bool shared = false;
};

/// Opens a store from a URL: file://DIR (or a plain path), s3://BUCKET/PREFIX,
/// redis://HOST:PORT[/DB]. Throws
/// kappa::Error for an unknown scheme (the message lists the known ones) or
/// a store that cannot be opened.
std::unique_ptr<CheckpointStore> open_store(const std::string& url, StoreOptions options = {});

/// Where a job's puts wait in its data store until the coordinator commits
/// them (".kappa-put-JOB/"): written by workers, cleared after a success.
inline std::string put_staging_prefix(const std::string& job) { return ".kappa-put-" + job + "/"; }

/// A view of `base` in which every key lives under `scope` + "/": what one
/// job sees of a store that several jobs may share.
std::unique_ptr<CheckpointStore> scope_store(std::unique_ptr<CheckpointStore> base,
                                             const std::string& scope);

/// Reads the file at `path` the way FileStore does, for readers of files that
/// may be anything (`inspect`): nullopt if it does not exist; kappa::Error,
/// naming the file and the reason, if it is not a regular file (a FIFO is
/// refused without waiting for a writer) or cannot be read whole. With a
/// `check`, its first `head_bytes` bytes and its size go to `check` before
/// it is returned, and before the rest is read if it is over 16 MiB (see
/// CheckpointStore::get_checked).
std::optional<std::string> read_regular_file(const std::string& path, size_t head_bytes = 0,
                                             const HeadCheck& check = {});

/// For ValueReader::read: throws kappa::Error, naming the value (`what`: a
/// file, an object, a key), unless `bytes` bytes at `offset` lie inside its
/// `size` bytes.
void check_read_range(uint64_t offset, size_t bytes, uint64_t size, const std::string& what);

}  // namespace kappa::detail
