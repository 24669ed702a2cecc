// AWS Lambda on loopback for tests: tests/fixtures/lambda/lambda_service.py,
// which serves Lambda's control plane and Invoke API (SigV4-checked with
// botocore) and runs each function's `bootstrap` in execution environments
// over the Runtime API, as Lambda runs custom runtimes. It is started on a
// free port with a work directory of its own (environments, their logs) and
// stopped by its pid with SIGTERM, which kills the environments' processes
// and removes their directories. Not thread-safe: one test thread drives it.
#pragma once

#include <string>
#include <vector>

#include "support/server_process.h"

namespace kappa::testing {

struct LambdaServiceOptions {
  std::string region = "us-east-1";
  std::string access_key = "AKIAIOSFODNN7EXAMPLE";
  std::string secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  int concurrency = 10;                 // the account's concurrency limit
  double idle_timeout_s = 60;           // an idle environment is discarded after this
  double init_timeout_s = 10;           // a new environment must reach invocation/next by then
  long max_zip_bytes = 52428800;        // the direct-upload quota (50 MB zipped)
  long max_unzipped_bytes = 262144000;  // 250 MB unzipped
  int event_retries = 2;                // retries of a failed Event invocation
  double event_retry_delay_s = 1;       // before the first retry (doubled for the next)
  std::vector<std::string> args;        // more options for lambda_service.py
};

class LambdaService {
 public:
  /// Starts the fixture; throws std::runtime_error (with its output) if it
  /// does not serve.
  explicit LambdaService(LambdaServiceOptions options = {});
  /// Stops it with SIGTERM (see stop()).
  ~LambdaService();
  LambdaService(const LambdaService&) = delete;
  LambdaService& operator=(const LambdaService&) = delete;

  /// "http://127.0.0.1:PORT": the Lambda endpoint (AWS_ENDPOINT_URL_LAMBDA).
  std::string endpoint() const { return server_.http_url(); }
  const LambdaServiceOptions& options() const { return options_; }
  pid_t pid() const { return server_.pid(); }
  /// Where environments and their logs (logs/env-N.log) are.
  std::string work_dir() const { return server_.dir() + "/work"; }

  /// The variables that point an AWS client at the fixture: credentials,
  /// region and AWS_ENDPOINT_URL_LAMBDA.
  std::vector<std::string> environment() const;

  /// GET /fixture/stats: a JSON object with cold_starts, warm_starts,
  /// throttles, timeouts, crashes, init_errors, invocations (by outcome),
  /// environments {live, frozen, idle, busy}, queue... Throws if it fails.
  std::string stats() const;
  /// GET /fixture/environments: {"live": [...], "ended": [...]}, each with
  /// id, function, state, frozen, pid, task_root, log.
  std::string environments() const;

  /// Sends SIGTERM and waits (SIGKILL after 10 s): the fixture kills its
  /// environments' process groups (thawing frozen ones) and removes their
  /// directories. Idempotent.
  void stop();
  /// What the fixture wrote on stdout and stderr.
  std::string output() const { return server_.output(); }

 private:
  std::string get(const std::string& path) const;
  LambdaServiceOptions options_;
  ServerProcess server_;
};

}  // namespace kappa::testing
