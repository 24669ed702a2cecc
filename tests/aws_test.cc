// The aws backend end to end, against tests/fixtures/lambda/lambda_service.py
// (a stand-in for AWS Lambda that follows its documented wire formats,
// checks SigV4 with botocore, unzips packages, runs `bootstrap` over the
// Runtime API, kills at the deadline, freezes idle environments, throttles)
// and s3rver for the checkpoint store: `APP deploy`, then `APP run
// --backend aws` on the semantic suite (normally and with --chaos-kill),
// the long loop through several 2-second function timeouts, throttled
// RequestResponse invokes, and deploy's errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "cli/deploy.h"
#include "kappa/error.h"
#include "support/lambda_service.h"
#include "support/s3_server.h"
#include "support/semantic_programs.h"
#include "support/server_process.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

using json = nlohmann::json;

constexpr const char* kRole = "arn:aws:iam::123456789012:role/kappa-worker";

// The fixture hands its own key pair to the functions it runs
// (AWS_ACCESS_KEY_ID is reserved), and s3rver knows one: both use the same.
LambdaServiceOptions fixture_options() {
  LambdaServiceOptions o;
  o.access_key = kS3AccessKey;
  o.secret_key = kS3SecretKey;
  return o;
}

json stats(const LambdaService& lambda) { return json::parse(lambda.stats()); }

// What deploy and run need: the fixture's endpoint, s3rver's, one key pair,
// and the checkpoint key.
std::vector<std::string> aws_env(const LambdaService& lambda, const S3Server& s3,
                                 const std::string& secret = kS3SecretKey) {
  std::vector<std::string> env = s3_environment(s3.endpoint(), secret);
  env.push_back("AWS_ENDPOINT_URL_LAMBDA=" + lambda.endpoint());
  env.push_back("KAPPA_KEY=aws-test-key-0123456789abcdef");
  return env;
}

ProcessResult deploy(const LambdaService& lambda, const S3Server& s3, const std::string& function,
                     int timeout, std::vector<std::string> extra = {},
                     const std::string& secret = kS3SecretKey) {
  std::vector<std::string> argv = {SEMANTICS_APP, "deploy",
                                   "--function",  function,
                                   "--role",      kRole,
                                   "--timeout",   std::to_string(timeout),
                                   "--env",       "AWS_ENDPOINT_URL_S3=" + s3.endpoint()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv, aws_env(lambda, s3, secret));
}

ProcessResult run_aws(const LambdaService& lambda, const S3Server& s3, const std::string& function,
                      const json& event, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {
      SEMANTICS_APP, "run",
      "--backend",   "aws",
      "--function",  function,
      "--store",     "s3://kappa/jobs",
      "--data",      "s3://kappa/data",
      "--listen",    "127.0.0.1:" + std::to_string(free_loopback_port()),
      "--event",     event.dump()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv, aws_env(lambda, s3));
}

// One fixture, one s3rver and the semantic app deployed once (twice: with a
// 10 s and a 2 s timeout) for the whole suite: a deploy zips ~70 MB.
class Aws : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s3_ = new S3Server();
    lambda_ = new LambdaService(fixture_options());
    ProcessResult d = deploy(*lambda_, *s3_, "semantics", 10, {"--package", package_path()});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    d = deploy(*lambda_, *s3_, "semantics-2s", 2);
    ASSERT_EQ(d.exit_code, 0) << d.err;
  }
  static void TearDownTestSuite() {
    delete lambda_;
    delete s3_;
    std::filesystem::remove(package_path());
  }
  static std::string package_path() {
    return (std::filesystem::temp_directory_path() / "kappa-aws-test-package.zip").string();
  }
  static S3Server* s3_;
  static LambdaService* lambda_;
};
S3Server* Aws::s3_ = nullptr;
LambdaService* Aws::lambda_ = nullptr;

