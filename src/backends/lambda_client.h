// LambdaClient: the few operations of AWS Lambda's REST API (version
// 2015-03-31, https://docs.aws.amazon.com/lambda/latest/api/) that deploy
// and the aws backend need, signed with SigV4 (service `lambda`).
//
// Configuration from the standard environment (util/aws_http.h): the
// credentials and region, and AWS_ENDPOINT_URL_LAMBDA or AWS_ENDPOINT_URL
// for another server (default https://lambda.REGION.amazonaws.com).
// Throttling (429) and 5xx answers are retried with backoff and jitter.
// Failures throw kappa::Error with the operation, the function, Lambda's
// error type and message, and for the usual mistakes what to do.
//
// Thread safety: every method may be called from any number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "util/aws_http.h"

namespace kappa::detail {

struct LambdaFunctionSpec {
  std::string name;
  std::string role;   // the execution role's ARN
  int timeout = 900;  // seconds (Lambda: 1 to 900)
  int memory = 1024;  // MB (Lambda: 128 to 10240)
  std::map<std::string, std::string> environment;
  std::string zip;  // the package's bytes
};

/// What an Invoke came back with.
struct LambdaInvokeResult {
  long status = 0;             // 202 for Event, 200 for RequestResponse
  std::string function_error;  // X-Amz-Function-Error: "Unhandled", or empty
  std::string payload;         // RequestResponse: the function's response or error document
  int attempts = 1;            // throttled or failed attempts included
};

class LambdaClient {
 public:
  /// Throws kappa::Error when the environment has no credentials.
  explicit LambdaClient(AwsRetry retry = {});

  /// CreateFunction (runtime provided.al2023), or when it exists (409
  /// ResourceConflictException) UpdateFunctionCode then
  /// UpdateFunctionConfiguration. Returns the function's configuration.
  nlohmann::json deploy(const LambdaFunctionSpec& spec);

  /// GetFunction: {"Configuration": {...}, "Code": {...}}.
  nlohmann::json get_function(const std::string& name);

  /// Invoke with `payload` (JSON), as an Event (asynchronous: 202 once
  /// queued) or RequestResponse (returns when the invocation ends). Throws
  /// after the retries for throttling and 5xx are spent, or at once for
  /// other failures; `throttled` counts the 429 answers as they come.
  LambdaInvokeResult invoke(const std::string& name, const std::string& payload, bool event,
                            std::atomic<uint64_t>* throttled = nullptr);

  const std::string& endpoint() const { return http_.endpoint(); }

 private:
  [[noreturn]] void fail(const std::string& op, const std::string& name, const AwsResponse& r);
  AwsClient http_;
};

}  // namespace kappa::detail
