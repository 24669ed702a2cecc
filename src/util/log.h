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

#include <cstdio>
#include <string_view>

namespace kappa::detail {

/// Sets up the default logger for this process; `role` names it in every
/// line ("coordinator", "worker 7"). May be called again to rename.
void init_logging(std::string_view role);

/// Draws `text` as the terminal's status line (`run`'s progress line) on
/// `out`, over the one drawn before ("\r", the text, erase to the end of the
/// line); an empty `text` erases it. While it is drawn on stderr, a log line
/// erases it before it is written, so that the two never share a line (the
/// next draw puts it back, below the log line). Thread-safe, with the
/// logger.
void draw_status_line(std::FILE* out, std::string_view text);

}  // namespace kappa::detail
