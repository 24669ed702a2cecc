// AWS over HTTP with libcurl: what the S3 store and the Lambda client share.
//
// - Configuration from the standard AWS environment: AWS_ACCESS_KEY_ID,
//   AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; AWS_REGION or
//   AWS_DEFAULT_REGION (default us-east-1); AWS_ENDPOINT_URL_<SERVICE> or
//   AWS_ENDPOINT_URL to point a service at another server; AWS_CA_BUNDLE.
// - Signing: AWS Signature Version 4 by curl (CURLOPT_AWS_SIGV4), with the
//   payload's SHA-256 in x-amz-content-sha256 (curl signs what it finds
//   there: the body of an upload it reads in pieces is never hashed by it).
// - Retries: which failures may pass (transport errors, 5xx, 429, AWS's
//   throttling codes), and the backoff between attempts (exponential, half
//   of it random).
// - AwsClient: one signed JSON-sized request and its answer, whole, for
//   REST APIs whose bodies are small (Lambda); the S3 store streams its own.
//
// Thread safety: the free functions are; CurlHandlePool is; an AwsClient may
// be used by any number of threads at once (each request borrows a handle).
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace kappa::detail {

struct AwsCredentials {
  std::string access_key, secret_key, session_token;
  std::string region;     // validated: letters, digits and '-'
  std::string ca_bundle;  // AWS_CA_BUNDLE, or empty
};

/// Reads the credentials and region from the environment. Throws
/// kappa::Error naming `who` ("s3 store", "lambda"), what they were for
/// (`target`, may be empty) and the missing variables.
AwsCredentials aws_credentials_from_env(const std::string& who, const std::string& target = "");

/// AWS_ENDPOINT_URL_<service_env> (e.g. "S3", "LAMBDA"), else
/// AWS_ENDPOINT_URL, without a trailing '/'; empty when neither is set.
/// Throws kappa::Error if it is not an http:// or https:// URL.
std::string aws_endpoint_from_env(const std::string& service_env, const std::string& who);

/// The value of an environment variable, or "".
std::string env_or_empty(const char* name);

/// SigV4's URI encoding: every byte but the unreserved ones as %XX ('/'
/// kept when keep_slash, for paths).
std::string uri_encode(std::string_view s, bool keep_slash);
std::string sha256_hex(std::string_view data);
std::string md5_base64(std::string_view data);
std::string base64_encode(std::string_view data);

/// A curl failure a new attempt may get past (refused, reset, timed out...).
bool transport_retryable(CURLcode code);
/// An HTTP answer a new attempt may get past: 5xx, 429, or one of AWS's
/// throttling and transient error codes.
bool status_retryable(long status, std::string_view aws_code);
/// The wait before attempt `attempt + 1`: base * 2^(attempt-1), at most max,
/// half of it fixed and half random (jitter, so that clients throttled
/// together do not come back together).
std::chrono::milliseconds backoff_delay(int attempt, std::chrono::milliseconds base,
                                        std::chrono::milliseconds max);

/// "Name: value" header lines, case-insensitively.
bool header_is(std::string_view line, std::string_view lower_name);
std::string header_value(std::string_view line, size_t name_size);

/// curl callbacks: CURLOPT_WRITEFUNCTION appending to a std::string, and
/// CURLOPT_HEADERFUNCTION keeping the last response's headers in a
/// std::map<std::string, std::string> (names in lower case).
size_t curl_append_body(char* data, size_t size, size_t n, void* string);
size_t curl_collect_header(char* data, size_t size, size_t n, void* map);

/// Easy handles kept with their open connections for the next request.
class CurlHandlePool {
 public:
  CurlHandlePool();  // initializes libcurl once per process
  ~CurlHandlePool();
  CURL* take();
  void give_back(CURL* h);

 private:
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

struct CurlLease {
  CurlHandlePool& pool;
  CURL* handle;
  explicit CurlLease(CurlHandlePool& p) : pool(p), handle(p.take()) {}
  ~CurlLease() { pool.give_back(handle); }
  CurlLease(const CurlLease&) = delete;
  CurlLease& operator=(const CurlLease&) = delete;
};

struct CurlHeaders {
  curl_slist* list = nullptr;
  CurlHeaders() = default;
  CurlHeaders(const CurlHeaders&) = delete;
  CurlHeaders& operator=(const CurlHeaders&) = delete;
  ~CurlHeaders() { curl_slist_free_all(list); }
  void add(const std::string& h);
};

/// Sets what SigV4 signing needs on `h` for `service` ("s3", "lambda"):
/// the signing scope, the key pair, and in `headers` the payload's hash and
/// the session token.
void sign_sigv4(CURL* h, const AwsCredentials& c, const std::string& service,
                const std::string& payload_hash, CurlHeaders& headers);

/// One answer of an AWS REST API.
struct AwsResponse {
  CURLcode curl = CURLE_OK;
  std::string curl_error;  // curl's reason when curl != CURLE_OK
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  /// The error's type (x-amzn-ErrorType, up to its ':') and message (the
  /// JSON body's message or Message), when it is one.
  std::string error_type, error_message;
  int attempts = 1;   // this answer's attempt
  int throttled = 0;  // attempts answered 429 (this one included)
  bool ok() const { return curl == CURLE_OK && status / 100 == 2; }
  /// "HTTP 403 InvalidSignatureException: The request signature ..." or curl's reason.
  std::string describe() const;
};

struct AwsRetry {
  int max_attempts = 8;
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

/// A signed REST client for one service (JSON in and out).
class AwsClient {
 public:
  /// `service`: the signing name ("lambda"); `service_env`: its endpoint
  /// variable's suffix ("LAMBDA"); `default_endpoint` when none is set
  /// ("https://lambda.REGION.amazonaws.com"; REGION is replaced).
  AwsClient(std::string service, const std::string& service_env,
            const std::string& default_endpoint, AwsRetry retry = {});
  /// Sends `method path?query` with `body` until an answer worth keeping:
  /// a 2xx, or a failure no retry will get past (returned, never thrown), or
  /// the last attempt's. `extra_headers`: "Name: value" lines, signed.
  /// `timeout`: 0 for none (a RequestResponse Invoke runs as long as the
  /// function). `what` names the request in the retry's log line;
  /// `throttled`, if given, counts each 429 answer as it comes.
  AwsResponse request(const std::string& method, const std::string& path, std::string_view body,
                      const std::vector<std::string>& extra_headers = {},
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                      const std::string& what = "",
                      std::atomic<uint64_t>* throttled = nullptr) const;
  const std::string& endpoint() const { return endpoint_; }
  const AwsCredentials& credentials() const { return c_; }

 private:
  AwsResponse perform(CURL* h, const std::string& method, const std::string& url,
                      std::string_view body, const std::string& payload_hash,
                      const std::vector<std::string>& extra_headers,
                      std::chrono::milliseconds timeout) const;
  std::string service_;
  AwsCredentials c_;
  std::string endpoint_;
  AwsRetry retry_;
  mutable CurlHandlePool pool_;
};

}  // namespace kappa::detail
