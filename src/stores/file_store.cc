// FileStore: checkpoints as files under a directory (file://DIR).
// Atomic put: write KEY.tmp.PID.N (N counts the process's writers, so that
// several may write at once), then rename over KEY; list() hides ".tmp."
// names. No fsync: a checkpoint must survive the death of the process that
// wrote it, not of the machine. put() is put_stream() with one write; a
// stream's writes go straight to the file, nothing is kept in memory.
// Reads take only regular files and read exactly the size fstat reports: what
// lies in the directory may be anything (a FIFO, a link to a device, a huge
// sparse file), and a short or failed read is an error, never a shorter value.
// open_value() keeps the file open: its reads see the version it opened even
// if the key is replaced (renamed over) or removed meanwhile.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <utility>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "util/string_for_overwrite.h"

namespace kappa::detail {
namespace {

// Values up to this size are read whole before get_checked's check sees
// their head (see read_regular_file).
constexpr size_t kReadWholeBytes = size_t(16) << 20;

std::string errno_text() { return std::strerror(errno); }

const char* file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "of an unknown type";
}

// Reads exactly `n` bytes at `offset` of `fd` into `into`.
void read_exactly(int fd, const std::string& path, char* into, size_t n, size_t offset) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = pread(fd, into + done, n - done, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Error("cannot read " + path + ": " + errno_text());
    if (got == 0)
      throw Error("cannot read " + path + ": it ended after " + std::to_string(offset + done) +
                  " of " + std::to_string(offset + n) + " bytes (truncated while read?)");
    done += size_t(got);
  }
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

// A descriptor open for reading on a regular file, and the file's size.
struct RegularFile {
  int fd;
  uint64_t size;
};

// Opens the regular file at `path` for reading: nullopt if there is none;
// kappa::Error, naming the file and the reason, if it is something else (a
// FIFO is refused without waiting for a writer) or cannot be opened.
std::optional<RegularFile> open_regular_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw Error("cannot open " + path + ": " + errno_text());
  }
  FdCloser closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) throw Error("cannot stat " + path + ": " + errno_text());
  if (S_ISDIR(st.st_mode)) throw Error("cannot read " + path + ": " + std::strerror(EISDIR));
  if (!S_ISREG(st.st_mode))
    throw Error("cannot read " + path + ": not a regular file (" + file_type_name(st.st_mode) +
                ")");
  closer.fd = -1;  // the caller's now
  return RegularFile{fd, uint64_t(st.st_size)};
}

// Writers of this process so far: what makes each one's temporary file its own.
std::atomic<uint64_t> writers_started{0};

// Writes a value straight into its temporary file (PATH.tmp.PID.N), renamed
// over PATH at commit. Destroyed uncommitted, or once a write or the commit
// has failed, it leaves no temporary file behind.
class FileWriter final : public ValueWriter {
 public:
  FileWriter(std::string path, mode_t mode)
      : path_(std::move(path)),
        tmp_(path_ + ".tmp." + std::to_string(getpid()) + "." +
             std::to_string(writers_started.fetch_add(1))) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    if (ec) throw Error("cannot create the folder of " + path_ + ": " + ec.message());
    fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd_ < 0) throw Error("cannot create " + tmp_ + ": " + errno_text());
  }
  ~FileWriter() override { discard(); }

  void write(std::string_view bytes) override {
    check_open("write to");
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("cannot write " + tmp_ + ": " + errno_text());
      done += size_t(n);
    }
  }

  void commit() override {
    check_open("commit");
    // A file system that writes back late (NFS) reports failures at close.
    if (close(std::exchange(fd_, -1)) != 0) fail("cannot write " + tmp_ + ": " + errno_text());
    if (rename(tmp_.c_str(), path_.c_str()) != 0)
      fail("cannot rename " + tmp_ + " to " + path_ + ": " + errno_text());
    state_ = State::kCommitted;
  }

 private:
  enum class State { kOpen, kCommitted, kFailed };

  void check_open(const char* doing) const {
    if (state_ != State::kOpen)
      throw Error(std::string("cannot ") + doing + " " + path_ + ": its writer has " +
                  (state_ == State::kCommitted ? "committed" : "failed") + " already");
  }

  // Removes the temporary file, then throws `why`.
  [[noreturn]] void fail(const std::string& why) {
    discard();
    state_ = State::kFailed;
    throw Error(why);
  }

  void discard() noexcept {
    if (state_ != State::kOpen) return;
    if (fd_ >= 0) close(std::exchange(fd_, -1));
    unlink(tmp_.c_str());
  }

  std::string path_, tmp_;
  int fd_ = -1;
  State state_ = State::kOpen;
};

// Reads a value from the file it opened: a key replaced or removed meanwhile
// does not change what it reads.
class FileReader final : public ValueReader {
 public:
  FileReader(std::string path, RegularFile file) : path_(std::move(path)), file_(file) {}
  ~FileReader() override { close(file_.fd); }
  uint64_t size() const override { return file_.size; }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    check_read_range(offset, bytes, file_.size, path_);
    read_exactly(file_.fd, path_, dst, bytes, offset);
  }

 private:
  std::string path_;
  RegularFile file_;
};

