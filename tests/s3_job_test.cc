// Whole jobs (APP run) with their checkpoints on S3 (--store s3://BUCKET/PREFIX),
// against s3rver on loopback behind the recording proxy of
// tests/fixtures/s3: the images really go through S3, the result is exact,
// also when workers are killed, and the bucket is left as the job promises.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "apps/changing_state.h"
#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "support/s3_server.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

using nlohmann::json;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every key of the bucket under `prefix`, read through s3rver directly.
std::vector<std::string> keys_under(const S3Server& s3, const std::string& prefix) {
  ScopedEnv env(s3_environment(s3.endpoint()));
  return kappa::detail::open_store("s3://" + s3.bucket() + "/" + prefix)->list("");
}

// Images (JOB/task-T/seq-S-wW.kpk) that crossed the proxy with this method.
size_t images(const json& log, const std::string& method) {
  size_t n = 0;
  for (const json& r : log) {
    std::string path = r["path"];
    if (r["method"] == method && path.starts_with("/kappa/jobs/") && path.ends_with(".kpk") &&
        contains(path, "/task-"))
      ++n;
  }
  return n;
}

ProcessResult run_on_s3(const S3Proxy& proxy, const std::string& event,
                        std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {SEMANTICS_APP, "run",     "--event",
                                   event,         "--store", "s3://kappa/jobs"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv, s3_environment(proxy.endpoint()));
}

// One worker, and every wait parks it (--grace-ms 0): the holder's 1 MiB
// state is stored at its checkpoint (its calls after it send inline deltas
// on top), and read back from S3 when it resumes after the handler, which
// shares its only worker, tells it to end.
const std::vector<std::string> kParkAndRestore = {"--workers", "1", "--grace-ms", "0"};

TEST(S3Job, ImagesGoThroughS3AndAreRemovedWhenTheJobSucceeds) {
  S3Server s3;
  S3Proxy proxy(s3.endpoint());
  ProcessResult r = run_on_s3(proxy, R"({"program":"large_state"})", kParkAndRestore);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), (json{{"ok", true}}));
  json log = proxy.log();
  EXPECT_GE(images(log, "PUT"), 1u) << log;
  EXPECT_GE(images(log, "GET"), 1u) << log;
  EXPECT_EQ(images(log, "DELETE"), images(log, "PUT")) << log;
  EXPECT_TRUE(keys_under(s3, "jobs").empty());
}

// Workers killed at random moments (mid-upload too) resume from images read
// back from S3. Chaos kills land at random: seeds are tried until a run has
// had some.
TEST(S3Job, UnderChaosTheResultIsExactAndTheBucketCleaned) {
  S3Server s3;
  S3Proxy proxy(s3.endpoint());
  std::regex kills(R"(\((\d+) by --chaos-kill)");
  int killed_runs = 0;
  for (int seed = 1; seed <= 10 && killed_runs < 2; ++seed) {
    std::vector<std::string> args = kParkAndRestore;
    args.insert(args.end(), {"--chaos-kill", "0.3", "--seed", std::to_string(seed)});
    ProcessResult r = run_on_s3(proxy, R"({"program":"large_state"})", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), (json{{"ok", true}}));
    killed_runs += std::regex_search(r.err, kills);
    EXPECT_TRUE(keys_under(s3, "jobs").empty()) << "seed " << seed;
  }
  EXPECT_EQ(killed_runs, 2);
  EXPECT_GE(images(proxy.log(), "GET"), 2u);
}

