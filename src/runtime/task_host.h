// Hosting one task in this process: start it in a fresh arena, resume it
// pause point by pause point, deliver call results, collect its outcome.
// Shared by the solo driver and the worker loop.
#pragma once

#include <string>
#include <vector>

#include "kappa/detail/calls.h"
#include "runtime/arena.h"

namespace kappa::detail {

/// Creates an arena and, inside it, the task trampoline(fn, args); the task
/// is suspended at its start. Throws kappa::Error if no arena slot is free.
Arena* start_task(Trampoline trampoline, uint64_t fn, const std::vector<std::string>& args);

/// Runs the task until its next pause point (returns false; pending_call()
/// says what it waits on) or its end (returns true). Throws kappa::Error if
/// the task suspended on something that is not a kappa pause point.
bool resume_task(Arena* arena);

/// The call the suspended task waits on.
PendingCall& pending_call(Arena* arena);

/// Gives the call's result to the task: `reply` must stay valid and unchanged
/// until the task next suspends (it is decoded as the task resumes); `error`
/// is copied into the task's arena.
void deliver(Arena* arena, std::string_view reply, const std::string& error);

struct TaskOutcome {
  bool failed = false;
  std::string value;  // encoded return value
  std::string error;  // what escaped the task
};

/// Takes the finished task's outcome out of its arena, then destroys the
/// task and releases the arena.
TaskOutcome finish_task(Arena* arena);

/// Drops a suspended task (parked elsewhere, or abandoned) and its arena.
void discard_task(Arena* arena);

}  // namespace kappa::detail
