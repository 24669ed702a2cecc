// SlurmBackend: each worker is a Slurm batch job (DESIGN.md section 6).
//
// launch_worker submits one `sbatch` job per worker: a generated bash script
// that runs `APP worker ...` with `--lifetime` = --time-limit, and a job time
// of --time-limit rounded up to whole minutes (Slurm's unit). The worker
// hands its task over before the end of its lifetime by itself; Slurm's
// pre-timeout signal (--signal=B:USR1@30) reaches the script, which forwards
// it to the worker: SIGUSR1 = checkpoint now, hand the task over and leave.
// A parked task is a finished job; a relaunch is a new job, a new worker.
//
// Exits: the script writes the worker's exit status (128 + N for signal N)
// to worker-ID.status before it ends; a worker killed by --chaos-kill (done
// by the worker itself, self_chaos.h: Slurm cannot kill at a precise moment)
// first creates worker-ID.chaos. A job that ends without a status file
// (cancelled, preempted, node failure, killed at its time limit) is found by
// polling squeue and reported lost (time limit: Slurm says TIMEOUT); so is a
// worker killed by SIGTERM or SIGKILL that Slurm says it cancelled. These
// files and the jobs' output live in a directory `kappa-slurm-JOB` of the
// --log-dir, or else of the current directory, removed at shutdown:
// either must be on a file system the nodes share with this machine, as must
// the application binary and a file:// store (or use s3://).
//
// Requeued jobs: submitted with --no-requeue; should one run again all the
// same (an administrator's requeue), its script finds worker-ID.started and
// exits without starting a second copy of the worker, which the coordinator
// would refuse anyway (a worker reported gone is never given work).
//
// on_coordinator workers run on this machine, through the local backend:
// they have no time limit, which a Slurm job always has.
//
// Threads: a poller (status files every 50 ms, squeue every second, scancel
// requests) owned here. The coordinator calls in with its lock held, so
// events are reported with no lock of this backend held, and kill_worker
// only queues the scancel.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "backends/backend.h"
#include "kappa/error.h"

extern char** environ;

