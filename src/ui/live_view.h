// LiveView: the live view of a job in the browser (`APP run --ui`, `APP
// status --ui`): an HTTP server of its own threads serving a page (HTML, JS,
// CSS built into the binary: no CDN, jobs often run offline) and a JSON API
// read from a JobViewSource:
//
//   GET /                       the page (it polls the API below)
//   GET /api/job                state, counts, workers, calls, recent events
//   GET /api/tasks?offset=&limit=&state=   a page of the task table
//                               (state: a phase name, or "retrying")
//   GET /api/tasks/ID           one task with its invocations
//   GET /api/queues             queues with their depth and waiting lines
//
// Every request is one snapshot of the source (taken under the
// coordinator's lock, of what that request shows): the view never holds the
// lock while it writes JSON or talks to the browser. Tasks are paged on the
// server, so a job of 100,000 tasks costs a page of them per request.
//
// Thread safety: the constructor starts serving; stop() (or the
// destructor) ends it; url() from any thread. The source must outlive the
// LiveView.
#pragma once

#include <memory>
#include <string>

#include "coordinator/job_view.h"
#include "ui/view_json.h"

namespace kappa::detail {

struct LiveViewOptions {
  /// "[HOST:]PORT"; HOST defaults to 127.0.0.1 (loopback), PORT 0 picks a
  /// free port.
  std::string address = "127.0.0.1:0";
  JobJsonOptions json;
  /// Shown in the page's title ("fib", "status of sqlite://...").
  std::string title = "kappa job";
};

class LiveView {
 public:
  /// Binds and starts serving. Throws kappa::Error if the address is
  /// malformed or cannot be bound (a port in use).
  LiveView(const JobViewSource& source, LiveViewOptions options);
  ~LiveView();
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  /// "http://127.0.0.1:PORT/" (the port bound, also when 0 was asked for).
  std::string url() const;
  /// Stops serving (idempotent): open requests finish first.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Splits "[HOST:]PORT" (HOST may be "[::1]"); throws kappa::Error.
std::pair<std::string, int> parse_view_address(const std::string& address);

}  // namespace kappa::detail
