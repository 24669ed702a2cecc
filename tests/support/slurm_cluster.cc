#include "support/slurm_cluster.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kappa::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string program(const std::string& name) {
  std::string path = find_program(name);
  if (path.empty()) {
    // The daemons live in /usr/sbin, which a user's PATH may lack.
    for (const char* dir : {"/usr/sbin/", "/sbin/"})
      if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
    throw std::runtime_error(name +
                             " is not installed (scripts/setup.sh installs slurm-wlm and "
                             "munge)");
  }
  return path;
}

// Sends `signal` to pid and reaps it (SIGKILL after `patience`).
void stop_process(pid_t& pid, int signal, std::chrono::milliseconds patience) {
  if (pid <= 0) return;
  kill(pid, signal);
  auto deadline = Clock::now() + patience;
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  pid = -1;
}

// Processes (other than this one) whose environment holds `entry`: what is
// left of the cluster's jobs and job steps.
std::vector<pid_t> processes_with_env(const std::string& entry) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (pid == getpid()) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    std::string var;
    while (std::getline(in, var, '\0')) {
      if (var == entry) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

// Reaps the zombies among this process's children that nobody waits for:
// orphans (slurmstepd) that came to this subreaper. Other children are left
// alone.
void reap_orphans(const std::vector<pid_t>& orphans) {
  for (pid_t pid : orphans) {
    int status = 0;
    waitpid(pid, &status, WNOHANG);
  }
}

std::vector<pid_t> zombie_children() {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (state == 'Z' && ppid == getpid()) found.push_back(std::stoi(name));
  }
  return found;
}

}  // namespace

SlurmCluster::SlurmCluster() {
  int was = 0;
  prctl(PR_GET_CHILD_SUBREAPER, &was);
  was_subreaper_ = was != 0;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  try {
    start();
  } catch (...) {
    stop();
    throw;
  }
}

SlurmCluster::~SlurmCluster() { stop(); }

void SlurmCluster::start() {
  std::string munged = program("munged"), slurmctld = program("slurmctld"),
              slurmd = program("slurmd");
  const std::string& d = dir_.path();
  // munge: a key of its own (1024 random bytes, readable by its owner only,
  // in a directory only its owner enters), and a socket of its own.
  std::string munge = d + "/munge";
  std::filesystem::create_directory(munge);
  chmod(munge.c_str(), 0700);
  {
    std::random_device rd;
    std::string key(1024, '\0');
    for (char& c : key) c = char(rd());
    write_file(munge + "/key", key);
    chmod((munge + "/key").c_str(), 0400);
  }
  for (const char* sub : {"state", "spool"}) std::filesystem::create_directory(d + "/" + sub);
  int ctld_port = free_loopback_port(), slurmd_port = free_loopback_port();
  while (slurmd_port == ctld_port) slurmd_port = free_loopback_port();
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  std::ostringstream text;
  text << "ClusterName=kappatest\n"
       << "SlurmctldHost=localhost(127.0.0.1)\n"
       << "SlurmctldPort=" << ctld_port << "\n"
       << "SlurmdPort=" << slurmd_port << "\n"
       << "SlurmUser=root\nSlurmdUser=root\n"
       << "AuthType=auth/munge\n"
       << "AuthInfo=socket=" << munge << "/socket,cred_expire=10\n"
       << "CredType=cred/munge\n"
       // Root without systemd or cgroups.
       << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
       << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
       << "SchedulerType=sched/backfill\n"
       << "SchedulerParameters=batch_sched_delay=0,sched_interval=1,sched_min_interval=0,"
          "bf_interval=1\n"
       << "MpiDefault=none\nJobAcctGatherType=jobacct_gather/none\n"
       << "AccountingStorageType=accounting_storage/none\n"
       << "ReturnToService=2\n"
       << "StateSaveLocation=" << d << "/state\n"
       << "SlurmdSpoolDir=" << d << "/spool\n"
       << "SlurmctldPidFile=" << d << "/slurmctld.pid\n"
       << "SlurmdPidFile=" << d << "/slurmd.pid\n"
       << "SlurmctldLogFile=" << d << "/slurmctld.log\n"
       << "SlurmdLogFile=" << d << "/slurmd.log\n"
       << "NodeName=localhost NodeAddr=127.0.0.1 CPUs=" << cpus << " State=UNKNOWN\n"
       << "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n";
  write_file(conf(), text.str());
  env_ = std::make_unique<ScopedEnv>(std::vector<std::string>{env()});

  munged_ = spawn_process({munged, "--foreground", "--force", "--socket=" + munge + "/socket",
                           "--key-file=" + munge + "/key", "--pid-file=" + munge + "/pid",
                           "--log-file=" + munge + "/log", "--seed-file=" + munge + "/seed"},
                          {}, d + "/munged.out", d + "/munged.err");
  auto deadline = Clock::now() + 10s;
  while (!std::filesystem::exists(munge + "/socket")) {
    if (Clock::now() > deadline || process_gone(munged_))
      throw std::runtime_error("munged did not start:\n" + logs());
    std::this_thread::sleep_for(10ms);
  }
  // -D: in the foreground, so that their pids are ours; -i: no state from
  // an earlier run.
  slurmctld_ = spawn_process({slurmctld, "-D", "-i", "-f", conf()}, {env()}, d + "/slurmctld.out",
                             d + "/slurmctld.err");
  slurmd_ = spawn_process({slurmd, "-D", "-N", "localhost", "-f", conf()}, {env()},
                          d + "/slurmd.out", d + "/slurmd.err");
  deadline = Clock::now() + 30s;
  for (;;) {
    if (process_gone(slurmctld_) || process_gone(slurmd_))
      throw std::runtime_error("a Slurm daemon exited at start:\n" + logs());
    ProcessResult r = run_process({program("sinfo"), "--noheader", "--format=%t"}, {env()});
    if (r.exit_code == 0 && r.out.starts_with("idle")) return;
    if (Clock::now() > deadline)
      throw std::runtime_error("the Slurm node did not become idle within 30 s (sinfo: " + r.out +
                               r.err + "):\n" + logs());
    std::this_thread::sleep_for(100ms);
  }
}

