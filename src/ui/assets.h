// The live view's page, built into the binary at build time
// (cmake/embed_assets.cmake generates the definitions from src/ui/assets/).
#pragma once

#include <cstddef>
#include <string_view>

namespace kappa::detail {

struct UiAsset {
  std::string_view path;          // "/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
};

/// The assets, and how many there are; "/" is served as "/index.html".
extern const UiAsset kUiAssets[];
extern const size_t kUiAssetCount;

}  // namespace kappa::detail
