#include "support/lambda_service.h"

#include <curl/curl.h>
#include <signal.h>

#include <filesystem>
#include <stdexcept>

namespace kappa::testing {
namespace {

// tests/fixtures/lambda/lambda_service.py (KAPPA_LAMBDA_FIXTURE: set by
// tests/CMakeLists.txt).
std::string fixture_script() {
  std::string path = std::string(KAPPA_LAMBDA_FIXTURE) + "/lambda_service.py";
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + " is missing");
  return path;
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A number as Python's argparse reads it.
std::string number(double value) { return std::to_string(value); }

}  // namespace

LambdaService::LambdaService(LambdaServiceOptions options)
    : options_(std::move(options)),
      server_({.name = "lambda_service.py",
               .argv =
                   [this](int port, const std::string& dir) {
                     const LambdaServiceOptions& o = options_;
                     std::vector<std::string> argv = {
                         // Debian's python3, which has python3-botocore.
                         "/usr/bin/python3",
                         fixture_script(),
                         "--port",
                         std::to_string(port),
                         "--work-dir",
                         dir + "/work",
                         "--region",
                         o.region,
                         "--access-key",
                         o.access_key,
                         "--secret-key",
                         o.secret_key,
                         "--concurrency",
                         std::to_string(o.concurrency),
                         "--idle-timeout",
                         number(o.idle_timeout_s),
                         "--init-timeout",
                         number(o.init_timeout_s),
                         "--max-zip-bytes",
                         std::to_string(o.max_zip_bytes),
                         "--max-unzipped-bytes",
                         std::to_string(o.max_unzipped_bytes),
                         "--event-retries",
                         std::to_string(o.event_retries),
                         "--event-retry-delay",
                         number(o.event_retry_delay_s)};
                     argv.insert(argv.end(), o.args.begin(), o.args.end());
                     return argv;
                   },
               .ready = accepts_connections}) {}

LambdaService::~LambdaService() { stop(); }

void LambdaService::stop() { server_.stop(SIGTERM); }

std::vector<std::string> LambdaService::environment() const {
  return {"AWS_ACCESS_KEY_ID=" + options_.access_key,
          "AWS_SECRET_ACCESS_KEY=" + options_.secret_key,
          "AWS_SESSION_TOKEN",  // unset: the fixture's requests carry none
          "AWS_REGION=" + options_.region,
          "AWS_DEFAULT_REGION=" + options_.region,
          "AWS_ENDPOINT_URL_LAMBDA=" + endpoint()};
}

std::string LambdaService::stats() const { return get("/fixture/stats"); }

std::string LambdaService::environments() const { return get("/fixture/environments"); }

std::string LambdaService::get(const std::string& path) const {
  CURL* h = curl_easy_init();
  if (!h) throw std::runtime_error("curl_easy_init failed");
  std::string url = endpoint() + path;
  std::string out;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK)
    throw std::runtime_error("lambda_service " + url + ": " + curl_easy_strerror(rc));
  return out;
}

}  // namespace kappa::testing
