#include "support/s3_server.h"

#include <curl/curl.h>

#include <filesystem>
#include <stdexcept>

namespace kappa::testing {
namespace {

// tests/fixtures/s3 (KAPPA_S3_FIXTURE: set by tests/CMakeLists.txt).
std::string fixture(const std::string& file) {
  std::string path = std::string(KAPPA_S3_FIXTURE) + "/" + file;
  if (!std::filesystem::exists(path))
    throw std::runtime_error(path + " is missing: run scripts/setup.sh (it installs s3rver)");
  return path;
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A plain HTTP request to the proxy's control API.
std::string control(const std::string& url, const std::string* post) {
  CURL* h = curl_easy_init();
  if (!h) throw std::runtime_error("curl_easy_init failed");
  std::string out;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
  if (post) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post->c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, long(post->size()));
  }
  CURLcode rc = curl_easy_perform(h);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK)
    throw std::runtime_error("s3_proxy control " + url + ": " + curl_easy_strerror(rc));
  return out;
}

}  // namespace

std::vector<std::string> s3_environment(const std::string& endpoint,
                                        const std::string& secret_key) {
  return {"AWS_ACCESS_KEY_ID=" + std::string(kS3AccessKey), "AWS_SECRET_ACCESS_KEY=" + secret_key,
          "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_S3=" + endpoint};
}

S3Server::S3Server(std::string bucket)
    : bucket_(std::move(bucket)),
      server_({.name = "s3rver",
               .argv =
                   [&](int port, const std::string& dir) {
                     // s3rver's continuation tokens use DES, which Node's OpenSSL 3 keeps
                     // in its legacy provider.
                     return std::vector<std::string>{"/usr/bin/env",
                                                     "node",
                                                     "--openssl-legacy-provider",
                                                     fixture("node_modules/s3rver/bin/s3rver.js"),
                                                     "--silent",
                                                     "--directory",
                                                     dir,
                                                     "--address",
                                                     "127.0.0.1",
                                                     "--port",
                                                     std::to_string(port),
                                                     "--configure-bucket",
                                                     bucket_};
                   },
               .ready = accepts_connections}) {}

S3Proxy::S3Proxy(const std::string& upstream, bool check_sigv4)
    : server_({.name = "s3_proxy.py",
               .argv =
                   [&](int port, const std::string&) {
                     std::vector<std::string> argv = {"/usr/bin/python3", fixture("s3_proxy.py"),
                                                      "--port",           std::to_string(port),
                                                      "--upstream",       upstream};
                     if (check_sigv4) argv.push_back("--check-sigv4");
                     return argv;
                   },
               .ready = accepts_connections}) {}

void S3Proxy::set_faults(const nlohmann::json& rules) {
  std::string body = rules.dump();
  control(endpoint() + "/__proxy/faults", &body);
}

nlohmann::json S3Proxy::log() {
  return nlohmann::json::parse(control(endpoint() + "/__proxy/log", nullptr));
}

}  // namespace kappa::testing
