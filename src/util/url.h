// The one parser of the URLs Kappa takes on its command line (--store,
// --state, --data): "scheme://rest". A bare path counts as file://PATH.
#pragma once

#include <string>
#include <string_view>

namespace kappa::detail {

struct Url {
  std::string scheme;  // "file", "s3", "redis", ...
  std::string rest;    // what follows "://" (for file: the directory)
};

/// Splits `text` at "://". Throws kappa::Error for an empty string or an
/// empty scheme or rest.
Url parse_url(std::string_view text);

/// `text` with a file store's directory made absolute ("file://./out" run
/// in /home/me is "file:///home/me/out"): what workers are given, whatever
/// their working directory. Other schemes are returned as they are.
std::string absolute_url(std::string_view text);

}  // namespace kappa::detail
