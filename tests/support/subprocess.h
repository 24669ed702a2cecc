// Test helpers: temporary directories and child processes.
#pragma once

#include <sys/types.h>

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
};

/// Runs argv to completion with stdout and stderr captured. `env` entries
/// ("NAME=value") are added to the environment.
ProcessResult run_process(const std::vector<std::string>& argv,
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