TEST_F(Aws, ThePackageHoldsBootstrapTheAppAndItsLibrariesWithTheLoader) {
  ProcessResult r = run_process({"/usr/bin/python3", "-c",
                                 "import sys, zipfile\n"
                                 "for i in zipfile.ZipFile(sys.argv[1]).infolist():\n"
                                 "    print(i.filename, oct(i.external_attr >> 16 & 0o777))\n",
                                 package_path()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bootstrap 0o755\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bin/semantics_app 0o755\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lib/ld-linux-x86-64.so.2 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lib/libc.so.6 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lib/libstdc++.so.6 "), std::string::npos) << r.out;
}

TEST_F(Aws, TheTimeLimitDefaultsToTheFunctionsTimeout) {
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics-2s", {{"program", "fib"}, {"n", 3}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("time limit 2 s"), std::string::npos) << r.err;
}

struct Mode {
  std::string name;
  std::vector<std::string> args;
};

class AwsSemantics : public Aws, public ::testing::WithParamInterface<std::tuple<Program, Mode>> {};

TEST_P(AwsSemantics, ExactResult) {
  const auto& [program, mode] = GetParam();
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics", program.event, mode.args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), program.expected()) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Programs, AwsSemantics,
    ::testing::Combine(::testing::ValuesIn(programs()),
                       ::testing::Values(Mode{"normal", {}},
                                         Mode{"chaos", {"--chaos-kill", "0.3", "--workers", "3"}})),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
    });

// A drawn kill is the worker's own SIGKILL: the fixture sees the runtime
// die (a crash, Runtime.ExitError), and the job still gives the exact result.
TEST_F(Aws, ChaosKillsAreTheWorkersOwnAndTheJobSurvivesThem) {
  uint64_t before = stats(*lambda_).value("crashes", 0);
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics", {{"program", "odd_sum"}, {"n", 50}},
                            {"--chaos-kill", "0.5", "--seed", "1", "--workers", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), 50 * 50);
  EXPECT_NE(r.err.find("by --chaos-kill"), std::string::npos) << r.err;
  // The fixture notices a dead runtime within moments.
  uint64_t after = before;
  for (int i = 0; i < 50 && after == before; ++i) {
    after = stats(*lambda_).value("crashes", 0);
    if (after == before) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(after, before) << lambda_->stats() << r.err;
}

// Seconds of work in a function that times out after two: the task hands
// itself over before each deadline (Lambda-Runtime-Deadline-Ms), resuming
// from its checkpoint in the next invocation.
TEST_F(Aws, ALongLoopOutlivesSeveralFunctionTimeouts) {
  auto start = std::chrono::steady_clock::now();
  // Twice the local suite's loop: 7 to 12 s of work here, whatever the load.
  const uint64_t iterations = 2 * kLongLoop;
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics-2s",
                            {{"program", "long_loop"}, {"iterations", iterations}});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), long_loop(iterations));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(1 tasks, (\d+) parks)"))) << r.err;
  EXPECT_GE(std::stoi(m[1]), 2) << r.err;  // handed over at least twice
  EXPECT_GT(seconds, 4.0);
}

// RequestResponse invokes beyond the account's concurrency are refused with
// 429 TooManyRequestsException; they are retried with backoff until a slot
// frees, and the summary says so.
TEST(AwsThrottling, ThrottledInvokesAreRetried) {
  S3Server s3;
  LambdaServiceOptions o = fixture_options();
  o.concurrency = 1;
  LambdaService lambda(o);
  ProcessResult d = deploy(lambda, s3, "semantics", 10);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ProcessResult r = run_aws(lambda, s3, "semantics", {{"program", "tree_sum"}, {"n", 16}},
                            {"--workers", "3", "--invocation-type", "RequestResponse"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), 16 * 17 / 2);
  EXPECT_NE(r.err.find("throttled answers (429) retried"), std::string::npos) << r.err;
  EXPECT_GT(stats(lambda).value("throttles", 0), 0) << lambda.stats();
}