// A state of more than 32 MiB: its full images are streamed to S3 as
// multipart uploads while the task waits, and read back by ranged GETs,
// pinned to the object they started on, also after workers died mid-upload.
// The task parks at its round-9 wait (one worker, no grace), so each run
// reads its image back; seeds are tried until a run has had a chaos kill.
TEST(S3Job, LargeImagesAreStreamedAndReadByRanges) {
  S3Server s3;
  S3Proxy proxy(s3.endpoint());
  auto count = [&](std::string_view method, bool pinned_range) {
    size_t n = 0;
    for (const json& e : proxy.log()) {
      std::string path = e["path"];
      if (!path.ends_with(".kpk") || e["method"] != method) continue;
      if (pinned_range)
        n += e["range"].is_string() && e["if_match"].is_string();
      else
        n += e["query"].get<std::string>().starts_with("uploads");
    }
    return n;
  };
  std::regex kills(R"(\((\d+) by --chaos-kill)");
  int killed_runs = 0;
  for (int seed = 1; seed <= 10 && killed_runs < 1; ++seed) {
    std::vector<std::string> args = kParkAndRestore;
    args.insert(args.end(), {"--chaos-kill", "0.3", "--seed", std::to_string(seed)});
    ProcessResult r =
        run_on_s3(proxy, R"({"program":"changing_state","rounds":12,"mib":40})", args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), json(changing_state::run_plain(12, 40)));
    killed_runs += std::regex_search(r.err, kills);
    EXPECT_TRUE(keys_under(s3, "jobs").empty()) << "seed " << seed;
  }
  EXPECT_GE(killed_runs, 1);
  EXPECT_GE(count("POST", false), 1u) << "no image went up as a multipart upload";
  EXPECT_GE(count("GET", true), 2u) << "no image came back by pinned ranged GETs";
}

// A failed job keeps the images of its unfinished tasks, and says where.
TEST(S3Job, AFailedJobKeepsItsImagesInTheBucket) {
  S3Server s3;
  S3Proxy proxy(s3.endpoint());
  ProcessResult r = run_on_s3(proxy, R"({"program":"large_state","fail":true})");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_TRUE(contains(r.err, "checkpoints kept in s3://kappa/jobs/")) << r.err;
  std::vector<std::string> kept = keys_under(s3, "jobs");
  ASSERT_FALSE(kept.empty());
  for (const std::string& k : kept) EXPECT_TRUE(k.ends_with(".kpk")) << k;
  std::string job = kept[0].substr(0, kept[0].find('/'));
  EXPECT_TRUE(contains(r.err, "checkpoints kept in s3://kappa/jobs/" + job)) << r.err;
  // `inspect` of where it says they are verifies each of them.
  ProcessResult inspected = run_process({SEMANTICS_APP, "inspect", "s3://kappa/jobs/" + job + "/"},
                                        s3_environment(s3.endpoint()));
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(size_t(std::count(inspected.out.begin(), inspected.out.end(), '\n')), kept.size())
      << inspected.out;
  EXPECT_TRUE(contains(inspected.out, "\"file\":\"s3://kappa/jobs/" + job + "/")) << inspected.out;
}

// put's output on S3 (--data s3://BUCKET/PREFIX): plain objects PREFIX/KEY,
// written once though workers are killed, and nothing staged left.
TEST(S3Job, PutsArePlainObjectsUnderThePrefixWrittenOnce) {
  S3Server s3;
  S3Proxy proxy(s3.endpoint());
  ProcessResult r = run_on_s3(proxy, R"({"program":"durable_zoo","n":12})",
                              {"--data", "s3://kappa/out", "--chaos-kill", "0.2", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> want;
  for (int p = 0; p < 4; ++p) want.push_back("zoo/part-" + std::to_string(p) + ".txt");
  EXPECT_EQ(keys_under(s3, "out"), want);
  ScopedEnv env(s3_environment(s3.endpoint()));
  auto out = kappa::detail::open_store("s3://kappa/out");
  for (int p = 0; p < 4; ++p)
    EXPECT_EQ(out->get(want[size_t(p)]), "part " + std::to_string(p) + ", round 3");
}

TEST(S3Job, WithoutCredentialsRunSaysWhatIsMissing) {
  S3Server s3;
  ProcessResult r =
      run_process({"/usr/bin/env", "-u", "AWS_ACCESS_KEY_ID", "-u", "AWS_SECRET_ACCESS_KEY",
                   "AWS_ENDPOINT_URL_S3=" + s3.endpoint(), SEMANTICS_APP, "run", "--event",
                   R"({"program":"large_state"})", "--store", "s3://kappa/jobs"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err,
                       "no AWS credentials for s3://kappa/jobs: set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY"))
      << r.err;
}

}  // namespace
}  // namespace kappa::testing
