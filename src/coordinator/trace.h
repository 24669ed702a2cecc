// TraceRecorder: the job's timeline as a Chrome/Perfetto trace (JSON): one
// span per invocation (a task on a worker, from hand-out to finish, park,
// yield or the worker's loss). Fed the spans JobState emits.
//
// Thread safety: none; the coordinator calls it under its lock.
#pragma once

#include <string>
#include <vector>

#include "coordinator/job_state.h"

namespace kappa::detail {

class TraceRecorder {
 public:
  /// Times in the file count from `zero`.
  explicit TraceRecorder(TimePoint zero) : zero_(zero) {}
  void add(TraceSpan span) { spans_.push_back(std::move(span)); }
  size_t size() const { return spans_.size(); }
  /// Throws kappa::Error if the file cannot be written.
  void write(const std::string& path) const;

 private:
  TimePoint zero_;
  std::vector<TraceSpan> spans_;
};

}  // namespace kappa::detail
