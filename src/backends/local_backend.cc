#include "backends/local_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

extern char** environ;

namespace kappa::detail {
namespace {
std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}
}  // namespace

LocalBackend::LocalBackend(LocalBackendOptions options, Coordinator* coordinator)
    : options_(std::move(options)),
      coordinator_(coordinator),
      rng_(options_.seed ? options_.seed : std::random_device{}()) {
  reaper_ = std::thread([this] { reap(); });
  timer_ = std::thread([this] { kill_timer(); });
}

LocalBackend::~LocalBackend() { shutdown(); }

bool LocalBackend::launch_worker(uint64_t worker_id, bool on_coordinator, std::string* error) {
  std::vector<std::string> argv = {options_.executable, "worker", "--worker-id",
                                   std::to_string(worker_id)};
  argv.insert(argv.end(), options_.worker_args.begin(), options_.worker_args.end());
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  std::string log;
  if (!options_.log_dir.empty()) {
    log = options_.log_dir + "/worker-" + std::to_string(worker_id) + ".log";
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
  }
  std::lock_guard lock(mu_);  // held across spawn so the reaper cannot miss the pid
  pid_t pid = 0;
  int rc = posix_spawn(&pid, options_.executable.c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *error = options_.executable + ": " + strerror(rc);
    return false;
  }
  procs_[pid] = Proc{worker_id, on_coordinator, std::nullopt, std::nullopt, false};
  pid_of_[worker_id] = pid;
  cv_.notify_all();
  return true;
}

LocalBackend::Proc* LocalBackend::find(uint64_t worker_id) {
  auto it = pid_of_.find(worker_id);
  return it == pid_of_.end() ? nullptr : &procs_.at(it->second);
}

void LocalBackend::invocation_started(uint64_t worker_id) {
  std::lock_guard lock(mu_);
  Proc* found = find(worker_id);
  if (!found || found->on_coordinator) return;
  Proc& p = *found;
  auto now = Clock::now();
  p.kill_at.reset();
  p.chaos = false;
  if (options_.time_limit > 0) p.kill_at = now + seconds(options_.time_limit);
  p.started = now;
  if (options_.chaos_kill > 0 &&
      std::uniform_real_distribution<>(0, 1)(rng_) < options_.chaos_kill) {
    // A random moment of the invocation. Its length is unknown in advance,
    // so the moment is drawn within twice the mean invocation length seen so
    // far (and within the time limit): most drawn kills land while it runs.
    double span = std::max(0.001, 2 * mean_invocation_);
    if (options_.time_limit > 0) span = std::min(span, options_.time_limit);
    auto at = now + seconds(std::uniform_real_distribution<>(0, span)(rng_));
    if (!p.kill_at || at < *p.kill_at) {
      p.kill_at = at;
      p.chaos = true;
    }
  }
  cv_.notify_all();
}

void LocalBackend::invocation_ended(uint64_t worker_id) {
  std::lock_guard lock(mu_);
  Proc* found = find(worker_id);
  if (!found) return;
  Proc& p = *found;
  p.kill_at.reset();
  if (p.started) {
    double seconds = std::chrono::duration<double>(Clock::now() - *p.started).count();
    mean_invocation_ = mean_invocation_ == 0 ? seconds : 0.9 * mean_invocation_ + 0.1 * seconds;
    p.started.reset();
  }
}

void LocalBackend::kill_timer() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    std::optional<Clock::time_point> earliest;
    auto now = Clock::now();
    for (auto& [pid, p] : procs_) {
      if (!p.kill_at) continue;
      if (*p.kill_at <= now) {
        ::kill(pid, SIGKILL);
        if (p.chaos) ++chaos_kills_;
        p.kill_at.reset();
      } else if (!earliest || *p.kill_at < *earliest) {
        earliest = p.kill_at;
      }
    }
    if (earliest)
      cv_.wait_until(lock, *earliest);
    else
      cv_.wait(lock);
  }
}

// Polls this backend's own workers (never waitpid(-1): other children of
// the process are not ours to reap). Every 2 ms: a death is noticed well
// within the 100 ms the coordinator promises.
void LocalBackend::reap() {
  for (;;) {
    std::vector<std::pair<uint64_t, int>> exited;  // worker, status
    {
      std::unique_lock lock(mu_);
      if (stopping_ && procs_.empty()) return;
      for (auto it = procs_.begin(); it != procs_.end();) {
        int status = 0;
        if (waitpid(it->first, &status, WNOHANG) == it->first) {
          if (!stopping_) exited.emplace_back(it->second.worker_id, status);
          pid_of_.erase(it->second.worker_id);
          it = procs_.erase(it);
        } else {
          ++it;
        }
      }
      if (exited.empty()) reaper_cv_.wait_for(lock, std::chrono::milliseconds(2));
    }
    for (auto [worker_id, status] : exited) {
      std::string why = WIFSIGNALED(status)
                            ? std::string("killed by SIG") + sigabbrev_np(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")"
                            : "exited with status " + std::to_string(WEXITSTATUS(status));
      coordinator_->worker_exited(worker_id, why);
    }
  }
}

void LocalBackend::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [pid, p] : procs_) ::kill(pid, SIGKILL);
    cv_.notify_all();
  }
  if (timer_.joinable()) timer_.join();
  if (reaper_.joinable()) reaper_.join();  // returns once every worker is reaped
}

uint64_t LocalBackend::chaos_kills() const {
  std::lock_guard lock(mu_);
  return chaos_kills_;
}

}  // namespace kappa::detail
