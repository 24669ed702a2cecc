// Test helpers: temporary directories and child processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace kappa::testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
  // run_process_bounded: why the process was killed ("" if it was not), and
  // its peak resident memory.
  std::string killed_for;
  size_t max_rss_bytes = 0;
};

/// Runs argv to completion with stdout and stderr captured. `env` entries
/// ("NAME=value") are added to the environment.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env = {});

/// Like run_process, for commands that must finish quickly in little memory:
/// kills the process with SIGKILL once it has run for `timeout` or its
/// resident memory exceeds `max_rss_bytes` (sampled every few milliseconds),
/// and says which in killed_for.
ProcessResult run_process_bounded(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout, size_t max_rss_bytes,
                                  const std::vector<std::string>& env = {});

/// Starts argv with stdout/stderr sent to /dev/null; returns its pid.
pid_t spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

/// Starts argv with stdout and stderr sent to the files `out` and `err`.
pid_t spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& out, const std::string& err);

/// Waits for pid; returns its exit code, or -signal when killed by a signal.
int wait_process(pid_t pid);

/// The processes whose parent is `parent` (from /proc).
std::vector<pid_t> child_processes(pid_t parent);

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
bool process_gone(pid_t pid);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

}  // namespace kappa::testing
