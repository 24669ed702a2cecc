#include "support/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

namespace kappa::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool can_bind(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(port);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
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

bool accepts_connections(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a = loopback(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

int free_loopback_port() {
  int low = 32768;  // the kernel's default
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low;
  std::random_device seed;
  std::mt19937 rng(seed());
  int lowest = 10000;
  if (low - 1 < lowest) throw std::runtime_error("no ports below the ephemeral range");
  std::uniform_int_distribution<int> pick(lowest, low - 1);
  for (int i = 0; i < 1000; ++i)
    if (int port = pick(rng); can_bind(port)) return port;
  throw std::runtime_error("no free loopback port below the ephemeral range");
}

bool tcp_answers(int port, std::string_view request, const std::vector<std::string>& answers,
                 std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{time_t(timeout.count() / 1000), suseconds_t(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a = loopback(port);
  std::string got;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) got.assign(buf, size_t(n));
  }
  close(fd);
  for (const std::string& answer : answers)
    if (got.starts_with(answer)) return true;
  return false;
}

std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

ServerProcess::ServerProcess(Spec spec) : spec_(std::move(spec)) {
  // The port was free a moment ago; if someone took it since, the server
  // exits at once, and another port is tried.
  for (int i = 0; i < 5; ++i) {
    port_ = free_loopback_port();
    if (try_start()) return;
  }
  throw std::runtime_error(spec_.name + " did not start; its output:\n" + output());
}

ServerProcess::~ServerProcess() {
  if (running()) stop(SIGKILL);
}

void ServerProcess::start() {
  if (running()) throw std::logic_error(spec_.name + " is running already");
  if (!try_start())
    throw std::runtime_error(spec_.name + " did not start again on port " + std::to_string(port_) +
                             "; its output:\n" + output());
}

bool ServerProcess::try_start() {
  pid_ = spawn_process(spec_.argv(port_, dir()), {}, dir_ / "server.out", dir_ / "server.err");
  auto deadline = Clock::now() + spec_.start_timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {  // it gave up (port taken?)
      pid_ = -1;
      return false;
    }
    if (spec_.ready(port_)) return true;
    std::this_thread::sleep_for(10ms);
  }
  stop(SIGKILL);
  return false;
}

void ServerProcess::stop(int signal) {
  if (!running()) return;
  kill(pid_, signal);
  auto deadline = Clock::now() + 10s;
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno != EINTR)) break;
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  pid_ = -1;
}

std::string ServerProcess::output() const {
  return read_file(dir_ / "server.out") + read_file(dir_ / "server.err");
}

ServerProcess::Spec redis_server(RedisOptions options) {
  std::string program = find_program("redis-server");
  if (program.empty())
    throw std::runtime_error("redis-server is not in PATH (scripts/setup.sh installs it)");
  ServerProcess::Spec spec;
  spec.name = "redis-server";
  spec.argv = [program, options](int port, const std::string& dir) {
    std::vector<std::string> argv = {program,
                                     "--port",
                                     std::to_string(port),
                                     "--bind",
                                     "127.0.0.1",
                                     "--dir",
                                     dir,
                                     "--daemonize",
                                     "no",
                                     "--save",
                                     "",
                                     "--logfile",
                                     "",
                                     "--appendonly",
                                     options.persistent ? "yes" : "no"};
    if (options.persistent) argv.insert(argv.end(), {"--appendfsync", "always"});
    argv.insert(argv.end(), options.args.begin(), options.args.end());
    return argv;
  };
  // A server with a password answers PING with NOAUTH: it is up all the same.
  spec.ready = [](int port) { return tcp_answers(port, "PING\r\n", {"+PONG", "-NOAUTH"}); };
  return spec;
}

std::string redis_cli(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {find_program("redis-cli"), "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = run_process(argv);
  if (r.exit_code != 0) throw std::runtime_error("redis-cli failed: " + r.err);
  if (r.out.ends_with('\n')) r.out.pop_back();
  return r.out;
}

}  // namespace kappa::testing
