// Runs a whole job for `APP run` (or `APP coordinator`): the composition
// root. It wires the pieces together (a store scoped to the job, the
// coordinator, a backend from the factory, the transport's server), runs the
// handler as the root task until it finishes, and takes it all down.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/backend.h"
#include "coordinator/cost.h"
#include "coordinator/job_state.h"
#include "kappa/main.h"
#include "runtime/checkpoint_image.h"

namespace kappa::detail {

struct JobOptions {
  std::string backend = "local";
  unsigned workers = 2;
  double time_limit = 300;
  bool time_limit_given = true;  // false: the backend's default (aws: the function's timeout)
  std::string store;             // empty: file://$TMPDIR/kappa-job-ID (memory-backed when possible)
  std::string state;             // coordinator journal; empty: in memory
  std::string data = "file://./kappa-data";  // where put and get go
  double chaos_kill = 0;
  uint64_t seed = 0;
  std::string log_dir;
  std::string trace;
  // Where workers reach the coordinator; empty: a Unix socket of the job's
  // own (the local backend's workers), "host:port": gRPC.
  std::string listen;
  // What workers are told to dial (default: listen): an address they can
  // reach, where listen may be 0.0.0.0.
  std::string advertise;
  // --backend aws: the Lambda function, and Event or RequestResponse.
  std::string function;
  std::string invocation_type = "Event";
  // TLS over gRPC (rpc/tls.h): the user's own certificate chain and key
  // (PEM files), and the authority workers check it against (default: they
  // pin the certificate). Empty: a self-signed certificate of the job's own.
  std::string tls_cert, tls_key, tls_ca;
  double checkpoint_interval = 1;
  Codec codec = Codec::kZstd;
  bool incremental = true;  // delta images (worker/image_chain.h)
  unsigned grace_ms = 50;
  unsigned max_failures = 10;
  double liveness_timeout = 5;  // seconds of silence before a worker counts as hung (0: never)
  bool progress = false;        // a status line on stderr, if it is a terminal (ProgressLine)
  SlurmConfig slurm;            // --backend slurm
  // The live view (--ui [HOST:]PORT, empty: none): served from this process
  // while the job runs, and for ui_linger seconds after it ended.
  std::string ui;
  double ui_linger = 0;
  // What the live view's cost estimate assumes (coordinator/cost.h).
  double lambda_memory_mb = kDefaultLambdaMemoryMb;
  LambdaPrices prices;
};

struct JobResult {
  bool ok = false;
  nlohmann::json value;         // ok: the handler's result
  std::string error;            // !ok: which task failed and why
  std::string kept_store;       // !ok: where the checkpoints were left (empty: none were)
  std::string backend_summary;  // what the platform did (Backend::summary)
  JobStats stats;
};

/// Throws kappa::Error for options that cannot work (unknown backend, ...).
/// `on_result` (may be empty) is given the result as soon as it is known,
/// before the live view lingers (options.ui_linger).
JobResult run_job(Handler handler, const nlohmann::json& event, const JobOptions& options,
                  const std::function<void(const JobResult&)>& on_result = {});

/// "3 worker deaths: 2 by --chaos-kill, 1 at the time limit" (or "no worker
/// deaths"), with the chaos kills that hit workers between tasks.
std::string describe_deaths(const JobStats& stats);

/// The end-of-job summary after "done in 1.2 s: ": "9 tasks, 3 parks, no
/// worker deaths; 12 checkpoints (1.5 MB), 14 invocations; ~$0.0012 on
/// Lambda (1024 MB); $0.0030 if blocked waits were billed".
std::string describe_job(const JobStats& stats, double lambda_memory_mb,
                         const LambdaPrices& prices);

}  // namespace kappa::detail
