// Journal: the durability seam of the coordinator. After every event, and
// before any of its answers leaves, the coordinator hands the journal what
// changed in the job's durable state (JobState's Changes: the tasks, queues
// and job outcome touched); a journal writes exactly that, so that a
// restarted coordinator can continue the job. The default keeps nothing
// (the job lives in memory, as the reference implementation's does).
//
// Thread safety: called with the coordinator's lock held, one call at a time.
#pragma once

#include "coordinator/job_state.h"

namespace kappa::detail {

class Journal {
 public:
  virtual ~Journal() = default;
  /// Makes `changes` durable, reading their values from `state`. Throws
  /// kappa::Error if it cannot (the job then fails: nothing is answered that
  /// a restart could not honour).
  virtual void record(const JobState& state, const Changes& changes) = 0;
};

}  // namespace kappa::detail
