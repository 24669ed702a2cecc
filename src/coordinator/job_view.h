// Views of a job for people watching it (the live view, `APP status`): what
// each task is, where it is, why it waits or fails, which invocations it had;
// recent task events; the queues. Plain values, copied out of JobState under
// the coordinator's lock, so a view's reader holds no lock.
//
// JobState keeps what these views need only when JobStateOptions::observe is
// set (a job run with --ui): without it nothing of this is recorded and the
// snapshots are empty but for the counts.
//
// JobViewSource is the seam a viewer reads through: the Coordinator of a
// running job, or a job read back from its journal (`APP status`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/job_state.h"

namespace kappa::detail {

/// Where a task is. Live tasks: waiting (for the futures it was spawned
/// with), ready (for a worker), running, blocked (its call waits, holding
/// its worker for the grace period), parked (its call waits, no worker).
enum class TaskPhase : uint8_t {
  kWaiting,
  kReady,
  kRunning,
  kBlocked,
  kParked,
  kFinished,
  kFailed
};
constexpr size_t kTaskPhases = 7;

/// "waiting", "ready", "running", "blocked", "parked", "finished", "failed".
const char* phase_name(TaskPhase p);
/// The phase named `name` (phase_name's inverse), if any.
std::optional<TaskPhase> parse_phase(const std::string& name);

/// One invocation of a task on a worker. Times are seconds since the job
/// started (in this coordinator process); `end` < 0 while it runs.
struct InvocationView {
  uint64_t worker = 0;
  bool resume = false;  // from a checkpoint (else: from the start)
  double start = 0, end = -1;
  std::string outcome;       // finished, failed, park, yield, worker lost: ... (empty: running)
  uint64_t checkpoints = 0;  // calls carrying a new checkpoint image
  uint64_t checkpoint_bytes = 0;  // their images' sizes
};

struct TaskView {
  uint64_t id = 0, parent = 0;  // parent 0: the root task, or unknown (read from a journal)
  std::string name;             // SpawnOptions::name ("handler" for the root), may be empty
  uint64_t fn = 0;              // the function, as a code_offset (0: unknown): names unnamed tasks
  bool on_coordinator = false;
  TaskPhase phase = TaskPhase::kWaiting;
  std::string why;                      // parked, blocked, waiting: on what; failed: the error;
                                        // retrying: why its last worker died
  unsigned failures = 0;                // worker deaths since its last progress (> 0: retrying)
  uint64_t invocations = 0;             // how many it had in all
  std::vector<InvocationView> history;  // the latest ones (at most kHistory), oldest first
  static constexpr size_t kHistory = 32;
};

/// A task event (spawned, started, resumed, parked, finished, failed, lost
/// its worker), for the "recent" list.
struct TaskEvent {
  double at = 0;  // seconds since the job started
  uint64_t task = 0;
  std::string name;  // as TaskView::name
  uint64_t fn = 0;
  std::string what;
};

struct QueueView {
  uint64_t id = 0, max_size = 0;
  uint64_t depth = 0;               // items in it
  std::vector<uint64_t> enqueuers;  // tasks waiting to enqueue (first few)
  std::vector<uint64_t> dequeuers;  // tasks waiting to dequeue (first few)
  uint64_t enqueuers_total = 0, dequeuers_total = 0;
};

/// Which tasks a page lists: all, or one phase, or the retrying ones (live,
/// with failures > 0); `offset` and `limit` within that selection, by id.
struct TaskQuery {
  std::optional<TaskPhase> phase;
  bool retrying = false;
  uint64_t offset = 0, limit = 50;
};

struct TaskPage {
  uint64_t total = 0;           // tasks in the selection
  std::vector<TaskView> tasks;  // without their history
};

struct JobView {
  enum class State : uint8_t { kRunning, kDone, kFailed } state = State::kRunning;
  std::string error;  // kFailed: why
  JobStats stats;
  uint64_t workers_busy = 0, workers_idle = 0;
  double elapsed = 0;     // seconds since the job started (frozen once it ended)
  bool observed = false;  // tasks, events and histories are recorded (else: counts only)
  // Calls, checkpoints, invocations and billed time were counted (a
  // coordinator's view; a journal keeps none of them).
  bool activity = true;
  std::vector<TaskEvent> recent;  // newest last
};

/// What a viewer reads a job through. Thread safety: any thread.
class JobViewSource {
 public:
  virtual ~JobViewSource() = default;
  /// The job's state, counts and the latest `recent` task events.
  virtual JobView job_view(size_t recent) const = 0;
  virtual TaskPage task_page(const TaskQuery& query) const = 0;
  /// One task with its invocation history; nullopt for an unknown id.
  virtual std::optional<TaskView> task_view(uint64_t id) const = 0;
  virtual std::vector<QueueView> queue_views() const = 0;
};

}  // namespace kappa::detail
