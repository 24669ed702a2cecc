// A heap block filled with a pattern derived from its id, for allocator
// stress tests: the pattern is written at a stride plus the last byte, so
// that every page of a block of up to 64 MiB is checked without touching
// every byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace kappa::testing {

struct PatternBlock {
  uint64_t id;
  size_t size;
  unsigned char* p;

  static unsigned char pattern(uint64_t id, size_t i) {
    return static_cast<unsigned char>(id * 131 + i * 7);
  }
  void fill(size_t stride) const {
    for (size_t i = 0; i < size; i += stride) p[i] = pattern(id, i);
    p[size - 1] = pattern(id, size - 1);
  }
  /// The offset of the first byte that lost its pattern, if any.
  std::optional<size_t> first_damage(size_t stride) const {
    for (size_t i = 0; i < size; i += stride)
      if (p[i] != pattern(id, i)) return i;
    if (p[size - 1] != pattern(id, size - 1)) return size - 1;
    return std::nullopt;
  }
};

}  // namespace kappa::testing
