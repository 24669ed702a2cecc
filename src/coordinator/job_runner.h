// Runs a whole job from `APP run` (or `APP coordinator`): the coordinator,
// its endpoint (Unix socket or gRPC) and a backend in this process, the handler as the root
// task, until the root finishes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "coordinator/coordinator.h"
#include "kappa/main.h"
#include "runtime/checkpoint_image.h"

namespace kappa::detail {

struct JobOptions {
  std::string backend = "local";
  unsigned workers = 2;
  double time_limit = 300;
  std::string store;  // empty: file://$TMPDIR/kappa-job-ID
  std::string state;  // coordinator journal; empty: in memory
  double chaos_kill = 0;
  uint64_t seed = 0;
  std::string log_dir;
  std::string trace;
  // Where workers reach the coordinator; empty: a Unix socket of the job's
  // own (the local backend's workers), "host:port": gRPC.
  std::string listen;
  double checkpoint_interval = 1;
  Codec codec = Codec::kZstd;
  unsigned grace_ms = 50;
  unsigned max_failures = 10;
  bool progress = false;  // a status line on stderr
};

struct JobResult {
  bool ok = false;
  nlohmann::json value;    // ok: the handler's result
  std::string error;       // !ok: which task failed and why
  std::string kept_store;  // !ok: where the checkpoints were left
  CoordinatorStats stats;
  uint64_t chaos_kills = 0;
};

/// Throws kappa::Error for options that cannot work (unknown backend, ...).
JobResult run_job(Handler handler, const nlohmann::json& event, const JobOptions& options);

}  // namespace kappa::detail
