// Coordinator: the thin concurrent shell around JobState (job_state.h).
//
// It owns the lock, the threads and the clock; JobState owns every decision.
// Each event (a worker's request through a transport, a worker's exit
// reported by the backend, a timer) runs under the lock as one JobState
// method; its effects are then carried out:
//   - at once, under the lock, the ones that only concern this process: the
//     backend is told which invocations started or ended (their time limits)
//     and which workers to kill, trace spans are kept, the timer is armed;
//   - with a journal, what changed is staged. Nothing is told that a
//     restart could take back: an event that tells something of the sort
//     (must_wait(): a call's result, a launch, a commit, the job's end)
//     is written at once by the thread that handled it, with the lock
//     released (Journal: group commit), and its effects wait until it is
//     durable, then are released in event order. The answers of any other
//     event (a finished task's acknowledgement, a park, a start of a task
//     that is durable: Effects::Answer::Gate) go at once, and the flusher
//     thread writes it kFlushDelay later, with the events that follow it;
//   - the answers to workers are sent after the lock is released, on the
//     same thread, so that a completed call is answered by the thread that
//     completed it, with no hand-off on the way;
//   - on threads of their own: worker launches (a Lambda invoke or an sbatch
//     may take seconds, and may fail), removals of images from the store
//     (an unlink of a large image takes ~100 us), and the commits that make
//     puts visible in the data store.
// A timer thread fires JobState's timers (grace periods, idle polls,
// liveness checks) when the clock reaches them.
//
// The coordinator knows no transport (transports call it as a
// WorkerService), no backend implementation (it calls a Backend and is told
// of exits as WorkerEvents) and no command line.
//
// Thread safety: every public method may be called from any thread. Answers
// go to a worker's WorkerLink with no coordinator lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "backends/backend.h"
#include "coordinator/job_state.h"
#include "coordinator/job_view.h"
#include "coordinator/journal.h"
#include "coordinator/trace.h"
#include "protocol/worker_service.h"
#include "stores/checkpoint_store.h"
#include "util/clock.h"
#include "util/serial_executor.h"

namespace kappa::detail {

class Coordinator final : public WorkerService, public WorkerEvents, public JobViewSource {
 public:
  /// `store` (may be null) is where discarded images are removed from;
  /// `journal` (may be null: nothing durable) records every change.
  Coordinator(JobStateOptions options, CheckpointStore* store, Clock& clock = Clock::steady(),
              Journal* journal = nullptr);
  ~Coordinator() override;
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  /// Must be set before the root task is spawned; must outlive the
  /// coordinator's use of it (shut the backend down after shutdown()).
  void set_backend(Backend* backend);
  /// The job's data store, where puts are made visible (before the root
  /// task is spawned; may stay unset when no task puts).
  void set_data_store(CheckpointStore* data);

  /// Creates the job's root task (id 1).
  uint64_t spawn_root(SpawnSpec spec);
  /// Continues a job a journal kept (instead of spawn_root).
  void restore(DurableJob job);

  // WorkerService (the transports)
  void connect(uint64_t worker, std::shared_ptr<WorkerLink> link) override;
  void disconnect(uint64_t worker, bool lost) override;
  void next(uint64_t worker) override;
  void call(CallInfo info) override;
  void finish(FinishInfo info) override;
  void heartbeat(uint64_t worker) override;
  void crash_report(CrashReport report) override;

  // WorkerEvents (the backend)
  void worker_exited(uint64_t worker, WorkerExit exit) override;

  /// Waits (in real time) until the job's outcome is known, or `timeout`.
  /// When the journal fails, the job stops (nothing more is told to
  /// workers) and this reports it as failed.
  JobOutcome wait_job(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// Ends the job: workers are told to shut down, no worker is launched any
  /// more.
  void shutdown();
  /// Waits until the images discarded so far have left the store.
  void drain_store();

  JobStats stats() const;

  // JobViewSource (a viewer: job_view.h; tasks only with options.observe).
  // Each is one copy under the lock, of what the view asks for.
  JobView job_view(size_t recent) const override;
  TaskPage task_page(const TaskQuery& query) const override;
  std::optional<TaskView> task_view(uint64_t id) const override;
  std::vector<QueueView> queue_views() const override;
  /// Writes the trace recorded so far (options.tracing) to `path`.
  void write_trace(const std::string& path) const;

 private:
  struct Outgoing {
    std::shared_ptr<WorkerLink> link;
    Effects::Answer answer;
  };
  /// Runs `event(state, now, effects)` under the lock and carries out its
  /// effects.
  template <class Event>
  void handle(Event&& event);
  /// Carries out the effects of the event in fx_ (mu_ held on entry,
  /// released on return).
  void settle(std::unique_lock<std::mutex>& lock);
  void carry_out_now(Effects& fx);                        // mu_ held
  void release(Effects& fx, std::vector<Outgoing>& out);  // mu_ held; fills `out`
  void release_held(std::vector<Outgoing>& out);          // mu_ held; what is durable now
  void journal_failed(const std::string& why);            // mu_ held
  /// Makes the events up to `ticket` durable, with `lock` (on mu_) released
  /// meanwhile; a failure fails the journal.
  void sync(uint64_t ticket, std::unique_lock<std::mutex>& lock);
  /// Whether the effects of an event that is not durable yet must wait
  /// until it is (else only its discarded images wait). mu_ held.
  bool must_wait(const Effects& fx) const;
  void flush_loop();
  static void send(std::vector<Outgoing>& out);  // no lock held
  void timer_loop();
  void launch(Effects::Launch l);
  void commit(const Effects::Commit& c);

  JobState state_;
  Clock& clock_;
  CheckpointStore* store_;
  CheckpointStore* data_ = nullptr;
  Journal* journal_;
  Backend* backend_ = nullptr;
  mutable std::mutex mu_;
  Effects fx_;                      // the current event's, reused
  std::optional<TimePoint> armed_;  // the timer the timer thread waits for
  std::string journal_error_;       // set: the journal failed, the job is stopped
  struct Held {
    uint64_t ticket;  // the journal's, for the event
    Effects fx;
  };
  std::deque<Held> held_;      // effects of events not yet durable, in event order
  uint64_t durable_ = 0;       // the journal's ticket up to which events are durable
  uint64_t tasks_ticket_ = 0;  // the last event that created tasks or changed their arguments
  uint64_t flush_ticket_ = 0;  // the last event the flusher is to make durable
  bool flushing_ = false;      // the flusher has events to write (it is not idle)
  // How long an event that nobody waits for may stay in memory only.
  static constexpr std::chrono::milliseconds kFlushDelay{2};
  bool done_told_ = false;  // the job's outcome is known, and durable
  TimePoint ended_at_;      // when done_told_ was set (a view's elapsed time stops there)
  std::unordered_map<uint64_t, std::shared_ptr<WorkerLink>> links_;
  TraceRecorder trace_;
  std::condition_variable job_cv_, timer_cv_, flush_cv_;
  bool stopping_ = false;
  SerialExecutor remover_, committer_, launcher_;
  std::thread flusher_;  // with a journal (flush_loop)
  std::thread timer_;    // the last member: it starts after the others
};

}  // namespace kappa::detail
