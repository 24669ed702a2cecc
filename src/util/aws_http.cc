#include "util/aws_http.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "kappa/error.h"
#include "util/hex.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

std::string digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data.data(), data.size(), out, &n, md, nullptr))
    throw Error("cannot compute a digest (OpenSSL)");
  return std::string(reinterpret_cast<char*>(out), n);
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

}  // namespace

size_t curl_append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t curl_collect_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {  // a new response (after a 100 Continue, say)
    headers->clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  (*headers)[name] = header_value(line, colon);
  return size * n;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

AwsCredentials aws_credentials_from_env(const std::string& who, const std::string& target) {
  AwsCredentials c;
  c.access_key = env_or_empty("AWS_ACCESS_KEY_ID");
  c.secret_key = env_or_empty("AWS_SECRET_ACCESS_KEY");
  c.session_token = env_or_empty("AWS_SESSION_TOKEN");
  if (c.access_key.empty() || c.secret_key.empty())
    throw Error(who + ": no AWS credentials" + (target.empty() ? "" : " for " + target) + ": set " +
                std::string(c.access_key.empty() ? "AWS_ACCESS_KEY_ID" : "") +
                (c.access_key.empty() && c.secret_key.empty() ? " and " : "") +
                (c.secret_key.empty() ? "AWS_SECRET_ACCESS_KEY" : "") +
                " in the environment (and AWS_SESSION_TOKEN for temporary credentials)");
  c.region = env_or_empty("AWS_REGION");
  if (c.region.empty()) c.region = env_or_empty("AWS_DEFAULT_REGION");
  if (c.region.empty()) c.region = "us-east-1";
  if (!std::all_of(c.region.begin(), c.region.end(),
                   [](unsigned char ch) { return std::isalnum(ch) || ch == '-'; }))
    throw Error(who + ": invalid AWS region '" + c.region + "'");
  c.ca_bundle = env_or_empty("AWS_CA_BUNDLE");
  return c;
}

std::string aws_endpoint_from_env(const std::string& service_env, const std::string& who) {
  std::string from = "AWS_ENDPOINT_URL_" + service_env;
  std::string endpoint = env_or_empty(from.c_str());
  if (endpoint.empty()) {
    from = "AWS_ENDPOINT_URL";
    endpoint = env_or_empty(from.c_str());
  }
  if (endpoint.empty()) return {};
  while (endpoint.ends_with('/')) endpoint.pop_back();
  if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://"))
    throw Error(who + ": " + from + "='" + endpoint + "' is not an http:// or https:// URL");
  return endpoint;
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += char(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::string d = digest(EVP_sha256(), data);
  return to_hex(d.data(), d.size());
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), int(data.size()));
  out.resize(size_t(n));
  return out;
}

std::string md5_base64(std::string_view data) { return base64_encode(digest(EVP_md5(), data)); }

bool transport_retryable(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
  }
}

bool status_retryable(long status, std::string_view aws_code) {
  if (status >= 500 || status == 429) return true;
  static const char* kTransient[] = {"RequestTimeout",      "SlowDown",      "Throttling",
                                     "ThrottlingException", "InternalError", "ServiceUnavailable",
                                     "RequestLimitExceeded"};
  for (const char* c : kTransient)
    if (aws_code == c) return true;
  return false;
}

std::chrono::milliseconds backoff_delay(int attempt, std::chrono::milliseconds base,
                                        std::chrono::milliseconds max) {
  thread_local std::minstd_rand rng(std::random_device{}());
  double d = double(base.count()) * std::pow(2.0, attempt - 1);
  d = std::min(d, double(max.count()));
  std::uniform_real_distribution<double> jitter(0.5 * d, d);
  return std::chrono::milliseconds(int64_t(jitter(rng)));
}

bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

std::string header_value(std::string_view line, size_t name_size) {
  std::string_view v = line.substr(name_size + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
    v.remove_suffix(1);
  return std::string(v);
}

CurlHandlePool::CurlHandlePool() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("cannot initialize libcurl");
  });
}

CurlHandlePool::~CurlHandlePool() {
  for (CURL* h : idle_) curl_easy_cleanup(h);
}

CURL* CurlHandlePool::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* h = curl_easy_init();
  if (!h) throw Error("cannot create a curl handle");
  return h;
}

void CurlHandlePool::give_back(CURL* h) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 16) {
    idle_.push_back(h);
    return;
  }
  curl_easy_cleanup(h);
}

void CurlHeaders::add(const std::string& h) {
  curl_slist* l = curl_slist_append(list, h.c_str());
  if (!l) throw std::bad_alloc();
  list = l;
}

