#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <mutex>
#include <string>

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

}  // namespace

void init_logging(std::string_view role) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = std::make_shared<spdlog::logger>(
        "kappa", std::make_shared<spdlog::sinks::stderr_sink_mt>());
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
