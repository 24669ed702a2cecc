// The worker loop: what an application binary runs as `APP worker`, started
// by a backend (a local process, a Lambda invocation, a Slurm job).
//
// It asks the coordinator for an assignment, starts or restores the task,
// and at each pause point persists the checkpoint image to the store before
// reporting the call; it drops the task when told to park. Near its deadline,
// a due maybe_checkpoint() becomes a yield: the task moves to a fresh
// invocation without losing work. A thread of its own sends heartbeats
// (liveness.h) and ends the worker when the coordinator is gone.
#pragma once

#include <chrono>
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
  double checkpoint_interval = 1;
  int watch_parent = 0;  // nonzero: die with this process (the local backend's)
  // A platform's invocation (a Lambda's): the time it is killed at, which
  // bounds every task's deadline, and that the worker ends once it has
  // nothing to do or too little time left for another task, rather than
  // waiting for work (it would be billed, and frozen, while it waits).
  std::optional<std::chrono::system_clock::time_point> hard_deadline;
  bool one_invocation = false;
  // --chaos-kill on such a platform: the worker SIGKILLs itself this many
  // seconds after it reached the coordinator (the draw comes with the
  // invocation).
  std::optional<double> chaos_kill_after;
};

/// Runs until the coordinator says the job is over (returns 0) or cannot be
/// reached (returns 1 with a message on stderr); with one_invocation, also
/// until the invocation is over (returns 0). Every thread it starts (the
/// liveness thread, the uplink) and its connection end before it returns.
int run_worker(const WorkerOptions& options);

}  // namespace kappa::detail