void sign_sigv4(CURL* h, const AwsCredentials& c, const std::string& service,
                const std::string& payload_hash, CurlHeaders& headers) {
  // curl keeps a copy of the string options.
  std::string scope = "aws:amz:" + c.region + ":" + service;
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, scope.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, c.access_key.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, c.secret_key.c_str());
  headers.add("x-amz-content-sha256: " + payload_hash);
  if (!c.session_token.empty()) headers.add("x-amz-security-token: " + c.session_token);
  if (!c.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, c.ca_bundle.c_str());
}

std::string AwsResponse::describe() const {
  if (curl != CURLE_OK)
    return std::string(curl_easy_strerror(curl)) +
           (curl_error.empty() ? "" : " (" + curl_error + ")");
  std::string out = "HTTP " + std::to_string(status);
  if (!error_type.empty()) out += " " + error_type;
  if (!error_message.empty()) out += ": " + error_message;
  if (error_type.empty() && error_message.empty() && !body.empty())
    out += ": " + body.substr(0, 200);
  return out;
}

AwsClient::AwsClient(std::string service, const std::string& service_env,
                     const std::string& default_endpoint, AwsRetry retry)
    : service_(std::move(service)),
      c_(aws_credentials_from_env(service_)),
      endpoint_(aws_endpoint_from_env(service_env, service_)),
      retry_(retry) {
  if (endpoint_.empty()) {
    endpoint_ = default_endpoint;
    size_t at = endpoint_.find("REGION");
    if (at != std::string::npos) endpoint_.replace(at, 6, c_.region);
  }
}

AwsResponse AwsClient::perform(CURL* h, const std::string& method, const std::string& url,
                               std::string_view body, const std::string& payload_hash,
                               const std::vector<std::string>& extra_headers,
                               std::chrono::milliseconds timeout) const {
  AwsResponse r;
  curl_easy_reset(h);  // options only: connections stay open
  CurlHeaders headers;
  sign_sigv4(h, c_, service_, payload_hash, headers);
  headers.add("Content-Type: application/json");
  for (const std::string& extra : extra_headers) headers.add(extra);
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, long(timeout.count()));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, curl_collect_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r.headers);
  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    // The body goes as POSTFIELDS for every method with one (PUT included):
    // small JSON documents, sent as they are.
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.size()));
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  r.curl = curl_easy_perform(h);
  if (r.curl != CURLE_OK) r.curl_error = error;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  if (r.status / 100 != 2 && r.curl == CURLE_OK) {
    // Lambda's errors: x-amzn-ErrorType "Code:http://..." and a JSON body
    // with "message" (or "Message"), and often "Type".
    if (auto it = r.headers.find("x-amzn-errortype"); it != r.headers.end())
      r.error_type = it->second.substr(0, it->second.find(':'));
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object()) {
      for (const char* k : {"message", "Message", "errorMessage"})
        if (j.contains(k) && j[k].is_string()) r.error_message = j[k].get<std::string>();
      if (r.error_type.empty())
        for (const char* k : {"__type", "code", "Code"})
          if (j.contains(k) && j[k].is_string()) r.error_type = j[k].get<std::string>();
    }
  }
  return r;
}

AwsResponse AwsClient::request(const std::string& method, const std::string& path,
                               std::string_view body, const std::vector<std::string>& extra_headers,
                               std::chrono::milliseconds timeout, const std::string& what,
                               std::atomic<uint64_t>* throttled_count) const {
  const std::string payload_hash = sha256_hex(body);
  const std::string url = endpoint_ + path;
  CurlLease lease(pool_);
  int throttled = 0;
  for (int attempt = 1;; ++attempt) {
    AwsResponse r = perform(lease.handle, method, url, body, payload_hash, extra_headers, timeout);
    r.attempts = attempt;
    if (r.status == 429) {
      ++throttled;
      if (throttled_count) ++*throttled_count;
    }
    r.throttled = throttled;
    bool again = r.curl != CURLE_OK ? transport_retryable(r.curl)
                                    : !r.ok() && status_retryable(r.status, r.error_type);
    if (!again || attempt >= retry_.max_attempts) return r;
    auto delay = backoff_delay(attempt, retry_.base_delay, retry_.max_delay);
    spdlog::warn("{}: {} {}: {}; retrying in {} ms (attempt {} of {})", service_,
                 what.empty() ? method : what, path, r.describe(), delay.count(), attempt + 1,
                 retry_.max_attempts);
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace kappa::detail
