#include <signal.h>

#include <cstring>

#include "backends/backend.h"

namespace kappa::detail {

const char* cause_name(WorkerExit::Cause cause) {
  switch (cause) {
    case WorkerExit::Cause::kExited:
      return "exited";
    case WorkerExit::Cause::kCrashed:
      return "crashed";
    case WorkerExit::Cause::kChaosKill:
      return "chaos kill";
    case WorkerExit::Cause::kTimeLimit:
      return "time limit";
    case WorkerExit::Cause::kHung:
      return "hung";
    case WorkerExit::Cause::kLost:
      return "lost";
  }
  return "unknown";
}

namespace {
std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  std::string name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
  return name + " (" + strsignal(sig) + ")";
}
}  // namespace

std::string WorkerExit::describe() const {
  switch (cause) {
    case Cause::kExited:
      return "exited with status " + std::to_string(status);
    case Cause::kCrashed:
      return "killed by " + signal_text(signal);
    case Cause::kChaosKill:
      return "killed by --chaos-kill";
    case Cause::kTimeLimit:
      return "killed at its time limit";
    case Cause::kHung:
      return "killed after it stopped sending heartbeats";
    case Cause::kLost:
      return "its session with the coordinator closed";
  }
  return "ended";
}

bool WorkerExit::deterministic_crash() const {
  if (cause != Cause::kCrashed) return false;
  switch (signal) {
    case SIGSEGV:
    case SIGBUS:
    case SIGILL:
    case SIGFPE:
    case SIGABRT:
      return true;
    default:
      return false;
  }
}

}  // namespace kappa::detail
