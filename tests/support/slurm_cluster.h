// A single-node Slurm cluster for tests: munged, slurmctld and slurmd from
// Debian's packages, each started in the foreground by this process (so that
// it holds their pids), with a generated slurm.conf, their state, spool,
// logs and munge key in a temporary directory of their own, and the
// controller on free loopback ports. Ready once the node is idle. SLURM_CONF
// points at the cluster's slurm.conf while it lives, for the client commands
// (sbatch, squeue, scancel) of the test and of the processes it starts.
//
// It runs as root, without systemd or cgroups: proctrack/linuxproc,
// task/none, select/cons_tres, and scheduler settings tuned for speed
// (a job starts within about a quarter of a second).
//
// On destruction it cancels every job, stops the daemons by pid, and kills
// whatever is left of its jobs (their processes carry its SLURM_CONF in
// their environment). The test process becomes a child subreaper meanwhile:
// slurmstepd processes, orphaned by design, are reaped here rather than left
// as zombies of an init that may not reap.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "support/server_process.h"
#include "support/subprocess.h"

namespace kappa::testing {

class SlurmCluster {
 public:
  /// Starts the cluster; throws std::runtime_error with the daemons' logs if
  /// it does not come up (or Slurm is not installed: scripts/setup.sh).
  SlurmCluster();
  ~SlurmCluster();
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  /// The generated slurm.conf (also in $SLURM_CONF while the cluster lives).
  std::string conf() const { return dir_ / "slurm.conf"; }
  /// "SLURM_CONF=..." for processes started with an environment of their own.
  std::string env() const { return "SLURM_CONF=" + conf(); }
  /// The daemons' logs, for failure messages.
  std::string logs() const;
  /// Runs a Slurm client command (sbatch, squeue, scancel...) against this
  /// cluster; throws with its stderr if it fails.
  std::string run(std::vector<std::string> argv) const;
  /// Ids of the jobs squeue shows pending or running.
  std::vector<std::string> active_jobs() const;
  /// Waits until no job is pending or running; false after `timeout`.
  bool wait_idle(std::chrono::milliseconds timeout) const;

 private:
  void start();
  void stop();
  TempDir dir_;
  std::unique_ptr<ScopedEnv> env_;
  pid_t munged_ = -1, slurmctld_ = -1, slurmd_ = -1;
  bool was_subreaper_ = false;
};

}  // namespace kappa::testing
