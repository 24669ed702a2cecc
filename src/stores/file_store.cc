// FileStore: checkpoints as files under a directory (file://DIR).
// Atomic put: write KEY.tmp.PID, then rename over KEY. No fsync: a checkpoint
// must survive the death of the process that wrote it, not of the machine.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"

namespace kappa::detail {
namespace {

std::string errno_text() { return std::strerror(errno); }

class FileStore final : public CheckpointStore {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw Error("cannot create checkpoint directory " + dir_ + ": " + ec.message());
  }

  void put(const std::string& key, std::string_view bytes) override {
    std::string path = path_of(key);
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw Error("cannot create " + tmp + ": " + errno_text());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::string why = errno_text();
        close(fd);
        unlink(tmp.c_str());
        throw Error("cannot write " + tmp + ": " + why);
      }
      done += size_t(n);
    }
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      std::string why = errno_text();
      unlink(tmp.c_str());
      throw Error("cannot rename " + tmp + " to " + path + ": " + why);
    }
  }

  std::optional<std::string> get(const std::string& key) override {
    std::string path = path_of(key);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::nullopt;
      throw Error("cannot open " + path + ": " + errno_text());
    }
    std::string out;
    off_t size = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    out.resize(size > 0 ? size_t(size) : 0);
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = read(fd, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += size_t(n);
    }
    close(fd);
    out.resize(done);
    return out;
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
      std::error_code type_ec;
      if (!it->is_regular_file(type_ec)) continue;
      std::string key = std::filesystem::relative(it->path(), dir_).string();
      if (key.rfind(prefix, 0) == 0 && key.find(".tmp.") == std::string::npos) keys.push_back(key);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  void remove(const std::string& key) override { unlink(path_of(key).c_str()); }

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
};

}  // namespace

std::unique_ptr<CheckpointStore> open_file_store(const std::string& dir, const StoreOptions& o) {
  if (dir.empty()) throw Error("a file:// store URL needs a directory");
  if (!o.create && !std::filesystem::is_directory(dir))
    throw Error("checkpoint directory " + dir + " does not exist");
  return std::make_unique<FileStore>(dir);
}

}  // namespace kappa::detail
