#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace kappa::detail {

void prefer_huge_pages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 4 * kHuge) return;
  uintptr_t data = reinterpret_cast<uintptr_t>(p);
  uintptr_t begin = (data + kHuge - 1) & ~(kHuge - 1);
  uintptr_t end = (data + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

void prefer_huge_pages(std::string& s) { prefer_huge_pages(s.data(), s.capacity()); }

}  // namespace kappa::detail
