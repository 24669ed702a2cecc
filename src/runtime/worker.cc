#include "runtime/worker.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "kappa/pause.h"
#include "rpc/coordinator_service.h"
#include "runtime/key.h"
#include "runtime/runtime.h"
#include "runtime/task_host.h"
#include "stores/checkpoint_store.h"

namespace kappa::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::string image_key(uint64_t task, uint64_t seqno) {
  char key[64];
  std::snprintf(key, sizeof key, "task-%" PRIu64 "/seq-%012" PRIu64 ".kpk", task, seqno);
  return key;
}

class Worker {
 public:
  explicit Worker(const WorkerOptions& o)
      : options_(o),
        client_(o.coordinator, o.token, o.worker_id),
        store_(open_store(o.store_url)),
        key_(load_key()) {}

  int run() {
    for (;;) {
      AssignmentInfo a = client_.next();
      switch (a.kind) {
        case AssignmentInfo::Kind::kIdle:
          continue;
        case AssignmentInfo::Kind::kShutdown:
          return 0;
        case AssignmentInfo::Kind::kStart:
        case AssignmentInfo::Kind::kResume:
          invocation(a);
      }
    }
  }

 private:
  void invocation(const AssignmentInfo& a) {
    auto start = Clock::now();
    std::optional<Clock::time_point> deadline;
    auto margin = std::chrono::duration<double>(0);
    if (a.time_left > 0) {
      deadline = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(a.time_left));
      // Hand over early enough to write a checkpoint and report it.
      margin = std::chrono::duration<double>(std::min(2.0, a.time_left * 0.2));
    }
    CheckpointClock::configure(std::chrono::duration<double>(options_.checkpoint_interval),
                               deadline, margin);
    Arena* arena = nullptr;
    try {
      if (a.kind == AssignmentInfo::Kind::kStart) {
        arena = start_task(reinterpret_cast<Trampoline>(a.trampoline), a.fn, a.args);
      } else {
        std::optional<std::string> image = store_->get(a.image_key);
        if (!image)
          throw Error("checkpoint image " + a.image_key + " is missing from " + store_->url());
        arena = restore_image(*image, key_);
        deliver(arena, a.reply, a.error);
      }
    } catch (const std::exception& e) {
      if (arena) discard_task(arena);
      client_.finish(a.task_id, a.seqno, true, {}, e.what());
      return;
    }
    run_task(a.task_id, arena, deadline, margin);
  }

  void run_task(uint64_t task_id, Arena* arena, std::optional<Clock::time_point> deadline,
                std::chrono::duration<double> margin) {
    for (;;) {
      bool done;
      try {
        done = resume_task(arena);
      } catch (const std::exception& e) {
        discard_task(arena);
        client_.finish(task_id, 0, true, {}, e.what());
        return;
      }
      if (done) {
        TaskOutcome out = finish_task(arena);
        client_.finish(task_id, 0, out.failed, out.value, out.error);
        return;
      }
      PendingCall& call = pending_call(arena);
      const TaskState& t = arena->task();
      CallInfo info;
      info.worker_id = options_.worker_id;
      info.task_id = task_id;
      info.seqno = t.seqno;
      info.image_key = image_key(task_id, t.seqno);
      info.op = call.op;
      info.request = call.request;  // copied out of the arena
      if (info.op == Op::kCheckpoint && deadline &&
          Clock::now() >= *deadline - std::chrono::duration_cast<Clock::duration>(margin))
        info.op = Op::kYield;
      write_image(*arena, options_.codec, key_, buffer_);
      store_->put(info.image_key, buffer_.view());
      if (call.op == Op::kCheckpoint) CheckpointClock::checkpoint_taken();
      CallOutcome o = client_.call(info);
      if (o.kind != CallOutcome::Kind::kResult) {
        discard_task(arena);
        return;
      }
      deliver(arena, o.reply, o.error);
    }
  }

  WorkerOptions options_;
  CoordinatorClient client_;
  std::unique_ptr<CheckpointStore> store_;
  std::string key_;
  ImageBuffer buffer_;
};

}  // namespace

namespace {
// A worker that crashes says where, in its log, before dying of the signal.
void on_fatal_signal(int sig) {
  char msg[64];
  int n = std::snprintf(msg, sizeof msg, "kappa worker: fatal signal %d; backtrace:\n", sig);
  ssize_t ignored = write(STDERR_FILENO, msg, size_t(n));
  (void)ignored;
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

int run_worker(const WorkerOptions& options) {
  runtime_init();
  {
    void* warm[1];
    backtrace(warm, 1);  // loads libgcc now, not inside the signal handler
  }
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) signal(sig, on_fatal_signal);
  try {
    return Worker(options).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kappa worker %" PRIu64 ": %s\n", options.worker_id, e.what());
    return 1;
  }
}

}  // namespace kappa::detail
