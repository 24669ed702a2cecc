#include "backends/lambda_client.h"

#include <thread>

#include "kappa/error.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

constexpr const char* kFunctions = "/2015-03-31/functions";

std::string function_path(const std::string& name) {
  return std::string(kFunctions) + "/" + uri_encode(name, false);
}

nlohmann::json configuration_body(const LambdaFunctionSpec& s) {
  nlohmann::json vars = nlohmann::json::object();
  for (const auto& [k, v] : s.environment) vars[k] = v;
  return {{"Role", s.role},
          {"Runtime", "provided.al2023"},
          // Custom runtimes ignore the handler; Lambda still wants one.
          {"Handler", "kappa.worker"},
          {"Timeout", s.timeout},
          {"MemorySize", s.memory},
          {"Environment", {{"Variables", vars}}}};
}

nlohmann::json parse(const AwsResponse& r) {
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) throw Error("lambda: unreadable answer: " + r.body.substr(0, 200));
  return j;
}

}  // namespace

LambdaClient::LambdaClient(AwsRetry retry)
    : http_("lambda", "LAMBDA", "https://lambda.REGION.amazonaws.com", retry) {}

void LambdaClient::fail(const std::string& op, const std::string& name, const AwsResponse& r) {
  std::string msg = "lambda: " + op + " of function " + name + " failed";
  if (r.attempts > 1) msg += " after " + std::to_string(r.attempts) + " attempts";
  msg += ": " + r.describe();
  if (r.error_type == "InvalidSignatureException" || r.error_type == "UnrecognizedClientException")
    msg +=
        " (check the credentials in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
        "AWS_SESSION_TOKEN, and AWS_REGION)";
  else if (r.error_type == "AccessDeniedException")
    msg += " (the caller's IAM policy lacks this action: see docs/aws.md)";
  else if (r.error_type == "ResourceNotFoundException" && op != "GetFunction")
    msg += " (deploy it first: APP deploy --function " + name + " --role ARN)";
  else if (r.curl != CURLE_OK)
    msg += " (endpoint " + http_.endpoint() + ")";
  throw Error(msg);
}

nlohmann::json LambdaClient::deploy(const LambdaFunctionSpec& spec) {
  const std::string zip = base64_encode(spec.zip);
  nlohmann::json create = configuration_body(spec);
  create["FunctionName"] = spec.name;
  create["Code"] = {{"ZipFile", zip}};
  create["Architectures"] = {"x86_64"};
  AwsResponse r = http_.request("POST", kFunctions, create.dump(), {}, {}, "CreateFunction");
  if (r.ok()) return parse(r);
  if (r.status != 409 || r.error_type != "ResourceConflictException")
    fail("CreateFunction", spec.name, r);

  // It exists: new code, then the configuration. Lambda refuses a second
  // update while the first is in progress (409 "An update is in progress"),
  // so the configuration's is retried for a while.
  r = http_.request("PUT", function_path(spec.name) + "/code",
                    nlohmann::json{{"ZipFile", zip}}.dump(), {}, {}, "UpdateFunctionCode");
  if (!r.ok()) fail("UpdateFunctionCode", spec.name, r);
  const std::string body = configuration_body(spec).dump();
  for (int attempt = 1;; ++attempt) {
    r = http_.request("PUT", function_path(spec.name) + "/configuration", body, {}, {},
                      "UpdateFunctionConfiguration");
    if (r.ok()) return parse(r);
    if (r.status != 409 || attempt >= 30) fail("UpdateFunctionConfiguration", spec.name, r);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

nlohmann::json LambdaClient::get_function(const std::string& name) {
  AwsResponse r = http_.request("GET", function_path(name), "", {}, {}, "GetFunction");
  if (!r.ok()) fail("GetFunction", name, r);
  return parse(r);
}

LambdaInvokeResult LambdaClient::invoke(const std::string& name, const std::string& payload,
                                        bool event, std::atomic<uint64_t>* throttled) {
  std::vector<std::string> headers = {std::string("X-Amz-Invocation-Type: ") +
                                      (event ? "Event" : "RequestResponse")};
  AwsResponse r = http_.request("POST", function_path(name) + "/invocations", payload, headers, {},
                                "Invoke", throttled);
  if (!r.ok()) fail("Invoke", name, r);
  LambdaInvokeResult out;
  out.status = r.status;
  out.attempts = r.attempts;
  if (auto it = r.headers.find("x-amz-function-error"); it != r.headers.end())
    out.function_error = it->second;
  out.payload = std::move(r.body);
  return out;
}

}  // namespace kappa::detail
