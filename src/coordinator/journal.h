// Journal: the durability seam of the coordinator. After every event, and
// before any of its answers leaves, the coordinator hands the journal what
// changed in the job's durable state (JobState's Changes: the tasks, queues
// and job outcome touched); a journal writes exactly that, so that a
// restarted coordinator can continue the job. No journal is installed yet:
// the job lives in memory, as the reference implementation's does.
//
// Thread safety: called with the coordinator's lock held, one call at a time.
#pragma once

#include "coordinator/job_state.h"

namespace kappa::detail {

class Journal {
 public:
  virtual ~Journal() = default;
  /// Makes `changes` durable, reading their values from `state`, before the
  /// event's answers leave: nothing a worker is told may be lost by a
  /// restart. Throws kappa::Error if it cannot.
  virtual void record(const JobState& state, const Changes& changes) = 0;
};

}  // namespace kappa::detail
