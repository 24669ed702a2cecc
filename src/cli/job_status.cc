#include "cli/job_status.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "journals/journal_factory.h"
#include "kappa/error.h"
#include "ui/journal_view.h"
#include "ui/live_view.h"
#include "util/log.h"
#include "util/url.h"

namespace kappa::detail {
namespace {

// The journal's view, read again (by `reload`, if given) when a request
// comes more than a second after the last read and the job had not ended.
class ReloadingView final : public JobViewSource {
 public:
  ReloadingView(std::shared_ptr<JournalView> first,
                std::function<std::shared_ptr<JournalView>()> reload)
      : current_(std::move(first)), reload_(std::move(reload)), read_at_(Clock::now()) {}

  JobView job_view(size_t recent) const override { return get()->job_view(recent); }
  TaskPage task_page(const TaskQuery& q) const override { return get()->task_page(q); }
  std::optional<TaskView> task_view(uint64_t id) const override { return get()->task_view(id); }
  std::vector<QueueView> queue_views() const override { return get()->queue_views(); }

 private:
  using Clock = std::chrono::steady_clock;
  std::shared_ptr<JournalView> get() const {
    std::lock_guard lock(mu_);
    if (reload_ && current_->job_view(0).state == JobView::State::kRunning &&
        Clock::now() - read_at_ > std::chrono::seconds(1)) {
      try {
        current_ = reload_();
      } catch (const std::exception& e) {
        spdlog::warn("cannot read the journal again: {}", e.what());
      }
      read_at_ = Clock::now();
    }
    return current_;
  }
  mutable std::mutex mu_;
  mutable std::shared_ptr<JournalView> current_;
  std::function<std::shared_ptr<JournalView>()> reload_;
  mutable Clock::time_point read_at_;
};

}  // namespace

int job_status(const StatusOptions& o) {
  // Opening a SQLite journal creates its file: a mistyped path would leave
  // an empty journal behind.
  Url u = parse_url(o.state);
  if (u.scheme == "sqlite" && !std::filesystem::exists(u.rest))
    throw Error("no journal at " + o.state + ": " + u.rest + " does not exist");
  JobIdentity id;
  auto load = [&] {
    // Closed again at once: the job can be continued while its view is served.
    std::unique_ptr<Journal> journal = open_journal_reader(o.state);
    std::optional<JobIdentity> held = journal->identity();
    if (!held) throw Error("the journal " + o.state + " holds no job");
    id = *held;
    return std::make_shared<JournalView>(journal->load());
  };
  std::shared_ptr<JournalView> first;
  try {
    first = load();
  } catch (const Error& e) {
    if (u.scheme != "sqlite" || std::string(e.what()).find("in use") == std::string::npos) throw;
    throw Error(std::string(e.what()) +
                ". A running job's SQLite journal is its coordinator's alone: that run's live "
                "view (--ui) shows its progress, and a redis:// journal can be read while the "
                "job runs");
  }
  std::string summary = first->summary();
  // A SQLite journal opened here has no coordinator (it would hold it).
  if (first->job_view(0).state == JobView::State::kRunning && u.scheme == "sqlite")
    summary += " No coordinator runs it now: running the same command again continues it.";
  std::cout << "job " << id.job << " (" << o.state << "): " << summary << std::endl;
  if (o.ui.empty()) return 0;
  // A job still running (a Redis journal is read beside its coordinator) is
  // read again as the view asks, at most once a second.
  ReloadingView view(first,
                     u.scheme == "redis" ? load : std::function<std::shared_ptr<JournalView>()>());
  // Blocked before the server's threads start, so that they inherit it and
  // sigwait below is the one to take these signals.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (o.ui_linger < 0) pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  LiveView live(view, LiveViewOptions{.address = o.ui, .title = "job " + id.job + " (journal)"});
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
