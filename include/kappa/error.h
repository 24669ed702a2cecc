// Error types thrown by Kappa.
//
// kappa::Error is what the runtime throws for bad input and environment
// problems (a rejected checkpoint, an unusable option, a pause point outside a
// task). kappa::TaskFailed is what awaiting the future of a failed task throws:
// its message names the task and the reason it failed.
#pragma once

#include <stdexcept>
#include <string>

namespace kappa {

/// A Kappa runtime error; what() says what failed and with which input.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by `co_await` on the future of a task that failed (an exception
/// escaped it, or it exhausted its retry budget).
class TaskFailed : public Error {
 public:
  using Error::Error;
};

}  // namespace kappa