TEST_F(Aws, DeployWithAWrongSecretKeyNamesTheSignatureError) {
  ProcessResult r = deploy(*lambda_, *s3_, "semantics", 10, {}, "not-the-secret");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("403 InvalidSignatureException"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check the credentials"), std::string::npos) << r.err;
}

TEST_F(Aws, DeployWithARoleLambdaCannotAssumeSaysSo) {
  std::vector<std::string> argv = {SEMANTICS_APP, "deploy",
                                   "--function",  "semantics-other",
                                   "--role",      "arn:aws:iam::999999999999:role/elsewhere",
                                   "--timeout",   "10"};
  ProcessResult r = run_process(argv, aws_env(*lambda_, *s3_));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("InvalidParameterValueException"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot be assumed"), std::string::npos) << r.err;
}

TEST_F(Aws, RunningAFunctionThatDoesNotExistFailsAtOnce) {
  ProcessResult r = run_aws(*lambda_, *s3_, "no-such-function", {{"program", "fib"}, {"n", 3}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ResourceNotFoundException"), std::string::npos) << r.err;
}

// A service whose quota is below the package's size refuses it with AWS's
// message (413 RequestEntityTooLargeException), which deploy passes on.
TEST(AwsDeploy, APackageOverTheServicesLimitIsRefusedWithAwsMessage) {
  S3Server s3;
  LambdaServiceOptions o = fixture_options();
  o.max_zip_bytes = 1000000;
  LambdaService lambda(o);
  ProcessResult r = deploy(lambda, s3, "semantics", 10);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("413 RequestEntityTooLargeException"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Request must be smaller than"), std::string::npos) << r.err;
}

// A task without pause points in a function that times out after 2 s: each
// invocation is killed at its deadline, the coordinator counts the deaths as
// time limits (from the session's end for Event invokes, from Lambda's
// Sandbox.Timedout answer for RequestResponse ones), and the task fails after
// --max-failures of them, saying so.
class AwsTimeouts : public Aws, public ::testing::WithParamInterface<std::string> {};

TEST_P(AwsTimeouts, AreToldApartFromCrashes) {
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics-2s", {{"program", "spin"}, {"seconds", 30}},
                            {"--max-failures", "1", "--invocation-type", GetParam()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("killed at its time limit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 worker deaths (2 at the time limit)"), std::string::npos)
      << r.err;  // the summary
}

INSTANTIATE_TEST_SUITE_P(InvocationTypes, AwsTimeouts,
                         ::testing::Values("Event", "RequestResponse"));

// A child that aborts: its worker reports the signal before dying, and its
// failure (which the parent catches) names the crash, not a timeout or a
// lost worker.
TEST_F(Aws, ACrashIsReportedAsOneWithItsSignal) {
  ProcessResult r = run_aws(*lambda_, *s3_, "semantics", {{"program", "crash_child"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("task 2 (crasher) crashed 3 times in a row (last: killed by SIGABRT"),
            std::string::npos)
      << r.out << r.err;
}

// Deploy refuses a package over Lambda's quotas before sending it.
TEST(AwsDeploy, APackageOverLambdasQuotasIsRefusedBeforeTheUpload) {
  detail::DeployOptions o;
  detail::Package p;
  p.zip.assign(o.max_zip_bytes + 1, 'z');
  p.unzipped_bytes = 100 << 20;
  try {
    detail::check_package(p, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "deploy: the package is 52.4 MB zipped; Lambda takes at most 52.4 MB in a "
                 "direct upload (strip the binary's debug information)");
  }
  p.zip.resize(1000);
  p.unzipped_bytes = o.max_unzipped_bytes;
  EXPECT_THROW(detail::check_package(p, o), Error);
  p.unzipped_bytes = o.max_unzipped_bytes - 1;
  EXPECT_NO_THROW(detail::check_package(p, o));
}

}  // namespace
}  // namespace kappa::testing
