#include "journals/journal_factory.h"

#include <utility>

#include "kappa/error.h"
#include "util/url.h"

namespace kappa::detail {

std::unique_ptr<Journal> open_sqlite_journal(const std::string& path);
std::unique_ptr<Journal> open_redis_journal(const std::string& rest);
std::unique_ptr<Journal> open_redis_journal_reader(const std::string& rest);

namespace {

using Opener = std::unique_ptr<Journal> (*)(const std::string&);

struct Kind {
  const char* scheme;
  Opener open, open_reader;
};

// SQLite's reader is its ordinary journal: a coordinator holds the file
// exclusively, so there is no reading beside it.
const Kind kJournals[] = {
    {"sqlite", &open_sqlite_journal, &open_sqlite_journal},
    {"redis", &open_redis_journal, &open_redis_journal_reader},
};

std::unique_ptr<Journal> open_as(const std::string& url, bool reader) {
  Url u = parse_url(url);
  for (const Kind& k : kJournals)
    if (u.scheme == k.scheme && url.find("://") != std::string::npos)
      return (reader ? k.open_reader : k.open)(u.rest);
  std::string known;
  for (const Kind& k : kJournals)
    known += (known.empty() ? "" : ", ") + std::string(k.scheme) + "://";
  throw Error("unsupported --state URL '" + url + "' (supported: " + known + ")");
}

}  // namespace

std::unique_ptr<Journal> open_journal(const std::string& url) { return open_as(url, false); }

std::unique_ptr<Journal> open_journal_reader(const std::string& url) { return open_as(url, true); }

}  // namespace kappa::detail
