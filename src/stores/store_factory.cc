// The stores open_store knows, by URL scheme. A new store is a new file
// defining its open function, and one line (plus its declaration) here.
#include <utility>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "util/url.h"

namespace kappa::detail {

std::unique_ptr<CheckpointStore> open_file_store(const std::string& dir, const StoreOptions& o);
std::unique_ptr<CheckpointStore> open_s3_store(const std::string& rest, const StoreOptions& o);
std::unique_ptr<CheckpointStore> open_redis_store(const std::string& rest, const StoreOptions& o);

namespace {

using Opener = std::unique_ptr<CheckpointStore> (*)(const std::string&, const StoreOptions&);

const std::pair<const char*, Opener> kStores[] = {
    {"file", &open_file_store},
    {"s3", &open_s3_store},
    {"redis", &open_redis_store},
};

}  // namespace

std::unique_ptr<CheckpointStore> open_store(const std::string& url, StoreOptions options) {
  Url u = parse_url(url);
  for (const auto& [scheme, open] : kStores)
    if (u.scheme == scheme) return open(u.rest, options);
  std::string known;
  for (const auto& [scheme, open] : kStores)
    known += (known.empty() ? "" : ", ") + std::string(scheme) + "://";
  throw Error("unsupported store URL '" + url + "' (supported: " + known + ")");
}

}  // namespace kappa::detail
