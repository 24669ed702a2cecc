// `APP status`: a job's progress read from its journal (--state URL), as a
// paragraph on stdout or as the live view (--ui), read-only.
//
// A Redis journal is read beside the coordinator that may be running its
// job (without its lock), and read again as the view asks, at most once a
// second, until the job has ended. A SQLite journal is held exclusively by a
// running coordinator: then it cannot be opened here (the message says so;
// that job's own --ui shows it live); a finished job, or one whose
// coordinator stopped, is read as the journal left it. Either way the
// journal is closed again before the view is served.
#pragma once

#include <string>

namespace kappa::detail {

struct StatusOptions {
  std::string state;      // the journal's URL
  std::string ui;         // [HOST:]PORT: serve the view (empty: print only)
  double ui_linger = -1;  // with ui: seconds to serve (< 0: until SIGINT or SIGTERM)
};

/// Prints the paragraph (and serves the view); returns the exit code: 0.
/// Throws kappa::Error for a journal that cannot be read or holds no job.
int job_status(const StatusOptions& options);

}  // namespace kappa::detail
