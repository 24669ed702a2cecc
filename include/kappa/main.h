// KAPPA_MAIN: turns a handler into a Kappa application binary.
//
//   kappa::Task<nlohmann::json> handler(nlohmann::json event);
//   KAPPA_MAIN(handler)
//
// The macro defines main(). The binary's command line (APP --help) runs the
// handler as a checkpointed task; see docs/cli.md. The same binary restores
// checkpoints, so it must be built with kappa_add_app() (CMake), which links
// the allocator and sets up a deterministic address layout.
#pragma once

#include <nlohmann/json.hpp>

#include "kappa/task.h"

namespace kappa {

/// The signature of an application's entry task.
using Handler = Task<nlohmann::json> (*)(nlohmann::json event);

/// The command-line entry point behind KAPPA_MAIN. Returns the process exit code.
int app_main(int argc, char** argv, Handler handler);

}  // namespace kappa

#define KAPPA_MAIN(handler) \
  int main(int argc, char** argv) { return ::kappa::app_main(argc, argv, &(handler)); }
