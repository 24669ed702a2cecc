// Backend: the platform that runs workers (local processes, AWS Lambda,
// Slurm), and WorkerEvents: how a backend reports what happened to them.
//
// A backend starts worker processes of the application binary
// (`APP worker ...`), which then reach the coordinator through a transport of
// their own; it never sees the coordinator. It is told when each invocation
// (one task handed to a worker) starts and ends, to enforce the time limit
// and inject chaos, and reports every worker that exits, with the cause.
//
// Adding a platform: a new file with a class implementing Backend and a
// make_*_backend function, plus one line in backend_registry.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kappa::detail {

/// Why a worker process ended.
struct WorkerExit {
  enum class Cause {
    kExited,     // it exited by itself (status)
    kCrashed,    // a signal it did not ask for: SIGSEGV, SIGABRT, an outside SIGKILL...
    kChaosKill,  // killed by --chaos-kill
    kTimeLimit,  // killed at the end of its invocation's time limit
    kHung,       // killed because it stopped sending heartbeats
    kLost,       // its session closed (platforms that cannot see the process)
  } cause = Cause::kExited;
  int status = 0;  // kExited: the exit status
  int signal = 0;  // the signal that ended it, if any
  /// "killed by SIGSEGV (Segmentation fault)", "exited with status 1", ...
  std::string describe() const;
  /// A synchronous signal raised by the task's own code (SIGSEGV, SIGBUS,
  /// SIGILL, SIGFPE, SIGABRT): a crash that will likely happen again.
  bool deterministic_crash() const;
};

const char* cause_name(WorkerExit::Cause cause);

/// Implemented by the coordinator; called from the backend's own threads,
/// never with a backend lock held.
class WorkerEvents {
 public:
  virtual ~WorkerEvents() = default;
  virtual void worker_exited(uint64_t worker_id, WorkerExit exit) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// Starts worker `worker_id` for the normal pool, or for the on_coordinator
  /// pool (no time limit, no chaos). May take long (a Lambda invoke, an
  /// sbatch): the coordinator calls it from a thread of its own. Throws
  /// kappa::Error if the worker cannot be started.
  virtual void launch_worker(uint64_t worker_id, bool on_coordinator) = 0;
  /// A task was handed to the worker: start its time limit (and chaos).
  /// Quick: called with the coordinator's lock held.
  virtual void invocation_started(uint64_t worker_id) = 0;
  /// The worker's invocation is over (it asked for work, or died). Quick.
  virtual void invocation_ended(uint64_t worker_id) = 0;
  /// Ends the worker (it stopped answering); reported later through
  /// WorkerEvents with `why` as the cause. Quick.
  virtual void kill_worker(uint64_t worker_id, WorkerExit::Cause why) = 0;
  /// Seconds one invocation may run (0: no limit), as told to workers.
  virtual double time_limit(bool on_coordinator) const = 0;
  /// Kills every worker and stops the backend's threads; no event is
  /// reported after it returns. Idempotent.
  virtual void shutdown() = 0;
  /// Invocations killed by --chaos-kill so far.
  virtual uint64_t chaos_kills() const = 0;
  /// The worker's session with the coordinator closed. A backend that
  /// watches its workers' processes reports their exits itself (nullopt,
  /// the default); one that cannot (a Lambda invocation is seen only
  /// through its session) says what the close means, and it is reported as
  /// the worker's exit. Quick; called without the coordinator's lock.
  virtual std::optional<WorkerExit> session_closed(uint64_t worker_id) {
    (void)worker_id;
    return std::nullopt;
  }
  /// What the platform did, for the job's summary ("lambda: 40
  /// invocations, 3 throttled..."); empty when there is nothing to add.
  virtual std::string summary() const { return {}; }
};

/// Options of the Slurm backend (slurm_backend.cc).
struct SlurmConfig {
  std::string partition;             // sbatch --partition (empty: the default one)
  std::string account;               // sbatch --account (empty: the user's default)
  std::vector<std::string> options;  // more sbatch arguments, as given
};

/// What every backend is configured with.
struct BackendConfig {
  std::string executable;                // the application binary
  std::vector<std::string> worker_args;  // after "worker --worker-id N": coordinator, store...
  double time_limit = 300;               // seconds per invocation (0: none)
  double chaos_kill = 0;                 // probability per invocation
  uint64_t seed = 0;                     // for chaos (0: random)
  std::string log_dir;                   // worker logs (empty: none)
  // aws: the Lambda function, and whether to invoke it RequestResponse
  // (else Event). time_limit_given false: the function's own timeout.
  std::string function;
  bool request_response = false;
  bool time_limit_given = true;
  std::string job;  // the job's id (names its workers on shared platforms)
  SlurmConfig slurm;
};

/// Creates the backend registered under `name`. Throws kappa::Error for an
/// unknown name (the message lists the known ones).
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendConfig& config,
                                      WorkerEvents* events);

/// The names make_backend knows, in registration order.
std::vector<std::string> backend_names();

}  // namespace kappa::detail
