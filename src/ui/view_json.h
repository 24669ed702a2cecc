// The live view's JSON (docs/live-view.md): the views of job_view.h as the
// HTTP API returns them. Tasks without a name are named after their
// function (FunctionNames).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "coordinator/cost.h"
#include "coordinator/job_view.h"
#include "ui/function_names.h"

namespace kappa::detail {

/// What /api/job says beyond the job's own view.
struct JobJsonOptions {
  double memory_mb = kDefaultLambdaMemoryMb;  // Lambda memory the cost estimate assumes
  LambdaPrices prices;
};

/// GET /api/job.
nlohmann::json job_json(const JobView& v, FunctionNames& names, const JobJsonOptions& options);
/// One row of GET /api/tasks, or GET /api/tasks/ID with its history.
nlohmann::json task_json(const TaskView& t, FunctionNames& names, bool history);
/// GET /api/tasks.
nlohmann::json task_page_json(const TaskPage& page, const TaskQuery& query, FunctionNames& names);
/// GET /api/queues.
nlohmann::json queues_json(const std::vector<QueueView>& queues);

}  // namespace kappa::detail
