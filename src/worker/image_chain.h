// ImageChain: the checkpoint images of the task a worker runs, written as a
// chain (a full image, then deltas of the pages that changed since the image
// before; runtime/checkpoint_image.h) once its state is too large to travel
// inline.
//
// Policy, per capture:
// - No stored image yet (a new task, or one resumed from an inline image),
//   or the state's pages changed since the chain's full image reach half the
//   state: a full image. If it is small enough to travel inline, it does, and
//   no chain (nor dirty tracking) is kept.
// - Otherwise a delta of the previous link. At kMaxLinks links, the delta
//   instead carries every page changed since the full image and becomes the
//   chain's second link ([full, cumulative]): a restore reads at most
//   kMaxLinks images, and at most the state plus half of it, while a large,
//   mostly unchanged state is written once.
//
// The worker stores every link under a key of its own and reports the whole
// chain with the call (protocol/image_chain.h); the coordinator deletes the
// keys a newer recorded chain no longer uses. A worker killed at any point
// leaves at most links that no recorded chain names (removed with the job's
// images at its end).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/checkpoint_image.h"
#include "runtime/dirty_pages.h"

namespace kappa::detail {

/// Images up to this size travel inline in the call, kept by the coordinator:
/// a store round trip costs more than sending a few KiB (DESIGN.md section 4,
/// steps 3 and 4 in one message). Larger ones go to the store first.
inline constexpr size_t kInlineImageBytes = 64 << 10;

class ImageChain {
 public:
  static constexpr size_t kMaxLinks = 8;

  /// `incremental`: whether deltas may be written at all.
  ImageChain(Codec codec, std::string key, bool incremental)
      : codec_(codec), key_(std::move(key)), incremental_(incremental) {}
  ~ImageChain() { end(); }
  ImageChain(const ImageChain&) = delete;
  ImageChain& operator=(const ImageChain&) = delete;

  /// A task starts, or resumed from an inline image: its next image is full.
  void begin();
  /// A task resumed from the stored chain `keys` (restore_chain's `chain`).
  void begin(Arena& arena, std::vector<std::string> keys, const ChainInfo& chain);
  /// The task's arena is going away (or its slot reused): stop tracking.
  void end();

  struct Captured {
    bool full = false;
    /// The store key the image goes under (`link_key`), or empty: it travels
    /// inline.
    std::string store_key;
    /// The chain to report (CallInfo::image_key), or empty with an inline image.
    std::string chain;
    /// The state bytes the image carries (its extents, before compression).
    uint64_t raw_bytes = 0;
  };
  /// Captures the task (suspended, no arena current) into `out`. `link_key`
  /// is the key it gets if it goes to the store.
  Captured capture(Arena& arena, ImageBuffer& out, const std::string& link_key);

  size_t links() const { return keys_.size(); }
  /// Whether a chain is kept, so that the next capture may be a delta (else
  /// it is full).
  bool chained() const { return !keys_.empty() && dirty_ != nullptr; }
  /// The bytes of the pages changed since the chain's full image, as of the
  /// last capture: at half the state, the next capture is full.
  uint64_t bytes_since_full() const;

 private:
  Captured full(Arena& arena, const std::vector<Extent>& extents, bool armed, ImageBuffer& out,
                const std::string& link_key);

  Codec codec_;
  std::string key_;
  bool incremental_;
  std::unique_ptr<DirtyPages> dirty_;  // while a chain is kept
  std::vector<std::string> keys_;      // the chain's store keys, full image first
  ImageLink first_, last_;
  std::vector<Extent> since_first_;  // pages changed since the full image
};

}  // namespace kappa::detail
