// Error types thrown by Kappa.
//
// kappa::Error is what the runtime throws for bad input and environment
// problems (a rejected checkpoint, an unusable option, a pause point outside a
// task). kappa::TaskFailed is what awaiting the future of a failed task throws:
// its message names the task and the reason it failed.
//
// Both are plain exception types: copying, throwing and catching them is
// thread-safe, as for std::runtime_error.
#pragma once

#include <stdexcept>
#include <string>

namespace kappa {

/// A Kappa runtime error; what() says what failed and with which input.
/// Thrown inside a task by pause points whose call failed (see each call),
/// by kappa::decode for malformed bytes, and by co_await on a misused Task.
class Error : public std::runtime_error {
 public:
  /// std::runtime_error's constructors: the message is what() returns.
  using std::runtime_error::runtime_error;
};

/// Thrown by `co_await` on the future of a task that failed (an exception
/// escaped it, it crashed or its worker died too often in a row, or a Future
/// it was spawned with failed), and by wait_all. what() starts with "task ID
/// (NAME)" and says why, e.g. "task 7 (map) failed: " and the escaped
/// exception's what(): the exception's own type does not cross tasks.
class TaskFailed : public Error {
 public:
  /// Error's constructors.
  using Error::Error;
};

}  // namespace kappa
