// LocalBackend: workers as processes of the application binary on this
// machine (DESIGN.md section 6).
//
// Each invocation (one task handed to a worker) is killed with SIGKILL at the
// time limit, like a Lambda; workers are reused between invocations;
// --chaos-kill P kills an invocation at a random moment with probability P.
// A worker's exit is seen within a few milliseconds (a thread polls waitpid
// on each worker) and reported with its cause: the backend knows which kills
// were its own (chaos, time limit, hung), the rest is the exit status.
//
// Workers die with the coordinator: they are spawned from a thread of this
// backend that lives as long as it does, and ask the kernel for SIGKILL when
// that thread's process goes away (the worker's --watch-parent).
//
// Threads: a spawner, a reaper and a kill timer, all owned here. Lock order:
// the coordinator calls in with its lock held, so events are reported with
// no lock of this backend held.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "backends/backend.h"
#include "kappa/error.h"
#include "util/chaos.h"

extern char** environ;

namespace kappa::detail {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

class LocalBackend final : public Backend {
 public:
  LocalBackend(BackendConfig config, WorkerEvents* events)
      : config_(std::move(config)),
        events_(events),
        rng_(config_.seed ? config_.seed : std::random_device{}()) {
    spawner_ = std::thread([this] { spawn_loop(); });
    reaper_ = std::thread([this] { reap(); });
    timer_ = std::thread([this] { kill_timer(); });
  }
  ~LocalBackend() override { shutdown(); }  // not concurrently with another shutdown()

  void launch_worker(uint64_t worker_id, bool on_coordinator) override {
    std::future<std::string> done;
    {
      std::lock_guard lock(mu_);
      if (stopping_) throw Error("the local backend is shutting down");
      spawn_requests_.push_back({worker_id, on_coordinator, {}});
      done = spawn_requests_.back().done.get_future();
    }
    spawn_cv_.notify_one();
    // The spawner's error travels as its message, thrown anew here: an
    // exception object shared between threads is reference-counted inside
    // libstdc++, where ThreadSanitizer cannot see it (it reported a race on
    // the promise's state as the spawner dropped it).
    if (std::string error = done.get(); !error.empty()) throw Error(error);
  }

  void invocation_started(uint64_t worker_id) override {
    std::lock_guard lock(mu_);
    Proc* p = find(worker_id);
    if (!p || p->on_coordinator) return;
    auto now = Clock::now();
    p->kill_at.reset();
    p->kill_for = WorkerExit::Cause::kTimeLimit;
    if (config_.time_limit > 0) p->kill_at = now + seconds(config_.time_limit);
    p->started = now;
    if (config_.chaos_kill > 0 &&
        std::uniform_real_distribution<>(0, 1)(rng_) < config_.chaos_kill) {
      // A random moment of the invocation (util/chaos.h).
      double span = chaos_kill_span(mean_invocation_, config_.time_limit, 0.001);
      auto at = now + seconds(std::uniform_real_distribution<>(0, span)(rng_));
      if (!p->kill_at || at < *p->kill_at) {
        p->kill_at = at;
        p->kill_for = WorkerExit::Cause::kChaosKill;
      }
    }
    // Every invocation starts one: the kill timer is woken only when it
    // must fire sooner than it would (waking it costs this call's thread,
    // and the worker it answers, a thread switch on a small machine).
    if (p->kill_at && (!timer_wake_ || *p->kill_at < *timer_wake_)) timer_cv_.notify_one();
  }

  void invocation_ended(uint64_t worker_id) override {
    std::lock_guard lock(mu_);
    Proc* p = find(worker_id);
    if (!p) return;
    p->kill_at.reset();
    if (p->started) {
      double s = std::chrono::duration<double>(Clock::now() - *p->started).count();
      mean_invocation_ = mean_invocation_ == 0 ? s : 0.9 * mean_invocation_ + 0.1 * s;
      p->started.reset();
    }
  }

  void kill_worker(uint64_t worker_id, WorkerExit::Cause why) override {
    std::lock_guard lock(mu_);
    auto it = pid_of_.find(worker_id);
    if (it == pid_of_.end()) return;
    Proc& p = procs_.at(it->second);
    if (!p.killed) {
      p.killed = why;
      ::kill(it->second, SIGKILL);
    }
  }

  double time_limit(bool on_coordinator) const override {
    return on_coordinator ? 0 : config_.time_limit;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;  // shut down already (or being shut down)
      stopping_ = true;
      for (auto& [pid, p] : procs_) ::kill(pid, SIGKILL);
    }
    spawn_cv_.notify_all();
    timer_cv_.notify_all();
    spawner_.join();
    timer_.join();
    reaper_.join();  // returns once every worker is reaped
  }

  uint64_t chaos_kills() const override {
    std::lock_guard lock(mu_);
    return chaos_kills_;
  }

 private:
  struct Proc {
    uint64_t worker_id = 0;
    bool on_coordinator = false;
    std::optional<Clock::time_point> kill_at;  // of the current invocation
    WorkerExit::Cause kill_for = WorkerExit::Cause::kTimeLimit;
    std::optional<Clock::time_point> started;  // of the current invocation
    std::optional<WorkerExit::Cause> killed;   // by this backend, and why
  };
  struct SpawnRequest {
    uint64_t worker_id;
    bool on_coordinator;
    std::promise<std::string> done;  // the error; empty: started
  };

