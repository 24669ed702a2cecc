// The worker loop: what an application binary runs as `APP worker`, started
// by a backend (a local process, a Lambda invocation, a Slurm job).
//
// It asks the coordinator for an assignment, starts or restores the task,
// and at each pause point persists the checkpoint image to the store before
// reporting the call; it drops the task when told to park. Near its deadline,
// a due maybe_checkpoint() becomes a yield: the task moves to a fresh
// invocation without losing work. A thread of its own sends heartbeats
// (liveness.h) and ends the worker when the coordinator is gone.
//
// SIGUSR1 means the platform is about to end this process (Slurm's
// pre-timeout signal): the deadline becomes now, the running task hands over
// at its next maybe_checkpoint(), and the worker leaves instead of asking for
// more work. So does a worker whose --lifetime is nearly over.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/checkpoint_image.h"

namespace kappa::detail {

struct WorkerOptions {
  std::string coordinator;  // its address (host:port, unix:PATH, unix:@NAME)
  std::string token;        // the job's token
  // Over gRPC, how to check the coordinator (rpc/tls.h): the SHA-256 of its
  // certificate, or its authority (PEM). Neither: plaintext.
  std::string tls_pin, tls_ca;
  uint64_t worker_id = 0;
  std::string store_url;
  std::string job;  // the job's id: its images live under this scope of the store
  std::string data_url = "file://./kappa-data";  // where put and get go
  Codec codec = Codec::kZstd;
  // Incremental checkpoints: once a task's image goes to the store, later
  // images carry only the pages changed since (worker/image_chain.h).
  bool incremental = true;
  double checkpoint_interval = 1;
  int watch_parent = 0;  // nonzero: die with this process (the local backend's)
  // Seconds this process may live (a Slurm job's time, a Lambda invocation's
  // timeout): no invocation runs past it, and the worker leaves near it (0:
  // no limit).
  double lifetime = 0;
  // A platform's invocation (a Lambda's): the worker ends once it has nothing
  // to do, rather than waiting for work (it would be billed, and frozen,
  // while it waits).
  bool one_invocation = false;
  // --chaos-kill done by the worker itself (self_chaos.h): the probability
  // per invocation, the seed (0: random), the mean invocation length seen so
  // far, and the file created just before the kill. Or, on a platform with no
  // shared file system (aws: the draw comes with the invocation), a kill this
  // many seconds after the worker reached the coordinator, with no marker.
  double chaos_kill = 0;
  uint64_t chaos_seed = 0;
  double chaos_mean = 0;
  std::string chaos_marker;
  std::optional<double> chaos_kill_after;
};

/// Runs until the coordinator says the job is over (returns 0) or cannot be
/// reached (returns 1 with a message on stderr); with one_invocation, also
/// until the invocation is over (returns 0). Every thread it starts (the
/// liveness thread, the uplink) and its connection end before it returns.
int run_worker(const WorkerOptions& options);

}  // namespace kappa::detail
