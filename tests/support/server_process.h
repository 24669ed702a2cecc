// Servers for tests: a server process (redis-server, s3rver, a proxy...)
// started on a free loopback port with a temporary directory of its own,
// ready once it answers, and stopped by its pid. Stopping and starting again keeps the port
// and the directory, as a server restarting would.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
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

/// A TCP port on 127.0.0.1 that is free now, chosen below the kernel's
/// ephemeral range: a client retrying connections to a stopped server can
/// then never be handed the server's port as its own.
int free_loopback_port();

/// Connects to 127.0.0.1:port, sends `request`, and says whether the answer
/// starts with one of `answers` (within `timeout`).
bool tcp_answers(int port, std::string_view request, const std::vector<std::string>& answers,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

/// True if something accepts connections on 127.0.0.1:port.
bool accepts_connections(int port);

/// The full path of `program` found in $PATH, or "" if it is not there.
std::string find_program(const std::string& program);

class ServerProcess {
 public:
  struct Spec {
    std::string name;  // for messages: "redis-server"
    /// The command line for a port and the server's own directory.
    std::function<std::vector<std::string>(int port, const std::string& dir)> argv;
    /// True once the server on `port` serves.
    std::function<bool(int port)> ready;
    std::chrono::milliseconds start_timeout{20000};
  };

  /// Starts the server on a free port; throws std::runtime_error (with the
  /// server's output) if it does not become ready.
  explicit ServerProcess(Spec spec);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  /// Starts it again, on the same port with the same directory.
  void start();
  /// Sends `signal` and waits for the process to end (SIGKILL after 10 s).
  void stop(int signal);
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  /// "http://127.0.0.1:PORT".
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_.path(); }
  /// What the server wrote on stdout and stderr since it last started.
  std::string output() const;

 private:
  bool try_start();
  Spec spec_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

struct RedisOptions {
  bool persistent = false;        // appendonly yes, appendfsync always (else no persistence at all)
  std::vector<std::string> args;  // more options: {"--requirepass", "secret"}
};

/// A redis-server on loopback: its own port and directory, no persistence
/// unless asked.
ServerProcess::Spec redis_server(RedisOptions options = {});

/// Runs redis-cli against the server on `port` (args after "-p PORT"), and
/// returns its output without the final newline; throws if it fails.
std::string redis_cli(int port, const std::vector<std::string>& args);

}  // namespace kappa::testing
