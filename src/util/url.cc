#include "util/url.h"

#include <filesystem>

#include "kappa/error.h"

namespace kappa::detail {

Url parse_url(std::string_view text) {
  if (text.empty()) throw Error("empty URL");
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) return {"file", std::string(text)};
  Url url{std::string(text.substr(0, sep)), std::string(text.substr(sep + 3))};
  if (url.scheme.empty() || url.rest.empty())
    throw Error("malformed URL '" + std::string(text) + "' (expected scheme://...)");
  return url;
}

std::string absolute_url(std::string_view text) {
  Url url = parse_url(text);
  if (url.scheme != "file") return std::string(text);
  return "file://" + std::filesystem::absolute(url.rest).lexically_normal().string();
}

}  // namespace kappa::detail
