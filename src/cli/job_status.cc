#include "cli/job_status.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "journals/journal_factory.h"
#include "kappa/error.h"
#include "ui/journal_view.h"
#include "ui/live_view.h"
#include "util/log.h"
#include "util/url.h"

namespace kappa::detail {

int job_status(const StatusOptions& o) {
  // Opening a SQLite journal creates its file: a mistyped path would leave
  // an empty journal behind.
  Url u = parse_url(o.state);
  if (u.scheme == "sqlite" && !std::filesystem::exists(u.rest))
    throw Error("no journal at " + o.state + ": " + u.rest + " does not exist");
  std::optional<JobIdentity> id;
  DurableJob job;
  {
    std::unique_ptr<Journal> journal = open_journal(o.state);
    id = journal->identity();
    if (!id) throw Error("the journal " + o.state + " holds no job");
    job = journal->load();
  }  // closed: the job can be continued while its view is served
  JournalView view(job);
  std::cout << "job " << id->job << " (" << o.state << "): " << view.summary() << std::endl;
  if (o.ui.empty()) return 0;
  // Blocked before the server's threads start, so that they inherit it and
  // sigwait below is the one to take these signals.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (o.ui_linger < 0) pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  LiveView live(view, LiveViewOptions{.address = o.ui, .title = "job " + id->job + " (journal)"});
  std::fprintf(stderr, "kappa: live view at %s\n", live.url().c_str());
  if (o.ui_linger >= 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.ui_linger));
  } else {
    int sig = 0;
    sigwait(&stop_signals, &sig);
  }
  live.stop();
  return 0;
}

}  // namespace kappa::detail
