// How a checkpoint is named when it lives in the store: CallInfo::image_key
// and Assignment::image_key hold the store keys of a chain of images (a full
// image, then its deltas in order; see runtime/checkpoint_image.h), joined by
// '\n'. A single key is a chain of one full image. Keys never contain '\n'
// (the worker makes them, worker.cc image_key).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace kappa::detail {

inline std::vector<std::string> split_image_chain(std::string_view chain) {
  std::vector<std::string> keys;
  while (!chain.empty()) {
    size_t end = chain.find('\n');
    keys.emplace_back(chain.substr(0, end));
    if (end == std::string_view::npos) break;
    chain.remove_prefix(end + 1);
  }
  return keys;
}

inline std::string join_image_chain(const std::vector<std::string>& keys) {
  std::string chain;
  for (const std::string& k : keys) {
    if (!chain.empty()) chain += '\n';
    chain += k;
  }
  return chain;
}

/// The keys of `old_chain` that `new_chain` does not use: the images a
/// recorded call no longer needs once a later one replaces it.
inline std::vector<std::string> superseded_images(std::string_view old_chain,
                                                  std::string_view new_chain) {
  std::vector<std::string> gone = split_image_chain(old_chain);
  std::vector<std::string> kept = split_image_chain(new_chain);
  std::erase_if(gone, [&](const std::string& k) {
    return std::find(kept.begin(), kept.end(), k) != kept.end();
  });
  return gone;
}

}  // namespace kappa::detail
