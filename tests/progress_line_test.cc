// The progress line's text and the end-of-job summary (cli/progress_line.h,
// cli/job_runner.h); observe_test.cc checks them on a real terminal.
#include "cli/progress_line.h"

#include <gtest/gtest.h>

#include "cli/job_runner.h"

namespace kappa::detail {
namespace {

JobStats some_job() {
  JobStats s;
  s.tasks = 40;
  s.finished = 12;
  s.failed = 1;
  s.running = 2;
  s.blocked = 1;
  s.parked = 5;
  s.workers_live = 3;
  return s;
}

TEST(ProgressText, ShowsTheCountsRateAndElapsedTime) {
  EXPECT_EQ(progress_text(some_job(), 7.44, 12.4, 0),
            "kappa: 13/40 tasks done, 3 running, 5 parked, 3 workers, 12 checkpoints/s, 7.4 s "
            "(1 failed)");
  EXPECT_EQ(progress_text(JobStats{}, 185, 0, 0),
            "kappa: 0/0 tasks done, 0 running, 0 parked, 0 workers, 0 checkpoints/s, 3 min 05 s");
}

TEST(ProgressText, IsCutToTheWidth) {
  std::string full = progress_text(some_job(), 1, 1, 0);
  for (size_t width : {1u, 20u, 59u}) {
    std::string cut = progress_text(some_job(), 1, 1, width);
    EXPECT_EQ(cut.size(), width);
    EXPECT_EQ(full.rfind(cut, 0), 0u);  // a prefix
  }
  EXPECT_EQ(progress_text(some_job(), 1, 1, 1000), full);
}

TEST(ProgressLine, DrawsNothingWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressLine line(f, fileno(f), true);
    EXPECT_FALSE(line.active());
    line.update(some_job());
  }
  EXPECT_EQ(std::ftell(f), 0);
  std::fclose(f);
}

TEST(Summary, CarriesCheckpointsInvocationsAndTheCostEstimate) {
  JobStats s;
  s.tasks = 9;
  s.parks = 3;
  s.checkpoints = 12;
  s.checkpoint_bytes = 1'500'000;
  s.invocations = 14;
  s.billed_ms = 60'000;  // 60 GB-s at 1024 MB: $0.001000002, plus 14 requests
  s.blocked_wait_ms = 120'000;
  EXPECT_EQ(describe_job(s, 1024, LambdaPrices{}),
            "9 tasks, 3 parks, no worker deaths; 12 checkpoints (1.5 MB), 14 invocations; "
            "~$0.0010 on Lambda (1024 MB); $0.0030 if blocked waits were billed");
}

}  // namespace
}  // namespace kappa::detail
