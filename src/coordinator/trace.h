// TraceRecorder: the job's timeline as a Chrome/Perfetto trace (JSON). Fed
// what JobState emits with options.tracing (TraceSpan, TraceMark), it shows:
//   - on each worker's track (process "workers", or "on_coordinator
//     workers"; thread = worker id), a span per invocation (a task on a
//     worker, from hand-out to finish, park, yield or the worker's loss);
//   - inside it, each checkpoint's capture and write spans, with the image's
//     size, placed just before the call that carried it reached the
//     coordinator (moved later where they would overlap the checkpoint
//     before: the worker's own clock is not the coordinator's);
//   - "park" and "relaunch" instants: an invocation that ended with its
//     call blocked, and one that resumes a task after a park, yield or loss;
//   - arrows (flow events "s"/"f") from a spawn to the child's first
//     invocation, and from a finish to the invocation of the waiter it
//     wakes; each drawn only when both ends are in the trace;
//   - queue waits as async spans (process "queues", one track per wait),
//     from a blocked enqueue or dequeue to its completion.
// Times are whole microseconds from `zero`.
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
  void add(const TraceMark& mark) { marks_.push_back(mark); }
  size_t size() const { return spans_.size(); }
  /// Throws kappa::Error if the file cannot be written.
  void write(const std::string& path) const;

 private:
  TimePoint zero_;
  std::vector<TraceSpan> spans_;
  std::vector<TraceMark> marks_;
};

}  // namespace kappa::detail
