// The messages of the worker <-> coordinator protocol (DESIGN.md section 4),
// as plain values. Shared by the worker, the transports (which carry them as
// kappa.proto messages) and the coordinator, none of which needs to know the
// others.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kappa/pause.h"
#include "util/shared_string.h"

namespace kappa::detail {

/// The coordinator's answer to a worker asking for work.
struct Assignment {
  enum class Kind {
    kIdle,      // nothing to do yet: ask again
    kStart,     // run trampoline(fn, args) as task `task_id`
    kResume,    // restore the image, deliver the call's result, resume
    kShutdown,  // the job is over (or this worker is no longer wanted): exit
  } kind = Kind::kIdle;
  uint64_t task_id = 0;
  uint64_t fn = 0, trampoline = 0;  // kStart
  std::vector<std::string> args;    // kStart: encoded arguments
  std::string image_key;            // kResume: the image chain in the store (image_chain.h), or
  std::string image;                // kResume: the image itself (small images travel inline)
  uint64_t seqno = 0;               // kResume: the pending call's seqno
  std::string reply, error;         // kResume: the pending call's result
  double time_left = 0;             // seconds this invocation may run (0: no limit)
  std::string name;                 // the task's name, for logs
};

/// A pause point reported by a worker: the call (task, seqno, op, request)
/// and the checkpoint it resumes from.
struct CallInfo {
  uint64_t worker_id = 0, task_id = 0, seqno = 0;
  std::string image_key;  // the checkpoint's image chain in the store (image_chain.h), or
  std::string image;      // the checkpoint itself, kept by the coordinator
  Op op = Op::kCheckpoint;
  std::string request;
  // What the call's checkpoint cost the worker (for statistics, the cost
  // estimate and traces; never for decisions). All zero when the call
  // carries no new image.
  uint64_t image_bytes = 0;  // the image's size: written to the store, or inline
  uint32_t capture_us = 0;   // taking the image (compression included)
  uint32_t write_us = 0;     // writing it to the store (0: it travels inline)
};

/// The coordinator's answer to a call.
struct CallOutcome {
  enum class Kind {
    kResult,   // the call completed: deliver reply/error and resume
    kPark,     // the call blocks: drop the task, it is relaunched later
    kAbandon,  // a stale call (the task runs elsewhere): drop the task
  } kind = Kind::kResult;
  SharedString reply;  // shared with the coordinator's record of the call
  std::string error;
};

/// A task ended on a worker (returned, or threw).
struct FinishInfo {
  uint64_t worker_id = 0, task_id = 0;
  uint64_t seqno = 0;  // pause points the task had passed: a stale finish has fewer
  bool failed = false;
  std::string result;     // encoded return value
  std::string error;      // what escaped the task
  bool and_next = false;  // answer with the worker's next Assignment
};

/// What a worker says about the synchronous signal that is killing it,
/// before it dies (sent by its liveness thread).
struct CrashReport {
  uint64_t worker_id = 0, task_id = 0;
  int signal = 0;
  std::string backtrace;
};

}  // namespace kappa::detail
