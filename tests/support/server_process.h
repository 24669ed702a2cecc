// A server a test runs for itself on loopback (s3rver, a proxy, a
// redis-server...): started on a free port, ready once that port accepts
// connections, stopped by its pid when the test is done.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {

/// Sets environment variables ("NAME=value", or "NAME" to unset it) for
/// its lifetime, then puts back what was there. Not for use while other
/// threads read the environment.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::string>& entries);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// A TCP port on 127.0.0.1 that nothing listens on (it may be taken again
/// before it is used: ServerProcess tries another one then).
int free_loopback_port();

class ServerProcess {
 public:
  /// The command line that serves on a given port.
  using Command = std::function<std::vector<std::string>(int port)>;

  /// Starts `command` (argv[0] an absolute path) on a free port of
  /// 127.0.0.1 and waits until that port accepts connections. Throws
  /// std::runtime_error, with what the server printed, if it exits first or
  /// is not ready within `ready_within`.
  ServerProcess(std::string name, Command command,
                std::chrono::milliseconds ready_within = std::chrono::seconds(30));
  ~ServerProcess();  // stop()
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "http://127.0.0.1:PORT".
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// What the server wrote to stdout and stderr so far.
  std::string output() const;
  /// SIGTERM, then SIGKILL if it is still there 5 s later; waits for it.
  /// Idempotent.
  void stop();

 private:
  std::string name_;
  TempDir dir_;  // its stdout and stderr
  int port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace kappa::testing
