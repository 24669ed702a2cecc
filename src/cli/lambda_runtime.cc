#include "cli/lambda_runtime.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "kappa/error.h"
#include "util/aws_http.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

constexpr const char* kPrefix = "/2018-06-01/runtime";

struct Answer {
  CURLcode curl = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
};

// One exchange with the Runtime API. No timeout: invocation/next waits, frozen,
// for as long as Lambda has nothing for this environment.
Answer exchange(CurlHandlePool& pool, const std::string& url, const std::string* body,
                const std::vector<std::string>& headers = {}) {
  CurlLease lease(pool);
  CURL* h = lease.handle;
  curl_easy_reset(h);
  Answer a;
  CurlHeaders list;
  for (const std::string& line : headers) list.add(line);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, curl_collect_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &a.headers);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body->size()));
  }
  a.curl = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
  return a;
}

std::string error_document(const std::string& type, const std::string& message) {
  return nlohmann::json{{"errorType", type}, {"errorMessage", message}, {"stackTrace", {}}}.dump();
}

}  // namespace

int run_lambda_runtime(const std::string& api, const std::function<void()>& init,
                       const std::function<std::string(const LambdaInvocation&)>& handle) {
  CurlHandlePool pool;
  const std::string base = "http://" + api + kPrefix;
  try {
    init();
  } catch (const std::exception& e) {
    spdlog::error("start-up failed: {}", e.what());
    std::string doc = error_document("Runtime.InitError", e.what());
    exchange(pool, base + "/init/error", &doc,
             {"Content-Type: application/json",
              "Lambda-Runtime-Function-Error-Type: Runtime.InitError"});
    return 1;
  }
  for (int failures = 0;;) {
    Answer next = exchange(pool, base + "/invocation/next", nullptr);
    if (next.curl != CURLE_OK || next.status != 200) {
      // The Runtime API goes away when Lambda ends the environment.
      spdlog::error("runtime API: invocation/next failed: {}",
                    next.curl != CURLE_OK
                        ? curl_easy_strerror(next.curl)
                        : "HTTP " + std::to_string(next.status) + " " + next.body.substr(0, 200));
      if (++failures >= 3) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * failures));
      continue;
    }
    failures = 0;
    LambdaInvocation inv;
    inv.request_id = next.headers["lambda-runtime-aws-request-id"];
    inv.payload = std::move(next.body);
    try {
      inv.deadline = std::chrono::system_clock::time_point(
          std::chrono::milliseconds(std::stoll(next.headers["lambda-runtime-deadline-ms"])));
    } catch (const std::exception&) {
      spdlog::warn("runtime API: no usable Lambda-Runtime-Deadline-Ms ('{}')",
                   next.headers["lambda-runtime-deadline-ms"]);
      inv.deadline = std::chrono::system_clock::now() + std::chrono::minutes(15);
    }
    std::string url = base + "/invocation/" + uri_encode(inv.request_id, false);
    std::string out;
    Answer sent;
    try {
      out = handle(inv);
      sent = exchange(pool, url + "/response", &out, {"Content-Type: application/json"});
    } catch (const LambdaError& e) {
      out = error_document(e.type, e.what());
      sent = exchange(
          pool, url + "/error", &out,
          {"Content-Type: application/json", "Lambda-Runtime-Function-Error-Type: " + e.type});
    } catch (const std::exception& e) {
      out = error_document("Kappa.Error", e.what());
      sent = exchange(
          pool, url + "/error", &out,
          {"Content-Type: application/json", "Lambda-Runtime-Function-Error-Type: Kappa.Error"});
    }
    if (sent.curl != CURLE_OK || sent.status / 100 != 2)
      spdlog::warn("runtime API: the result of invocation {} was not accepted: {}", inv.request_id,
                   sent.curl != CURLE_OK
                       ? curl_easy_strerror(sent.curl)
                       : "HTTP " + std::to_string(sent.status) + " " + sent.body.substr(0, 200));
  }
}

}  // namespace kappa::detail
