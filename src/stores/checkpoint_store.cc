#include "stores/checkpoint_store.h"

#include "kappa/error.h"

namespace kappa::detail {

void CheckpointStore::move(const std::string& from, const std::string& to) {
  std::optional<std::string> value = get(from);
  if (!value) {
    if (get(to)) return;  // moved already
    throw Error("cannot move " + from + " to " + to + " in " + url() + ": neither exists");
  }
  put(to, *value);
  remove(from);
}

}  // namespace kappa::detail
