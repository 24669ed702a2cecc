#include "ui/view_json.h"

namespace kappa::detail {
namespace {

std::string display_name(const std::string& name, uint64_t fn, FunctionNames& names) {
  if (!name.empty()) return name;
  std::string f = names.name(fn);
  return f.empty() ? std::string("task") : f;
}

const char* job_state_name(JobView::State s) {
  switch (s) {
    case JobView::State::kRunning:
      return "running";
    case JobView::State::kDone:
      return "done";
    case JobView::State::kFailed:
      return "failed";
  }
  return "running";
}

}  // namespace

nlohmann::json job_json(const JobView& v, FunctionNames& names, const JobJsonOptions& options) {
  const JobStats& s = v.stats;
  nlohmann::json recent = nlohmann::json::array();
  for (const TaskEvent& e : v.recent)
    recent.push_back({{"at", e.at},
                      {"task", e.task},
                      {"name", display_name(e.name, e.fn, names)},
                      {"what", e.what}});
  nlohmann::json j = {
      {"state", job_state_name(v.state)},
      {"elapsed", v.elapsed},
      {"observed", v.observed},
      {"tasks",
       {{"total", s.tasks},
        {"waiting", s.waiting},
        {"ready", s.ready},
        {"running", s.running},
        {"blocked", s.blocked},
        {"parked", s.parked},
        {"finished", s.finished},
        {"failed", s.failed}}},
      {"workers",
       {{"busy", v.workers_busy}, {"idle", v.workers_idle}, {"launched", s.workers_launched}}},
      {"recent", std::move(recent)},
  };
  if (!v.error.empty()) j["error"] = v.error;
  if (!v.activity) return j;  // read from a journal: never counted, so not shown
  nlohmann::json calls_by_kind = nlohmann::json::object();
  for (size_t op = 1; op < kOpSlots; ++op)
    if (s.calls_by_op[op]) calls_by_kind[op_name(Op(op))] = s.calls_by_op[op];
  CostEstimate cost = estimate_cost(s, options.memory_mb, options.prices);
  j.update({
      {"calls", s.calls},
      {"calls_by_kind", std::move(calls_by_kind)},
      {"duplicate_calls", s.duplicate_calls},
      {"parks", s.parks},
      {"relaunches", s.relaunches},
      {"worker_deaths", s.total_deaths()},
      {"checkpoints",
       {{"taken", s.checkpoints},
        {"bytes", s.checkpoint_bytes},
        {"stored", s.stored_checkpoints},
        {"image_reads", s.image_reads}}},
      {"invocations", s.invocations},
      {"billed_ms", s.billed_ms},
      {"blocked_wait_ms", s.blocked_wait_ms},
      {"cost",
       {{"usd", cost.usd},
        {"usd_if_blocked_billed", cost.usd_if_blocked_billed},
        {"gb_seconds", cost.gb_seconds},
        {"requests", cost.requests},
        {"s3_puts", cost.s3_puts},
        {"s3_gets", cost.s3_gets},
        {"memory_mb", options.memory_mb}}},
  });
  return j;
}

nlohmann::json task_json(const TaskView& t, FunctionNames& names, bool history) {
  nlohmann::json j = {{"id", t.id},
                      {"parent", t.parent},
                      {"name", display_name(t.name, t.fn, names)},
                      {"state", phase_name(t.phase)},
                      {"why", t.why},
                      {"failures", t.failures},
                      {"invocations", t.invocations},
                      {"on_coordinator", t.on_coordinator}};
  if (history) {
    nlohmann::json h = nlohmann::json::array();
    for (const InvocationView& i : t.history) {
      nlohmann::json r = {{"worker", i.worker},
                          {"kind", i.resume ? "resume" : "start"},
                          {"start", i.start},
                          {"checkpoints", i.checkpoints},
                          {"checkpoint_bytes", i.checkpoint_bytes}};
      if (i.end >= 0) {
        r["end"] = i.end;
        r["outcome"] = i.outcome;
      } else {
        r["end"] = nullptr;
        r["outcome"] = "running";
      }
      h.push_back(std::move(r));
    }
    j["history"] = std::move(h);
    j["history_dropped"] = t.invocations - t.history.size();
  }
  return j;
}

nlohmann::json task_page_json(const TaskPage& page, const TaskQuery& query, FunctionNames& names) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const TaskView& t : page.tasks) tasks.push_back(task_json(t, names, false));
  return {{"total", page.total},
          {"offset", query.offset},
          {"limit", query.limit},
          {"tasks", std::move(tasks)}};
}

nlohmann::json queues_json(const std::vector<QueueView>& queues) {
  nlohmann::json out = nlohmann::json::array();
  for (const QueueView& q : queues)
    out.push_back({{"id", q.id},
                   {"max_size", q.max_size},
                   {"depth", q.depth},
                   {"enqueuers", q.enqueuers},
                   {"dequeuers", q.dequeuers},
                   {"enqueuers_total", q.enqueuers_total},
                   {"dequeuers_total", q.dequeuers_total}});
  return {{"queues", std::move(out)}};
}

}  // namespace kappa::detail
