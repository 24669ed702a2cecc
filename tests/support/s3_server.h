// S3 on loopback for tests: s3rver (the npm package that scripts/setup.sh
// installs under tests/fixtures/s3) with one bucket, and the proxy of
// tests/fixtures/s3/s3_proxy.py, which checks SigV4 signatures with botocore
// and injects faults.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/server_process.h"

namespace kappa::testing {

/// The credentials s3rver knows (it checks the access key, not signatures).
inline constexpr const char* kS3AccessKey = "S3RVER";
inline constexpr const char* kS3SecretKey = "S3RVER";

/// The environment that points a process's s3:// stores at `endpoint`.
std::vector<std::string> s3_environment(const std::string& endpoint,
                                        const std::string& secret_key = kS3SecretKey);

/// s3rver with one bucket, its data in the server's own directory.
class S3Server {
 public:
  explicit S3Server(std::string bucket = "kappa");
  /// "http://127.0.0.1:PORT".
  std::string endpoint() const { return server_.http_url(); }
  const std::string& bucket() const { return bucket_; }

 private:
  std::string bucket_;
  ServerProcess server_;
};

/// s3_proxy.py in front of an S3 endpoint.
class S3Proxy {
 public:
  explicit S3Proxy(const std::string& upstream, bool check_sigv4 = false);
  std::string endpoint() const { return server_.http_url(); }
  /// Replaces the fault rules (a JSON list; see s3_proxy.py) and clears the log.
  void set_faults(const nlohmann::json& rules);
  /// The requests seen since the last set_faults, in order.
  nlohmann::json log();

 private:
  ServerProcess server_;
};

}  // namespace kappa::testing
