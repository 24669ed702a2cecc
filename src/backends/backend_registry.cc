// The backends make_backend knows. A new platform is a new file defining its
// make_*_backend function, and one line (plus its declaration) here.
#include <string>
#include <utility>

#include "backends/backend.h"
#include "kappa/error.h"

namespace kappa::detail {

std::unique_ptr<Backend> make_local_backend(const BackendConfig& config, WorkerEvents* events);
std::unique_ptr<Backend> make_slurm_backend(const BackendConfig& config, WorkerEvents* events);
std::unique_ptr<Backend> make_aws_backend(const BackendConfig& config, WorkerEvents* events);

namespace {

using Factory = std::unique_ptr<Backend> (*)(const BackendConfig&, WorkerEvents*);

const std::pair<const char*, Factory> kBackends[] = {
    {"local", &make_local_backend},
    {"slurm", &make_slurm_backend},
    {"aws", &make_aws_backend},
};

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendConfig& config,
                                      WorkerEvents* events) {
  for (const auto& [known, make] : kBackends)
    if (name == known) return make(config, events);
  std::string list;
  for (const std::string& n : backend_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error("backend '" + name + "' is not available in this build (supported: " + list + ")");
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : kBackends) names.emplace_back(name);
  return names;
}

}  // namespace kappa::detail
