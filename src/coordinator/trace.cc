#include "coordinator/trace.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "kappa/error.h"

namespace kappa::detail {

namespace {

constexpr int kWorkers = 1, kCoordinatorWorkers = 2, kQueues = 3;  // trace "processes"

// An invocation's place in the trace.
struct Slot {
  int pid = kWorkers;
  uint64_t tid = 0;
  int64_t start = 0, end = 0;
  // A time within the span, strictly inside when it lasts 2 us or more, so
  // that a flow event binds to it rather than to a neighbour.
  int64_t inside(int64_t t) const {
    int64_t margin = end - start >= 2 ? 1 : 0;
    return std::clamp(t, start + margin, end - margin);
  }
};

}  // namespace

void TraceRecorder::write(const std::string& path) const {
  auto us = [&](TimePoint t) {
    return int64_t(std::chrono::duration_cast<std::chrono::microseconds>(t - zero_).count());
  };
  nlohmann::json events = nlohmann::json::array();
  std::unordered_map<uint64_t, Slot> slots;  // by invocation id
  for (const TraceSpan& s : spans_) {
    Slot slot{s.on_coordinator ? kCoordinatorWorkers : kWorkers, s.worker, us(s.start), us(s.end)};
    if (s.invocation) slots[s.invocation] = slot;
    events.push_back({{"name", s.name.empty() ? "task " + std::to_string(s.task) : s.name},
                      {"cat", s.kind},
                      {"ph", "X"},
                      {"ts", slot.start},
                      {"dur", slot.end - slot.start},
                      {"pid", slot.pid},
                      {"tid", slot.tid},
                      {"args", {{"task", s.task}, {"outcome", s.outcome}}}});
  }

  // Checkpoints, per invocation in arrival order: capture then write, ending
  // at the call's arrival, never before the end of the one before.
  std::vector<const TraceMark*> checkpoints;
  for (const TraceMark& m : marks_)
    if (m.kind == TraceMark::Kind::kCheckpoint && slots.count(m.invocation))
      checkpoints.push_back(&m);
  std::stable_sort(checkpoints.begin(), checkpoints.end(), [](auto* a, auto* b) {
    return a->invocation != b->invocation ? a->invocation < b->invocation : a->at < b->at;
  });
  uint64_t last_invocation = 0;
  int64_t previous_end = 0;
  for (const TraceMark* m : checkpoints) {
    const Slot& slot = slots[m->invocation];
    if (m->invocation != last_invocation) previous_end = slot.start;
    last_invocation = m->invocation;
    int64_t end = std::clamp(us(m->at), previous_end, slot.end);
    int64_t total = int64_t(m->capture_us) + (m->stored ? int64_t(m->write_us) : 0);
    int64_t start = std::max(end - total, previous_end);
    int64_t capture = total ? (end - start) * int64_t(m->capture_us) / total : 0;
    nlohmann::json args = {{"task", m->task},         {"op", op_name(m->op)},
                           {"bytes", m->bytes},       {"capture_us", m->capture_us},
                           {"write_us", m->write_us}, {"image", m->stored ? "stored" : "inline"}};
    events.push_back({{"name", "checkpoint capture"},
                      {"cat", "checkpoint"},
                      {"ph", "X"},
                      {"ts", start},
                      {"dur", m->stored ? capture : end - start},
                      {"pid", slot.pid},
                      {"tid", slot.tid},
                      {"args", args}});
    if (m->stored)
      events.push_back({{"name", "checkpoint write"},
                        {"cat", "checkpoint"},
                        {"ph", "X"},
                        {"ts", start + capture},
                        {"dur", end - start - capture},
                        {"pid", slot.pid},
                        {"tid", slot.tid},
                        {"args", args}});
    previous_end = end;
  }

  uint64_t next_id = 1;
  for (const TraceMark& m : marks_) {
    switch (m.kind) {
      case TraceMark::Kind::kCheckpoint:
        break;
      case TraceMark::Kind::kPark:
      case TraceMark::Kind::kRelaunch: {
        auto it = slots.find(m.invocation);
        if (it == slots.end()) break;
        bool park = m.kind == TraceMark::Kind::kPark;
        nlohmann::json args = {{"task", m.task}};
        if (park) args["op"] = op_name(m.op);
        events.push_back({{"name", park ? "park" : "relaunch"},
                          {"cat", "task"},
                          {"ph", "i"},
                          {"s", "t"},
                          {"ts", std::clamp(us(m.at), it->second.start, it->second.end)},
                          {"pid", it->second.pid},
                          {"tid", it->second.tid},
                          {"args", args}});
        break;
      }
      case TraceMark::Kind::kFlow: {
        auto from = slots.find(m.from), to = slots.find(m.invocation);
        if (from == slots.end() || to == slots.end()) break;  // both ends, or no arrow
        uint64_t id = next_id++;
        int64_t start = from->second.inside(us(m.since));
        int64_t end = to->second.inside(us(m.at));
        nlohmann::json args = {{"task", m.task}};
        events.push_back({{"name", m.flow},
                          {"cat", "flow"},
                          {"ph", "s"},
                          {"id", id},
                          {"ts", start},
                          {"pid", from->second.pid},
                          {"tid", from->second.tid},
                          {"args", args}});
        events.push_back({{"name", m.flow},
                          {"cat", "flow"},
                          {"ph", "f"},
                          {"bp", "e"},
                          {"id", id},
                          {"ts", end},
                          {"pid", to->second.pid},
                          {"tid", to->second.tid},
                          {"args", args}});
        break;
      }
      case TraceMark::Kind::kQueueWait: {
        uint64_t id = next_id++;
        std::string name = std::string(op_name(m.op)) + " wait, queue " + std::to_string(m.queue);
        nlohmann::json args = {{"task", m.task}, {"queue", m.queue}};
        for (const char* ph : {"b", "e"})
          events.push_back({{"name", name},
                            {"cat", "queue"},
                            {"ph", ph},
                            {"id", id},
                            {"ts", us(*ph == 'b' ? m.since : m.at)},
                            {"pid", kQueues},
                            {"tid", m.queue},
                            {"args", args}});
        break;
      }
    }
  }

  for (int pid : {kWorkers, kCoordinatorWorkers, kQueues})
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"args",
                       {{"name", pid == kWorkers              ? "workers"
                                 : pid == kCoordinatorWorkers ? "on_coordinator workers"
                                                              : "queues"}}}});
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
  out.close();
  if (!out) throw Error("cannot write the trace to " + path);
}

}  // namespace kappa::detail
