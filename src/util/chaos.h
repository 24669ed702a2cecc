// The window a --chaos-kill is drawn in. A drawn kill lands at a random
// moment of an invocation whose length is not known in advance, so the
// moment is drawn within twice the mean length of the invocations that ended
// so far: most drawn kills land while the invocation still runs, and one that
// would land after it ended is dropped. Before any invocation has ended there
// is no mean; the window is then a second (or the time limit), so that the
// first invocations of a job, often its longest (a root task computing in one
// invocation), can be killed after their first checkpoint too, not only in
// their first millisecond.
#pragma once

#include <algorithm>

namespace kappa::detail {

// Seconds from an invocation's start within which its chaos kill is drawn.
// `mean_seconds` is the mean length of ended invocations (0: none ended yet),
// `time_left_seconds` what the invocation may run (0: no limit), and
// `floor_seconds` the shortest window the caller can act on.
inline double chaos_kill_span(double mean_seconds, double time_left_seconds, double floor_seconds) {
  constexpr double kUnknownMean = 1.0;
  double span = mean_seconds > 0 ? std::max(floor_seconds, 2 * mean_seconds) : kUnknownMean;
  if (time_left_seconds > 0) span = std::min(span, time_left_seconds);
  return span;
}

}  // namespace kappa::detail
