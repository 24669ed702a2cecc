// `APP deploy`: packages the running application as an AWS Lambda function
// (a custom runtime on provided.al2023) and creates or updates it.
//
// The package, a zip:
//   bootstrap   a shell script (mode 0755) that starts bin/APP through the
//               bundled loader: Amazon Linux 2023's glibc (2.34) is older
//               than the one the app was built against, so the loader and
//               glibc travel with it, as every other library does;
//   bin/APP     this executable;
//   lib/        every shared library it needs, as ldd resolves them here,
//               the loader and glibc included.
// Lambda's limits are checked before anything is sent: 50 MB zipped for a
// direct upload, 250 MB unzipped.
//
// The function's environment carries what workers need and would otherwise
// read from this machine: KAPPA_KEY (the checkpoint signing key, as
// load_key() finds it here), KAPPA_STORE (--store), and --env NAME=VALUE.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kappa::detail {

struct DeployOptions {
  std::string function;
  std::string role;
  int timeout = 900;             // seconds
  int memory = 1024;             // MB
  std::string store;             // recorded as KAPPA_STORE (empty: none)
  std::vector<std::string> env;  // NAME=VALUE
  std::string package_out;       // also write the zip here (empty: no)
  // Lambda's package quotas (tests lower them to meet the fixture's).
  uint64_t max_zip_bytes = 50ull * 1024 * 1024;
  uint64_t max_unzipped_bytes = 262144000;
};

struct Package {
  std::string zip;
  uint64_t unzipped_bytes = 0;
  size_t files = 0;
};

/// Builds the package of `executable` (see above). Throws kappa::Error.
Package build_package(const std::string& executable);

/// Throws kappa::Error, saying which limit and by how much, if Lambda would
/// refuse the package (o.max_zip_bytes zipped, o.max_unzipped_bytes unzipped).
void check_package(const Package& p, const DeployOptions& o);

/// Packages this executable and creates or updates the function; prints its
/// ARN. Throws kappa::Error with AWS's message when Lambda refuses.
void deploy(const DeployOptions& options);

}  // namespace kappa::detail
