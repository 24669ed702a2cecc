#include "journals/journal_factory.h"

#include <utility>

#include "kappa/error.h"
#include "util/url.h"

namespace kappa::detail {

std::unique_ptr<Journal> open_sqlite_journal(const std::string& path);
std::unique_ptr<Journal> open_redis_journal(const std::string& rest);

namespace {

using Opener = std::unique_ptr<Journal> (*)(const std::string&);

const std::pair<const char*, Opener> kJournals[] = {
    {"sqlite", &open_sqlite_journal},
    {"redis", &open_redis_journal},
};

}  // namespace

std::unique_ptr<Journal> open_journal(const std::string& url) {
  Url u = parse_url(url);
  for (const auto& [scheme, open] : kJournals)
    if (u.scheme == scheme && url.find("://") != std::string::npos) return open(u.rest);
  std::string known;
  for (const auto& [scheme, open] : kJournals)
    known += (known.empty() ? "" : ", ") + std::string(scheme) + "://";
  throw Error("unsupported --state URL '" + url + "' (supported: " + known + ")");
}

}  // namespace kappa::detail
