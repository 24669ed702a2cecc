#include "util/hex.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "kappa/error.h"

namespace kappa::detail {

std::string to_hex(const void* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  auto* p = static_cast<const unsigned char*>(data);
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (getrandom(raw.data(), bytes, 0) != ssize_t(bytes))
    throw Error(std::string("getrandom failed: ") + std::strerror(errno));
  return to_hex(raw.data(), raw.size());
}

}  // namespace kappa::detail
