#include "runtime/key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kappa/error.h"
#include "util/hex.h"

namespace kappa::detail {
namespace {

constexpr size_t kMinKeyChars = 16;

std::string read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read the checkpoint key file " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < kMinKeyChars)
    throw Error("the checkpoint key in " + path + " is shorter than 16 characters");
  return key;
}

std::string default_key_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
    return std::string(xdg) + "/kappa/key";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.config/kappa/key";
}

std::string create_key_file(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string hex = random_hex(32);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return read_key_file(path);  // another process won the race
    throw Error("cannot create the checkpoint key file " + path + ": " + std::strerror(errno));
  }
  std::string line = hex + "\n";
  bool ok = write(fd, line.data(), line.size()) == ssize_t(line.size());
  close(fd);
  if (!ok) throw Error("cannot write the checkpoint key file " + path);
  return hex;
}

}  // namespace

std::string load_key() {
  if (const char* k = std::getenv("KAPPA_KEY"); k && *k) {
    if (std::strlen(k) < kMinKeyChars) throw Error("KAPPA_KEY is shorter than 16 characters");
    return k;
  }
  if (const char* f = std::getenv("KAPPA_KEY_FILE"); f && *f) return read_key_file(f);
  std::string path = default_key_path();
  if (access(path.c_str(), F_OK) == 0) return read_key_file(path);
  return create_key_file(path);
}

}  // namespace kappa::detail