  Proc* find(uint64_t worker_id) {  // mu_ held
    auto it = pid_of_.find(worker_id);
    return it == pid_of_.end() ? nullptr : &procs_.at(it->second);
  }

  void spawn_loop() {
    // Workers run with ASLR off (runtime/layout.h): personality is a property
    // of the thread in Linux, inherited by the processes it starts, so this
    // thread sets it and the coordinator itself need not re-execute for it.
    // Where it cannot be set, each worker re-executes itself instead.
    if (int p = personality(0xffffffff); p != -1) personality(unsigned(p) | ADDR_NO_RANDOMIZE);
    std::unique_lock lock(mu_);
    for (;;) {
      spawn_cv_.wait(lock, [&] { return stopping_ || !spawn_requests_.empty(); });
      if (spawn_requests_.empty()) return;  // stopping
      SpawnRequest r = std::move(spawn_requests_.front());
      spawn_requests_.pop_front();
      if (stopping_) {
        r.done.set_value("the local backend is shutting down");
        continue;
      }
      // Held across the spawn so that the reaper cannot miss the pid.
      try {
        spawn(r.worker_id, r.on_coordinator);
        r.done.set_value("");
      } catch (const std::exception& e) {
        r.done.set_value(e.what());
      } catch (...) {
        r.done.set_value("cannot start a worker (an unknown error)");
      }
    }
  }

  void spawn(uint64_t worker_id, bool on_coordinator) {  // mu_ held
    std::vector<std::string> argv = {config_.executable, "worker",
                                     "--worker-id",      std::to_string(worker_id),
                                     "--watch-parent",   std::to_string(getpid())};
    argv.insert(argv.end(), config_.worker_args.begin(), config_.worker_args.end());
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    std::string log;
    if (!config_.log_dir.empty()) {
      log = config_.log_dir + "/worker-" + std::to_string(worker_id) + ".log";
      posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644);
    }
    pid_t pid = 0;
    int rc = posix_spawn(&pid, config_.executable.c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw Error(config_.executable + ": " + std::strerror(rc));
    procs_[pid] = Proc{.worker_id = worker_id, .on_coordinator = on_coordinator};
    pid_of_[worker_id] = pid;
  }

  void kill_timer() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      std::optional<Clock::time_point> earliest;
      auto now = Clock::now();
      for (auto& [pid, p] : procs_) {
        if (!p.kill_at) continue;
        if (*p.kill_at <= now) {
          if (!p.killed) {
            p.killed = p.kill_for;
            ::kill(pid, SIGKILL);
            if (p.kill_for == WorkerExit::Cause::kChaosKill) ++chaos_kills_;
          }
          p.kill_at.reset();
        } else if (!earliest || *p.kill_at < *earliest) {
          earliest = p.kill_at;
        }
      }
      timer_wake_ = earliest;
      if (earliest)
        timer_cv_.wait_until(lock, *earliest);
      else
        timer_cv_.wait(lock);
    }
  }

  static WorkerExit exit_of(int status, std::optional<WorkerExit::Cause> killed) {
    WorkerExit e;
    if (WIFSIGNALED(status)) {
      e.signal = WTERMSIG(status);
      e.cause = killed && e.signal == SIGKILL ? *killed : WorkerExit::Cause::kCrashed;
    } else {
      e.cause = WorkerExit::Cause::kExited;
      e.status = WEXITSTATUS(status);
    }
    return e;
  }

  // Polls this backend's own workers (never waitpid(-1): other children of
  // the process are not ours to reap). Every 2 ms: a death is noticed well
  // within the 100 ms the coordinator promises.
  void reap() {
    for (;;) {
      std::vector<std::pair<uint64_t, WorkerExit>> exited;
      {
        std::unique_lock lock(mu_);
        if (stopping_ && procs_.empty()) return;
        for (auto it = procs_.begin(); it != procs_.end();) {
          int status = 0;
          if (waitpid(it->first, &status, WNOHANG) == it->first) {
            if (!stopping_)
              exited.emplace_back(it->second.worker_id, exit_of(status, it->second.killed));
            pid_of_.erase(it->second.worker_id);
            it = procs_.erase(it);
          } else {
            ++it;
          }
        }
        if (exited.empty()) reaper_cv_.wait_for(lock, std::chrono::milliseconds(2));
      }
      for (auto& [worker_id, exit] : exited) events_->worker_exited(worker_id, exit);
    }
  }

  BackendConfig config_;
  WorkerEvents* events_;
  mutable std::mutex mu_;
  std::condition_variable spawn_cv_;   // spawn requests, stopping
  std::condition_variable timer_cv_;   // a kill sooner than timer_wake_, stopping
  std::condition_variable reaper_cv_;  // paces the reaper's polling
  std::deque<SpawnRequest> spawn_requests_;
  std::map<pid_t, Proc> procs_;
  std::map<uint64_t, pid_t> pid_of_;
  std::mt19937_64 rng_;
  bool stopping_ = false;
  uint64_t chaos_kills_ = 0;
  double mean_invocation_ = 0;  // seconds, moving average of finished invocations
  // When the kill timer wakes next (none: only when notified).
  std::optional<Clock::time_point> timer_wake_;
  std::thread spawner_, reaper_, timer_;
};

}  // namespace

std::unique_ptr<Backend> make_local_backend(const BackendConfig& config, WorkerEvents* events) {
  return std::make_unique<LocalBackend>(config, events);
}

}  // namespace kappa::detail
