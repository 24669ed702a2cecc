#include "worker/liveness.h"

#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "kappa/error.h"
#include "rpc/client.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

std::atomic<uint64_t> g_task{0};
// The crash pipe: the handler writes, the liveness thread reads. The ack
// pipe: the other way. -1 while no liveness thread runs.
std::atomic<int> g_crash_write{-1}, g_ack_read{-1};
int g_crash_read = -1, g_ack_write = -1;

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kAckWaitMs = 2000;

// Async-signal-safe output helpers: write(2) only.
void put(int fd, const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= size_t(w);
  }
}

void put_number(int fd, uint64_t v) {
  char buf[24];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do {
    *--p = char('0' + v % 10);
    v /= 10;
  } while (v);
  put(fd, p);
}

void on_fatal_signal(int sig) {
  int saved = errno;
  void* frames[64];
  int n = backtrace(frames, 64);
  const char* abbrev = sigabbrev_np(sig);  // a table lookup
  put(STDERR_FILENO, "kappa worker: fatal signal SIG");
  put(STDERR_FILENO, abbrev ? abbrev : "?");
  put(STDERR_FILENO, " in task ");
  put_number(STDERR_FILENO, g_task.load(std::memory_order_relaxed));
  put(STDERR_FILENO, "; backtrace:\n");
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  int pipe_fd = g_crash_write.load(std::memory_order_acquire);
  int ack_fd = g_ack_read.load(std::memory_order_acquire);
  if (pipe_fd >= 0 && ack_fd >= 0) {
    // The report: "SIGNAL TASK\n", the backtrace, then a NUL.
    put_number(pipe_fd, uint64_t(sig));
    put(pipe_fd, " ");
    put_number(pipe_fd, g_task.load(std::memory_order_relaxed));
    put(pipe_fd, "\n");
    backtrace_symbols_fd(frames, n, pipe_fd);
    char nul = '\0';
    ssize_t ignored = write(pipe_fd, &nul, 1);
    (void)ignored;
    pollfd p{ack_fd, POLLIN, 0};
    poll(&p, 1, kAckWaitMs);
  }
  errno = saved;
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void install_crash_handlers() {
  static bool installed = [] {
    void* warm[1];
    backtrace(warm, 1);  // loads libgcc now, not inside the signal handler
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (int sig : kFatalSignals) sigaction(sig, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

void Liveness::set_task(uint64_t task) { g_task.store(task, std::memory_order_relaxed); }

Liveness::Liveness(CoordinatorClient& client, std::chrono::milliseconds interval)
    : client_(client), interval_(interval) {
  int crash[2], ack[2];
  if (pipe2(crash, O_CLOEXEC) != 0 || pipe2(ack, O_CLOEXEC) != 0 ||
      pipe2(stop_pipe_, O_CLOEXEC) != 0)
    throw Error(std::string("cannot create the liveness pipes: ") + std::strerror(errno));
  g_crash_read = crash[0];
  g_ack_write = ack[1];
  g_ack_read.store(ack[0], std::memory_order_release);
  g_crash_write.store(crash[1], std::memory_order_release);
  install_crash_handlers();
  thread_ = std::thread([this] { run(); });
}

Liveness::~Liveness() {
  char b = 0;
  ssize_t ignored = write(stop_pipe_[1], &b, 1);
  (void)ignored;
  thread_.join();
  g_crash_write.store(-1, std::memory_order_release);
  g_ack_read.store(-1, std::memory_order_release);
  for (int fd : {g_crash_read, g_ack_write, stop_pipe_[0], stop_pipe_[1]}) close(fd);
}

void Liveness::run() {
  for (bool first = true;; first = false) {
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {g_crash_read, POLLIN, 0}};
    int r = poll(fds, 2, first ? 0 : int(interval_.count()));  // the first one at once
    if (r < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    if (fds[1].revents && relay_crash()) continue;
    try {
      client_.heartbeat();
    } catch (const std::exception& e) {
      // Nobody will hand this worker's results on: stop computing now.
      spdlog::error("the coordinator is gone ({}); exiting", e.what());
      _exit(1);
    }
  }
}

// Reads the handler's report (up to its NUL), sends it, and acknowledges.
bool Liveness::relay_crash() {
  std::string report;
  char buf[4096];
  for (;;) {
    pollfd p{g_crash_read, POLLIN, 0};
    if (poll(&p, 1, kAckWaitMs) <= 0) break;
    ssize_t n = read(g_crash_read, buf, sizeof buf);
    if (n <= 0) break;
    report.append(buf, size_t(n));
    if (report.back() == '\0') {
      report.pop_back();
      break;
    }
  }
  if (report.empty()) return false;
  size_t eol = report.find('\n');
  int sig = 0;
  uint64_t task = 0;
  std::sscanf(report.substr(0, eol).c_str(), "%d %" SCNu64, &sig, &task);
  try {
    client_.crash_report(task, sig, eol == std::string::npos ? "" : report.substr(eol + 1));
  } catch (const std::exception&) {
  }
  char ack = 1;
  ssize_t ignored = write(g_ack_write, &ack, 1);
  (void)ignored;
  return true;
}

}  // namespace kappa::detail
