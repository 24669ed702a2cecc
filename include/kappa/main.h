// KAPPA_MAIN: turns a handler into a Kappa application binary.
//
//   kappa::Task<nlohmann::json> handler(nlohmann::json event);
//   KAPPA_MAIN(handler)
//
// The macro defines main(). The binary's command line (APP --help; every
// command and option is in docs/cli.md) runs the handler as a checkpointed
// task. The same binary restores checkpoints, so it must be built with
// kappa_add_app() (CMake), which links the allocator and sets up a
// deterministic address layout.
#pragma once

#include <nlohmann/json.hpp>

#include "kappa/task.h"

namespace kappa {

/// The signature of an application's entry task: it receives the job's event
/// (--event) and returns the job's result, printed as one JSON line. An
/// exception that escapes it fails the job.
using Handler = Task<nlohmann::json> (*)(nlohmann::json event);

/// The command-line entry point behind KAPPA_MAIN: parses argv (run, solo,
/// resume, coordinator, worker, deploy, inspect) and does what it says. Call
/// it once, first thing in main() and before starting threads: a command that
/// runs tasks in this process (worker, solo, resume, inspect) may re-execute
/// the process once, with ASLR off. Returns the exit code: 0
/// success, 1 the job failed (the message on stderr names the task and why),
/// 2 bad usage or input, 75 stopped after --max-checkpoints (resumable).
/// Errors are reported on stderr and returned as exit codes, not thrown.
int app_main(int argc, char** argv, Handler handler);

}  // namespace kappa

/// Defines main() for an application whose entry task is `handler`: a
/// function (not a lambda or pointer variable) of type kappa::Handler's
/// signature. Use it once, at global scope, in a target built with
/// kappa_add_app().
#define KAPPA_MAIN(handler) \
  int main(int argc, char** argv) { return ::kappa::app_main(argc, argv, &(handler)); }