void SlurmCluster::stop() {
  // Jobs first, while the daemons can still end them.
  if (slurmctld_ > 0 && !process_gone(slurmctld_)) {
    run_process({program("scancel"), "--full", "--user=" + std::to_string(getuid())}, {env()});
    wait_idle(10s);
  }
  stop_process(slurmd_, SIGTERM, 10s);
  stop_process(slurmctld_, SIGTERM, 10s);
  stop_process(munged_, SIGTERM, 10s);
  // Whatever is left of the jobs.
  for (int round = 0; round < 50; ++round) {
    std::vector<pid_t> left = processes_with_env(env());
    if (left.empty()) break;
    for (pid_t pid : left) kill(pid, SIGKILL);
    std::this_thread::sleep_for(20ms);
    reap_orphans(zombie_children());
  }
  reap_orphans(zombie_children());
  if (!was_subreaper_) prctl(PR_SET_CHILD_SUBREAPER, 0);
  env_.reset();
}

std::string SlurmCluster::logs() const {
  std::string out;
  for (const char* f :
       {"munged.err", "munge/log", "slurmctld.log", "slurmctld.err", "slurmd.log", "slurmd.err"}) {
    std::string text = read_file(dir_ / f);
    if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
    out += "---- " + std::string(f) + "\n" + text;
  }
  return out;
}

std::string SlurmCluster::run(std::vector<std::string> argv) const {
  argv[0] = program(argv[0]);
  ProcessResult r = run_process(argv, {env()});
  if (r.exit_code != 0) throw std::runtime_error(argv[0] + " failed: " + r.err);
  return r.out;
}

std::vector<std::string> SlurmCluster::active_jobs() const {
  std::istringstream lines(run({"squeue", "--noheader", "--format=%i"}));
  std::vector<std::string> ids;
  for (std::string id; lines >> id;) ids.push_back(id);
  return ids;
}

bool SlurmCluster::wait_idle(std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    try {
      if (active_jobs().empty()) return true;
    } catch (const std::exception&) {
    }
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

}  // namespace kappa::testing
