// The allocation-heavy workload of the allocator benchmark: build and tear
// down a std::map<std::string, std::vector<int>> of `n` entries.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace kappa::bench {

inline size_t build_and_tear_down_map(size_t n) {
  std::map<std::string, std::vector<int>> m;
  for (size_t i = 0; i < n; ++i) {
    std::string key = "key-" + std::to_string(i * 2654435761u % 1000003) + "-long-enough-to-heap";
    std::vector<int> v;
    for (size_t j = 0; j < i % 8 + 1; ++j) v.push_back(int(i + j));  // regrows: 1,2,4,8
    m.emplace(std::move(key), std::move(v));
  }
  size_t size = m.size();
  return size;  // destructor frees everything
}

}  // namespace kappa::bench
