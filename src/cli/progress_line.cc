#include "cli/progress_line.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

namespace kappa::detail {

namespace {

// "7.4 s", "3 min 05 s", "2 h 07 min": short, and of steady width.
std::string elapsed_text(double s) {
  auto whole = uint64_t(s);
  if (s < 60) return fmt::format("{:.1f} s", s);
  if (whole < 3600) return fmt::format("{} min {:02} s", whole / 60, whole % 60);
  return fmt::format("{} h {:02} min", whole / 3600, whole / 60 % 60);
}

constexpr auto kRateWindow = std::chrono::seconds(1);

}  // namespace

std::string progress_text(const JobStats& s, double elapsed_s, double checkpoints_per_s,
                          size_t width) {
  std::string text = fmt::format(
      "kappa: {}/{} tasks done, {} running, {} parked, {} workers, {:.0f} checkpoints/s, {}",
      s.finished + s.failed, s.tasks, s.running + s.blocked, s.parked, s.workers_live,
      checkpoints_per_s, elapsed_text(elapsed_s));
  if (s.failed) text += fmt::format(" ({} failed)", s.failed);
  // ASCII only: a byte is a column.
  if (width && text.size() > width) text.resize(width);
  return text;
}

ProgressLine::ProgressLine(std::FILE* out, int fd, bool enabled)
    : out_(out), fd_(fd), active_(enabled && isatty(fd)), start_(Clock::now()) {}

ProgressLine::~ProgressLine() { finish(); }

size_t ProgressLine::width() const {
  winsize ws{};
  if (ioctl(fd_, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 80;
  // One column short: a line that fills the last column makes some
  // terminals wrap at once.
  return ws.ws_col - 1;
}

void ProgressLine::update(const JobStats& stats, Clock::time_point now) {
  if (!active_) return;
  samples_.emplace_back(now, stats.checkpoints);
  while (samples_.size() > 2 && now - samples_[1].first >= kRateWindow) samples_.pop_front();
  double rate = 0;
  double span = std::chrono::duration<double>(now - samples_.front().first).count();
  if (span > 0) rate = double(stats.checkpoints - samples_.front().second) / span;
  std::string text =
      progress_text(stats, std::chrono::duration<double>(now - start_).count(), rate, width());
  // Back to the start of the line, the text, and the rest of the old line
  // cleared; a log line written meanwhile erases it first.
  draw_status_line(out_, text);
  drawn_ = true;
}

void ProgressLine::finish() {
  if (!active_) return;
  active_ = false;
  if (!drawn_) return;
  draw_status_line(out_, "");
}

}  // namespace kappa::detail