class FileStore final : public CheckpointStore {
 public:
  FileStore(std::string dir, const StoreOptions& options)
      : dir_(std::move(dir)), mode_(options.shared ? 0666 : 0600) {
    std::error_code ec;
    if (!options.create) {
      if (!std::filesystem::is_directory(dir_, ec))
        throw Error(
            "checkpoint directory " + dir_ +
            (std::filesystem::exists(dir_, ec) ? " is not a directory" : " does not exist"));
      return;
    }
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw Error("cannot create checkpoint directory " + dir_ + ": " + ec.message());
  }

  void put(const std::string& key, std::string_view bytes) override {
    std::unique_ptr<ValueWriter> writer = put_stream(key);
    writer->write(bytes);
    writer->commit();
  }

  std::unique_ptr<ValueWriter> put_stream(const std::string& key) override {
    return std::make_unique<FileWriter>(path_of(key), mode_);
  }

  std::unique_ptr<ValueReader> open_value(const std::string& key) override {
    std::string path = path_of(key);
    std::optional<RegularFile> file = open_regular_file(path);
    if (!file) return nullptr;
    return std::make_unique<FileReader>(std::move(path), *file);
  }

  std::optional<std::string> get(const std::string& key) override {
    return read_regular_file(path_of(key));
  }

  std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                         const HeadCheck& check) override {
    return read_regular_file(path_of(key), head_bytes, check);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    // Keys may contain '/': walk the directory holding the prefix, and the
    // directories below it (never following symlinks).
    std::filesystem::path pp = std::filesystem::path(dir_) / prefix;
    std::filesystem::path dir = prefix.empty() || prefix.back() == '/' ? pp : pp.parent_path();
    std::vector<std::string> keys;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      // Entries that cannot be stat'ed (a symlink loop, say) are not keys.
      std::error_code type_ec;
      if (!it->is_regular_file(type_ec)) continue;
      // Lexically: a put's temporary file may be renamed away by now, and
      // std::filesystem::relative would look it up (and throw).
      std::string key = it->path().lexically_relative(dir_).string();
      if (key.rfind(prefix, 0) == 0 && key.find(".tmp.") == std::string::npos) keys.push_back(key);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  void remove(const std::string& key) override {
    std::string path = path_of(key);
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      throw Error("cannot remove " + path + ": " + errno_text());
  }

  void move(const std::string& from, const std::string& to) override {
    std::string source = path_of(from), target = path_of(to);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(target).parent_path(), ec);
    if (ec) throw Error("cannot create the folder of " + target + ": " + ec.message());
    if (rename(source.c_str(), target.c_str()) == 0) return;
    if (errno == ENOENT && access(source.c_str(), F_OK) != 0) {
      if (access(target.c_str(), F_OK) == 0) return;  // moved already
      throw Error("cannot move " + source + " to " + target + ": neither exists");
    }
    throw Error("cannot move " + source + " to " + target + ": " + errno_text());
  }

  void remove_prefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/')
      throw Error("remove_prefix needs a directory prefix ending in '/', not '" + prefix + "'");
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(path_of(prefix)), ec);
    if (ec) throw Error("cannot remove " + path_of(prefix) + ": " + ec.message());
  }

  std::string url() const override { return "file://" + dir_; }

 private:
  std::string path_of(const std::string& key) const {
    if (key.empty() || key.find("..") != std::string::npos || key.front() == '/')
      throw Error("invalid checkpoint key '" + key + "'");
    return dir_ + "/" + key;
  }
  std::string dir_;
  mode_t mode_;  // of the files it creates (before the umask)
};

}  // namespace

std::optional<std::string> read_regular_file(const std::string& path, size_t head_bytes,
                                             const HeadCheck& check) {
  std::optional<RegularFile> file = open_regular_file(path);
  if (!file) return std::nullopt;
  int fd = file->fd;
  FdCloser closer{fd};
  size_t size = size_t(file->size);
  // A large value's head is read and checked alone, so that a refused one (a
  // huge file where an image should be) is neither allocated for nor read. A
  // small one is read whole, then checked: the head's own read would cost a
  // system call, ~4 us here, a tenth of reading 1 MiB.
  bool head_first = check && size > kReadWholeBytes && head_bytes < size;
  std::string head;
  if (head_first) {
    head.resize(head_bytes);
    read_exactly(fd, path, head.data(), head.size(), 0);
    check(head, size);
  }
  std::string out = string_for_overwrite(size);
  std::memcpy(out.data(), head.data(), head.size());
  read_exactly(fd, path, out.data() + head.size(), size - head.size(), head.size());
  if (check && !head_first) check(std::string_view(out).substr(0, head_bytes), size);
  return out;
}

std::unique_ptr<CheckpointStore> open_file_store(const std::string& dir, const StoreOptions& o) {
  if (dir.empty()) throw Error("a file:// store URL needs a directory");
  return std::make_unique<FileStore>(dir, o);
}

}  // namespace kappa::detail
