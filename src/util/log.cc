#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace kappa::detail {
namespace {

// "%*": the level and a colon, except for info lines ("warning: ").
class LevelUnlessInfo final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view word;
    switch (msg.level) {
      case spdlog::level::trace:
        word = "trace: ";
        break;
      case spdlog::level::debug:
        word = "debug: ";
        break;
      case spdlog::level::warn:
        word = "warning: ";
        break;
      case spdlog::level::err:
        word = "error: ";
        break;
      case spdlog::level::critical:
        word = "critical: ";
        break;
      default:
        return;
    }
    dest.append(word.data(), word.data() + word.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelUnlessInfo>();
  }
};

// The terminal's status line on stderr, shared by the logger and
// draw_status_line: one lock for both, so that a log line never lands in
// the middle of a redraw.
std::mutex g_terminal;
bool g_status_drawn = false;  // on stderr (guarded by g_terminal)

constexpr std::string_view kEraseLine = "\r\x1b[K";

// stderr, a line at a time, erasing the status line first if it is drawn.
// (base_sink's own mutex guards the formatter; g_terminal, taken inside it,
// the terminal.)
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::lock_guard lock(g_terminal);
    if (std::exchange(g_status_drawn, false))
      std::fwrite(kEraseLine.data(), 1, kEraseLine.size(), stderr);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void draw_status_line(std::FILE* out, std::string_view text) {
  std::lock_guard lock(g_terminal);
  std::string line = "\r";  // back to the line's start, the text, the rest erased
  line += text;
  line += "\x1b[K";
  std::fwrite(line.data(), 1, line.size(), out);  // one write: an unbuffered stream
  std::fflush(out);
  if (out == stderr) g_status_drawn = !text.empty();
}

void init_logging(std::string_view role) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = std::make_shared<spdlog::logger>("kappa", std::make_shared<StderrSink>());
    spdlog::level::level_enum level = spdlog::level::info;
    if (const char* env = std::getenv("KAPPA_LOG_LEVEL"); env && *env)
      level = spdlog::level::from_str(env);
    logger->set_level(level);
    logger->flush_on(spdlog::level::trace);  // whole lines, at once
    spdlog::set_default_logger(std::move(logger));
  });
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  std::string prefix = role.empty() ? "kappa: " : "kappa " + std::string(role) + ": ";
  formatter->add_flag<LevelUnlessInfo>('*').set_pattern(prefix + "%*%v");
  spdlog::default_logger()->set_formatter(std::move(formatter));
}

}  // namespace kappa::detail
