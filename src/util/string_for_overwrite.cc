// Compiled as C++23 (src/CMakeLists.txt) for std::string::resize_and_overwrite,
// which is not in C++20: the rest of Kappa, and its public headers, stay
// C++20. std::string is the same type in both (libstdc++'s ABI does not
// change with the standard), so the string made here is an ordinary one.
#include "util/string_for_overwrite.h"

#include "util/huge_pages.h"

namespace kappa::detail {

std::string string_for_overwrite(size_t size) {
  std::string s;
  s.reserve(size);
  prefer_huge_pages(s);
  // The caller writes every byte: nothing to do here but set the length
  // (within the capacity: no allocation, no zero fill).
  s.resize_and_overwrite(size, [](char*, size_t n) { return n; });
  return s;
}

}  // namespace kappa::detail