namespace kappa::detail {

std::unique_ptr<Backend> make_local_backend(const BackendConfig& config, WorkerEvents* events);

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Seconds before the end of a job at which Slurm sends the pre-timeout
// signal. Slurm looks at time limits every 30 s: a smaller warning could come
// after the kill; and the worker, with a lifetime of its own, usually hands
// over before anyway.
constexpr int kSignalSeconds = 30;

struct CommandResult {
  int status = -1;  // the exit status; -1: killed by a signal
  std::string out, err;
};

// Runs argv[0] (found in $PATH) to completion and captures its output.
CommandResult run_command(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw Error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (std::string& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, copy[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw Error("cannot run " + argv[0] + ": " + std::strerror(rc) +
                " (Slurm's client commands must be in PATH)");
  }
  CommandResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* into[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        into[i]->append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// A word for bash, in single quotes.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Job states after which a job runs no more (squeue's long names).
bool terminal_state(const std::string& state) {
  static const std::set<std::string> kEnded = {
      "BOOT_FAIL", "CANCELLED", "COMPLETED",    "DEADLINE", "FAILED",       "NODE_FAIL",
      "PREEMPTED", "TIMEOUT",   "SPECIAL_EXIT", "REVOKED",  "OUT_OF_MEMORY"};
  return kEnded.count(state) > 0;
}

class SlurmBackend final : public Backend {
 public:
  SlurmBackend(BackendConfig config, WorkerEvents* events)
      : config_(std::move(config)), events_(events) {
    if (config_.time_limit <= 0)
      throw Error("--backend slurm needs a --time-limit: every Slurm job has one");
    namespace fs = std::filesystem;
    // A directory of the job's own: worker ids start at 1 in every job, and
    // a worker's files (its .started fence above all) must not be another's.
    fs::path base = config_.log_dir.empty() ? fs::current_path() : fs::absolute(config_.log_dir);
    dir_ = (base / ("kappa-slurm-" + config_.job)).string();
    owns_dir_ = config_.log_dir.empty();
    fs::create_directories(dir_);
    minutes_ = std::max(1, int(std::ceil(config_.time_limit / 60)));
    poller_ = std::thread([this] { poll_loop(); });
  }
  ~SlurmBackend() override { shutdown(); }

  void launch_worker(uint64_t worker_id, bool on_coordinator) override {
    if (on_coordinator) {
      local().launch_worker(worker_id, true);
      std::lock_guard lock(mu_);
      local_ids_.insert(worker_id);
      return;
    }
    double mean;
    {
      std::lock_guard lock(mu_);
      if (stopping_) throw Error("the slurm backend is shutting down");
      mean = mean_invocation_;
    }
    std::string script = write_script(worker_id, mean);
    std::vector<std::string> argv = {
        "sbatch",
        "--parsable",
        "--job-name=kappa-" + config_.job + "-w" + std::to_string(worker_id),
        "--time=" + std::to_string(minutes_),
        "--signal=B:USR1@" + std::to_string(kSignalSeconds),
        "--no-requeue",
        "--nodes=1",
        "--ntasks=1",
        "--output=" + path(worker_id, "log"),
        "--open-mode=append",
        "--chdir=" + std::filesystem::current_path().string()};
    if (!config_.slurm.partition.empty()) argv.push_back("--partition=" + config_.slurm.partition);
    if (!config_.slurm.account.empty()) argv.push_back("--account=" + config_.slurm.account);
    argv.insert(argv.end(), config_.slurm.options.begin(), config_.slurm.options.end());
    argv.push_back(script);
    CommandResult r = run_command(argv);
    // --parsable: "JOBID" or "JOBID;CLUSTER".
    std::string id = trimmed(r.out.substr(0, r.out.find(';')));
    if (r.status != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      throw Error("sbatch failed for worker " + std::to_string(worker_id) + ": " +
                  trimmed(r.err.empty() ? r.out : r.err));
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        jobs_[worker_id] = Job{.slurm_id = id};
        return;
      }
    }
    run_command({"scancel", id});  // shut down meanwhile: it must not run
    throw Error("the slurm backend is shutting down");
  }

  void invocation_started(uint64_t worker_id) override {
    std::lock_guard lock(mu_);
    if (local_ids_.count(worker_id)) return;  // on_coordinator: no time limit, no chaos
    if (auto it = jobs_.find(worker_id); it != jobs_.end()) it->second.started = Clock::now();
  }

  void invocation_ended(uint64_t worker_id) override {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(worker_id);
    if (it == jobs_.end() || !it->second.started) return;
    double s = std::chrono::duration<double>(Clock::now() - *it->second.started).count();
    mean_invocation_ = mean_invocation_ == 0 ? s : 0.9 * mean_invocation_ + 0.1 * s;
    it->second.started.reset();
  }

  void kill_worker(uint64_t worker_id, WorkerExit::Cause why) override {
    Backend* local = nullptr;
    {
      std::lock_guard lock(mu_);
      if (local_ids_.count(worker_id)) {
        local = local_.get();
      } else if (auto it = jobs_.find(worker_id); it != jobs_.end() && !it->second.killed) {
        it->second.killed = why;
        cancel_now_.push_back(it->second.slurm_id);
      }
    }
    if (local) local->kill_worker(worker_id, why);
    cv_.notify_all();
  }

  double time_limit(bool on_coordinator) const override {
    return on_coordinator ? 0 : config_.time_limit;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    poller_.join();
    if (local_) local_->shutdown();
    std::vector<std::string> ids, all;
    {
      std::lock_guard lock(mu_);
      for (auto& [w, job] : jobs_) ids.push_back(job.slurm_id);
      all = ids;
      all.insert(all.end(), ending_.begin(), ending_.end());
    }
    // Every job this backend submitted goes, and is gone before this
    // returns: a job left pending would start a worker for a coordinator
    // that no longer exists. The coordinator has told its workers to leave,
    // so most have ended already. Jobs whose worker has ended are waited for
    // too, while Slurm still shows them running or completing: the run ends
    // with its allocations.
    std::vector<std::string> argv = {"scancel"};
    argv.insert(argv.end(), ids.begin(), ids.end());
    try {
      if (!ids.empty()) run_command(argv);
    } catch (const std::exception&) {  // no scancel: nothing more to do
      all.clear();
    }
    // squeue may fail for a moment (slurmctld busy): asked again until then.
    for (auto give_up = Clock::now() + 20s; !all.empty() && Clock::now() < give_up;
         std::this_thread::sleep_for(100ms)) {
      try {
        if (active_jobs(all).empty()) break;
      } catch (const std::exception&) {
      }
    }
    if (owns_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  uint64_t chaos_kills() const override {
    std::lock_guard lock(mu_);
    return chaos_kills_;
  }

 private:
  struct Job {
    std::string slurm_id;
    std::optional<Clock::time_point> started;  // of the current invocation
    std::optional<WorkerExit::Cause> killed;   // by this backend, and why
    bool seen_running = false;
    // Killed by SIGTERM or SIGKILL from outside, as the script recorded:
    // Slurm's verdict (TIMEOUT, CANCELLED...) says why, at the next squeue.
    std::optional<WorkerExit> outside_kill;
    // When squeue first showed it ended without a status file: the file may
    // still be on its way (a shared file system's caches).
    std::optional<Clock::time_point> ended_without_status;
  };

  Backend& local() {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error("the slurm backend is shutting down");
    if (!local_) local_ = make_local_backend(config_, events_);
    return *local_;
  }

  std::string path(uint64_t worker_id, const char* ext) const {
    return dir_ + "/worker-" + std::to_string(worker_id) + "." + ext;
  }

  std::string write_script(uint64_t worker_id, double mean) {
    std::vector<std::string> cmd = {config_.executable, "worker",
                                    "--worker-id",      std::to_string(worker_id),
                                    "--lifetime",       std::to_string(config_.time_limit)};
    cmd.insert(cmd.end(), config_.worker_args.begin(), config_.worker_args.end());
    if (config_.chaos_kill > 0) {
      cmd.insert(cmd.end(), {"--chaos-kill", std::to_string(config_.chaos_kill), "--chaos-seed",
                             std::to_string(config_.seed ? config_.seed * 1000003 + worker_id : 0),
                             "--chaos-mean", std::to_string(mean), "--chaos-marker",
                             path(worker_id, "chaos")});
    }
    std::string command;
    for (const std::string& a : cmd) command += (command.empty() ? "" : " ") + shell_quote(a);
    std::string started = shell_quote(path(worker_id, "started"));
    std::string status = shell_quote(path(worker_id, "status"));
    std::ostringstream s;
    s << "#!/bin/bash\n"
      << "# Kappa worker " << worker_id << " of job " << config_.job
      << ", written by the Slurm backend.\n"
      << "# A requeued job must not start the worker a second time.\n"
      << "if [ -e " << started << " ]; then\n"
      << "  echo \"kappa: worker " << worker_id
      << " ran before (the job was requeued): not starting it again\" >&2\n"
      << "  exit 0\n"
      << "fi\n"
      << ": > " << started << "\n"
      << command << " &\n"
      << "pid=$!\n"
      << "# Slurm's pre-timeout signal reaches this shell only (--signal=B:...):\n"
      << "# the worker hands its task over. A trapped signal (TERM too: scancel)\n"
      << "# interrupts wait, which then says nothing about the worker.\n"
      << "trap 'interrupted=1; kill -USR1 $pid 2>/dev/null' USR1\n"
      << "trap 'interrupted=1' TERM\n"
      << "rc=\n"
      << "while :; do\n"
      << "  interrupted=0\n"
      << "  wait $pid\n"
      << "  r=$?\n"
      << "  # 127: reaped already, by the wait before the trap ran.\n"
      << "  if [ \"$r\" = 127 ] && [ -n \"$rc\" ]; then break; fi\n"
      << "  rc=$r\n"
      << "  [ \"$interrupted\" = 1 ] && [ \"$rc\" -gt 128 ] || break\n"
      << "done\n"
      << "# The worker's exit status, 128 + N for signal N (workers exit 0 or 1).\n"
      << "case \"$rc\" in\n"
      << "  [0-9]|[0-9][0-9]|[0-2][0-9][0-9]) echo \"$rc\" > " << status << ".tmp && mv " << status
      << ".tmp " << status << " ;;\n"
      << "esac\n";
    std::string file = path(worker_id, "sh");
    std::ofstream out(file, std::ios::trunc);
    out << s.str();
    out.close();
    if (!out) throw Error("cannot write the batch script " + file);
    return file;
  }

  // The ids among `ids` that squeue still shows pending or running.
  std::set<std::string> active_jobs(const std::vector<std::string>& ids) {
    std::map<std::string, std::string> states = job_states();
    std::set<std::string> active;
    for (const std::string& id : ids)
      if (auto it = states.find(id); it != states.end() && !terminal_state(it->second))
        active.insert(id);
    return active;
  }

  // This user's jobs that slurmctld still knows (ended ones too, for a few
  // minutes): id -> state. Throws if squeue fails.
  std::map<std::string, std::string> job_states() {
    CommandResult r =
        run_command({"squeue", "--me", "--states=all", "--noheader", "--format=%i %T"});
    if (r.status != 0) throw Error("squeue failed: " + trimmed(r.err));
    std::map<std::string, std::string> states;
    std::istringstream lines(r.out);
    std::string id, state;
    while (lines >> id >> state) states[id] = state;
    return states;
  }

  // What the status file says, if the script wrote one.
  std::optional<WorkerExit> status_exit(uint64_t worker_id, const Job& job) {
    std::ifstream in(path(worker_id, "status"));
    int rc = -1;
    if (!(in >> rc)) return std::nullopt;
    WorkerExit e;
    if (rc <= 128) {
      e.cause = WorkerExit::Cause::kExited;
      e.status = rc;
      return e;
    }
    e.signal = rc - 128;
    if (e.signal == SIGKILL && std::filesystem::exists(path(worker_id, "chaos")))
      e.cause = WorkerExit::Cause::kChaosKill;
    else if (job.killed)
      e.cause = *job.killed;
    else
      e.cause = WorkerExit::Cause::kCrashed;
    return e;
  }

  void poll_loop() {
    auto next_squeue = Clock::now();
    std::unique_lock lock(mu_);
    while (!stopping_) {
      // scancel requests, outside the lock.
      std::vector<std::string> cancel;
      cancel.swap(cancel_now_);
      if (!cancel.empty()) {
        lock.unlock();
        std::vector<std::string> argv = {"scancel"};
        argv.insert(argv.end(), cancel.begin(), cancel.end());
        try {
          run_command(argv);
        } catch (const std::exception&) {  // reported as lost when squeue shows it gone
        }
        lock.lock();
      }
      // Status files: quick, every round.
      std::vector<std::pair<uint64_t, WorkerExit>> exited;
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        std::optional<WorkerExit> e;
        if (!it->second.outside_kill) e = status_exit(it->first, it->second);
        if (e && e->cause == WorkerExit::Cause::kCrashed &&
            (e->signal == SIGTERM || e->signal == SIGKILL)) {
          it->second.outside_kill = e;  // Slurm's doing? check_states decides
          e.reset();
        }
        if (e) {
          if (e->cause == WorkerExit::Cause::kChaosKill) ++chaos_kills_;
          exited.emplace_back(it->first, *e);
          ending_.insert(it->second.slurm_id);
          it = jobs_.erase(it);
        } else {
          ++it;
        }
      }
      // squeue: jobs that ended without a status file, or went back to the queue.
      if (Clock::now() >= next_squeue && (!jobs_.empty() || !ending_.empty())) {
        next_squeue = Clock::now() + 1s;
        lock.unlock();
        std::optional<std::map<std::string, std::string>> states;
        try {
          states = job_states();
        } catch (const std::exception&) {  // slurmctld busy: next time
        }
        lock.lock();
        if (states) check_states(*states, exited);
      }
      if (!exited.empty()) {
        lock.unlock();
        for (auto& [worker_id, exit] : exited) events_->worker_exited(worker_id, exit);
        lock.lock();
        continue;
      }
      cv_.wait_for(lock, 50ms, [&] { return stopping_ || !cancel_now_.empty(); });
    }
  }

  // mu_ held.
  void check_states(const std::map<std::string, std::string>& states,
                    std::vector<std::pair<uint64_t, WorkerExit>>& exited) {
    auto now = Clock::now();
    std::erase_if(ending_, [&](const std::string& id) {
      auto found = states.find(id);
      return found == states.end() || terminal_state(found->second);
    });
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& job = it->second;
      auto found = states.find(job.slurm_id);
      std::string state = found == states.end() ? "" : found->second;
      if (state == "RUNNING" || state == "COMPLETING") job.seen_running = true;
      bool requeued = job.seen_running && (state == "PENDING" || state == "REQUEUED" ||
                                           state == "REQUEUE_HOLD" || state == "REQUEUE_FED");
      bool ended = state.empty() || terminal_state(state);
      if (!requeued && !ended) {
        ++it;
        continue;
      }
      if (job.outside_kill) {  // the worker died of Slurm's SIGTERM or SIGKILL, or another's
        WorkerExit e = *job.outside_kill;
        if (state == "TIMEOUT")
          e.cause = WorkerExit::Cause::kTimeLimit;
        else if (state == "CANCELLED" || state == "PREEMPTED" || state == "NODE_FAIL")
          e.cause = WorkerExit::Cause::kLost;
        exited.emplace_back(it->first, e);
        it = jobs_.erase(it);
        continue;
      }
      if (!requeued) {
        if (!job.ended_without_status) job.ended_without_status = now;
        if (now - *job.ended_without_status < 2s) {  // the status file may be on its way
          ++it;
          continue;
        }
      }
      // Requeued: its worker died with the job's first run, and the job must
      // not run again.
      if (requeued) {
        cancel_now_.push_back(job.slurm_id);
        ending_.insert(job.slurm_id);
      }
      WorkerExit e;
      if (job.killed)
        e.cause = *job.killed;
      else if (state == "TIMEOUT")
        e.cause = WorkerExit::Cause::kTimeLimit;
      else
        e.cause = WorkerExit::Cause::kLost;  // cancelled, preempted, node failure...
      exited.emplace_back(it->first, e);
      it = jobs_.erase(it);
    }
  }

  BackendConfig config_;
  WorkerEvents* events_;
  std::string dir_;  // scripts, status files, the jobs' output
  bool owns_dir_ = false;
  int minutes_ = 1;  // each job's --time
  mutable std::mutex mu_;
  std::condition_variable cv_;  // stopping, scancel requests
  std::map<uint64_t, Job> jobs_;
  std::set<uint64_t> local_ids_;         // on_coordinator workers, run by local_
  std::unique_ptr<Backend> local_;       // created on first use
  std::vector<std::string> cancel_now_;  // Slurm ids to scancel
  // Slurm ids of jobs whose worker has ended (status file) or that were
  // cancelled, until squeue shows them ended: shutdown waits for them.
  std::set<std::string> ending_;
  bool stopping_ = false;
  uint64_t chaos_kills_ = 0;
  double mean_invocation_ = 0;  // seconds, moving average of finished invocations
  std::thread poller_;
};

}  // namespace

std::unique_ptr<Backend> make_slurm_backend(const BackendConfig& config, WorkerEvents* events) {
  return std::make_unique<SlurmBackend>(config, events);
}

}  // namespace kappa::detail
