// JournalView: a job as its journal kept it (`APP status`), through the
// same views as a running coordinator's (job_view.h), read-only.
//
// A journal keeps what a restart needs, not what a viewer would like: a
// resolved task leaves only its future (finished, or failed with its error),
// so resolved tasks have no name, parent or history here; a live task has
// its name and function, and its latest call says where it waits. Task
// events and invocations are not journaled: `recent` is empty.
//
// Thread safety: const after construction.
#pragma once

#include <string>
#include <vector>

#include "coordinator/job_view.h"

namespace kappa::detail {

class JournalView final : public JobViewSource {
 public:
  explicit JournalView(const DurableJob& job);

  JobView job_view(size_t recent) const override;
  TaskPage task_page(const TaskQuery& query) const override;
  std::optional<TaskView> task_view(uint64_t id) const override;
  std::vector<QueueView> queue_views() const override;

  /// One paragraph: tasks by state, and the outcome.
  std::string summary() const;

 private:
  JobView job_;
  std::vector<TaskView> tasks_;  // by id, ids without a record skipped
  std::vector<QueueView> queues_;
};

}  // namespace kappa::detail
