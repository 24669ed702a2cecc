#include "util/string_for_overwrite.h"

#include "util/huge_pages.h"

namespace kappa::detail {
namespace {

#if defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
// libstdc++'s std::string::_M_set_length, private: sets the length and
// writes the terminating NUL, and touches nothing else. (C++23's
// resize_and_overwrite, which does this in the open, is not in C++20.) An
// explicit instantiation may name a private member ([temp.spec.general]);
// the friend function defined in it carries the member out.
using SetLength = void (std::string::*)(std::string::size_type);

void set_length(std::string& s, size_t size);

template <SetLength M>
struct SetLengthOf {
  friend void set_length(std::string& s, size_t size) { (s.*M)(size); }
};
template struct SetLengthOf<&std::string::_M_set_length>;
#else
// Elsewhere, the zero fill stays.
void set_length(std::string& s, size_t size) { s.resize(size); }
#endif

}  // namespace

std::string string_for_overwrite(size_t size) {
  std::string s;
  s.reserve(size);
  prefer_huge_pages(s);
  set_length(s, size);  // within the capacity: no allocation
  return s;
}

}  // namespace kappa::detail
