// ProgressLine: the one status line `run` keeps on a terminal while a job
// runs (issue 12): tasks done/total, running, parked, workers,
// checkpoints/s, elapsed time, redrawn in place a few times a second.
//
// It draws only on a terminal: with stderr a pipe or a file (CI logs) it
// writes nothing at all. The line never wraps (it is cut to the terminal's
// width, read at each redraw), and finish() erases it, so that the lines
// printed after the job (its result, the summary) start on a clean line.
//
// Thread safety: none; one thread (run_job's) draws.
#pragma once

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

#include "coordinator/job_state.h"

namespace kappa::detail {

/// The status line's text for `stats` after `elapsed_s` seconds, with
/// checkpoints taken at `checkpoints_per_s`, cut to `width` columns (0: not
/// cut). Pure, for tests.
std::string progress_text(const JobStats& stats, double elapsed_s, double checkpoints_per_s,
                          size_t width);

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;
  /// Draws on `out` (whose descriptor is `fd`) if `enabled` and `fd` is a
  /// terminal; otherwise every call does nothing.
  ProgressLine(std::FILE* out, int fd, bool enabled);
  ~ProgressLine();  // finish()
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  bool active() const { return active_; }
  /// Redraws the line with the job's counts at `now`.
  void update(const JobStats& stats, Clock::time_point now = Clock::now());
  /// Erases the line (idempotent); nothing is drawn after it.
  void finish();

 private:
  size_t width() const;

  std::FILE* out_;
  int fd_;
  bool active_;
  bool drawn_ = false;
  Clock::time_point start_;
  // (time, checkpoints) at recent redraws: the rate is over the last second.
  std::deque<std::pair<Clock::time_point, uint64_t>> samples_;
};

}  // namespace kappa::detail
