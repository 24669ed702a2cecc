#include "coordinator/trace.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "kappa/error.h"

namespace kappa::detail {

void TraceRecorder::write(const std::string& path) const {
  auto us = [&](TimePoint t) {
    return std::chrono::duration<double, std::micro>(t - zero_).count();
  };
  nlohmann::json events = nlohmann::json::array();
  for (const TraceSpan& s : spans_) {
    events.push_back({{"name", s.name.empty() ? "task " + std::to_string(s.task) : s.name},
                      {"cat", s.kind},
                      {"ph", "X"},
                      {"ts", us(s.start)},
                      {"dur", us(s.end) - us(s.start)},
                      {"pid", s.on_coordinator ? 2 : 1},
                      {"tid", s.worker},
                      {"args", {{"task", s.task}, {"outcome", s.outcome}}}});
  }
  for (int pid : {1, 2})
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"args", {{"name", pid == 1 ? "workers" : "on_coordinator workers"}}}});
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
  out.close();
  if (!out) throw Error("cannot write the trace to " + path);
}

}  // namespace kappa::detail
