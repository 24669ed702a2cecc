// The AWS Lambda custom runtime: what the application binary runs when
// Lambda starts it as `bootstrap` (AWS_LAMBDA_RUNTIME_API is set).
//
// It speaks the Runtime API (version 2018-06-01,
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): GET
// runtime/invocation/next, one invocation, then POST
// runtime/invocation/ID/response or runtime/invocation/ID/error; a start-up
// failure goes to POST runtime/init/error and the process exits.
//
// Between invocations Lambda freezes the whole environment (SIGSTOP) while
// it waits in invocation/next, and may reuse it later (warm) or never. So an
// invocation leaves nothing running behind it: the handler returns only
// once every thread it started has ended and its connections are closed.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace kappa::detail {

struct LambdaInvocation {
  std::string request_id;  // Lambda-Runtime-Aws-Request-Id
  std::string payload;     // the event, as sent to Invoke
  // Lambda-Runtime-Deadline-Ms: absolute, in milliseconds since the epoch.
  std::chrono::system_clock::time_point deadline;
};

/// Thrown by a handler for an invocation error with a type of its own
/// (otherwise the type is "Kappa.Error").
struct LambdaError : std::runtime_error {
  LambdaError(std::string type, const std::string& message)
      : std::runtime_error(message), type(std::move(type)) {}
  std::string type;
};

/// Runs the loop against the Runtime API at `api` (host:port). `init` runs
/// once first; if it throws, the error goes to init/error and this returns
/// 1. Then each invocation's response is what `handle` returns (a JSON
/// document), its error what it throws. Returns 1 when the Runtime API can
/// no longer be reached (Lambda is ending the environment).
int run_lambda_runtime(const std::string& api, const std::function<void()>& init,
                       const std::function<std::string(const LambdaInvocation&)>& handle);

}  // namespace kappa::detail
