#include "support/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kappa::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kappa-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

pid_t start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& out, const std::string& err) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

int wait_process(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1000;
  }
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env) {
  TempDir io;
  pid_t pid = start(argv, env, io / "out", io / "err");
  int code = wait_process(pid);
  ProcessResult r;
  if (code < 0) {
    r.signal = -code;
  } else {
    r.exit_code = code;
  }
  r.out = read_file(io / "out");
  r.err = read_file(io / "err");
  return r;
}

namespace {

// Resident memory of a live process, from /proc/PID/statm (in pages).
size_t rss_bytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * size_t(sysconf(_SC_PAGESIZE));
}

}  // namespace

ProcessResult run_process_bounded(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout, size_t max_rss_bytes,
                                  const std::vector<std::string>& env) {
  TempDir io;
  pid_t pid = start(argv, env, io / "out", io / "err");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  ProcessResult r;
  int status = 0;
  rusage usage{};
  for (;;) {
    pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw std::runtime_error("wait4 failed");
    if (r.killed_for.empty()) {
      if (std::chrono::steady_clock::now() > deadline)
        r.killed_for = "ran longer than " + std::to_string(timeout.count()) + " ms";
      else if (rss_bytes(pid) > max_rss_bytes)
        r.killed_for = "resident memory above " + std::to_string(max_rss_bytes) + " bytes";
      if (!r.killed_for.empty()) kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFSIGNALED(status))
    r.signal = WTERMSIG(status);
  else
    r.exit_code = WEXITSTATUS(status);
  r.max_rss_bytes = size_t(usage.ru_maxrss) * 1024;
  r.out = read_file(io / "out");
  r.err = read_file(io / "err");
  return r;
}

pid_t spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  return start(argv, env, "/dev/null", "/dev/null");
}

pid_t spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& out, const std::string& err) {
  return start(argv, env, out, err);
}

namespace {
// Fields of /proc/PID/stat after the command: state, ppid.
bool stat_of(pid_t pid, char* state, pid_t* ppid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(s.substr(close + 2));
  return bool(rest >> *state >> *ppid);
}
}  // namespace

std::vector<pid_t> child_processes(pid_t parent) {
  std::vector<pid_t> out;
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    char state;
    pid_t ppid;
    pid_t pid = std::stoi(name);
    if (stat_of(pid, &state, &ppid) && ppid == parent && state != 'Z') out.push_back(pid);
  }
  return out;
}

bool process_gone(pid_t pid) {
  char state;
  pid_t ppid;
  return !stat_of(pid, &state, &ppid) || state == 'Z' || state == 'X';
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace kappa::testing
