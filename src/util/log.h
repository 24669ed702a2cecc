// The process's one logger (spdlog), with levels. Coordinator, backends,
// transports and workers log through spdlog's default logger, which
// init_logging() sets up: messages go to stderr as "kappa ROLE: message",
// warnings and errors with their level ("kappa worker 3: warning: ...").
//
// The level comes from KAPPA_LOG_LEVEL (trace, debug, info, warn, error,
// off; default info). What the command line prints as its result or its
// final error is the program's output, not a log, and does not go here.
//
// Never log from a signal handler, nor while a task's arena is current (the
// logger allocates).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace kappa::detail {

/// Sets up the default logger for this process; `role` names it in every
/// line ("coordinator", "worker 7"). May be called again to rename.
void init_logging(std::string_view role);

}  // namespace kappa::detail
