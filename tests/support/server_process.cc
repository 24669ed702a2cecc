#include "support/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace kappa::testing {
namespace {

using Clock = std::chrono::steady_clock;

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  return a;
}

bool accepts_connections(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a = loopback(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// True once `pid` has exited (and reaps it).
bool exited(pid_t pid) {
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

}  // namespace

ScopedEnv::ScopedEnv(const std::vector<std::string>& entries) {
  for (const std::string& e : entries) {
    size_t eq = e.find('=');
    std::string name = e.substr(0, eq);
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (eq == std::string::npos)
      unsetenv(name.c_str());
    else
      setenv(name.c_str(), e.c_str() + eq + 1, 1);
  }
}

ScopedEnv::~ScopedEnv() {
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
    if (it->second)
      setenv(it->first.c_str(), it->second->c_str(), 1);
    else
      unsetenv(it->first.c_str());
  }
}

int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a = loopback(0);
  socklen_t n = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  close(fd);
  return ntohs(a.sin_port);
}

ServerProcess::ServerProcess(std::string name, Command command,
                             std::chrono::milliseconds ready_within)
    : name_(std::move(name)) {
  auto deadline = Clock::now() + ready_within;
  for (int tries = 1;; ++tries) {
    port_ = free_loopback_port();
    pid_ = spawn_process(command(port_), {}, dir_ / "out", dir_ / "err");
    bool gone = false;
    while (Clock::now() < deadline) {
      if (accepts_connections(port_)) return;
      if ((gone = exited(pid_))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string why = gone ? "exited at start" : "was not ready in time";
    if (!gone) stop();
    pid_ = 0;
    // Someone else may have taken the port in between: try another one.
    if (gone && tries < 3 && Clock::now() < deadline) continue;
    throw std::runtime_error(name_ + " " + why + " (port " + std::to_string(port_) +
                             "); it said:\n" + output());
  }
}

ServerProcess::~ServerProcess() { stop(); }

std::string ServerProcess::output() const {
  return read_file(dir_ / "out") + read_file(dir_ / "err");
}

void ServerProcess::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto until = Clock::now() + std::chrono::seconds(5);
  while (!exited(pid_)) {
    if (Clock::now() > until) {
      kill(pid_, SIGKILL);
      wait_process(pid_);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = 0;
}

}  // namespace kappa::testing
