// ImageChain: the checkpoint images of the task a worker runs, written as a
// chain (a full image, then deltas of the pages that changed since the image
// before; runtime/checkpoint_image.h) once its state is too large to travel
// inline.
//
// Policy, per capture:
// - No stored image yet (a new task, or one resumed from an inline image),
//   or the state's pages changed since the chain's full image reach half the
//   state: a full image. If it is small enough to travel inline, it does, and
//   no chain (nor dirty tracking) is kept; unless the state itself is larger
//   than that (it compresses well) and its pages can be tracked: then the
//   image is stored, and the deltas after it (inline, mostly) carry only what
//   changed instead of the whole state compressed again at every call.
// - Otherwise a delta of the chain's last stored link. A delta small enough
//   to travel inline does, on top of the stored links (the call carries the
//   chain and the delta): no store write, which is most of what a call of a
//   task with a large, mostly unchanged state would cost. It is not a link
//   of the chain, so the next delta is of the same stored link and carries
//   its pages again; once the pages changed since that link no longer fit
//   inline, the delta is stored and becomes the chain's next link.
// - At kMaxLinks links, the delta instead carries every page changed since
//   the full image and becomes the chain's second link ([full, cumulative]):
//   a restore reads at most kMaxLinks images (and one inline), and at most
//   the state plus half of it, while a large, mostly unchanged state is
//   written once.
//
// - Tracking is not free: under write protection the task takes a fault at
//   the first write to each captured page, and collecting re-protects each
//   written page (on this VM ~25 and ~60 us a page: docs/benchmarks.md). A
//   task that rewrites most of its state between checkpoints gains nothing
//   from deltas, so after kGiveUpAfter full images in a row forced by that,
//   tracking stops and full images follow; kRetryAfter full images later it
//   is tried again.
// - The two ways of tracking (runtime/dirty_pages.h) cost differently: write
//   protection per written page, hashing per byte of state. Their costs are
//   measured once per process (dirty_costs); when the other way would have
//   cost less than half as much for kSwitchAfter deltas in a row, the task
//   switches (unless KAPPA_DIRTY_PAGES chose). On this VM a small state with
//   a few pages written per call (a queue loop) is cheaper hashed.
//
// Where an image goes: images of more than kStreamedImageBytes of state are
// streamed to the store as they are made, while the task waits (the
// constructor's `stream`); smaller ones are captured into the caller's buffer,
// and the worker stores them while the task runs on. Buffers of a large
// state's images would otherwise add up to several times the state.
//
// The worker stores every link under a key of its own and reports the whole
// chain with the call (protocol/image_chain.h); the coordinator deletes the
// keys a newer recorded chain no longer uses. A worker killed at any point
// leaves at most links that no recorded chain names (removed with the job's
// images at its end).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/checkpoint_image.h"
#include "runtime/dirty_pages.h"
#include "stores/checkpoint_store.h"

namespace kappa::detail {

/// Images up to this size travel inline in the call, kept by the coordinator:
/// a store round trip costs more than sending a few KiB (DESIGN.md section 4,
/// steps 3 and 4 in one message). Larger ones go to the store first.
inline constexpr size_t kInlineImageBytes = 64 << 10;

/// Images carrying more state than this are streamed to the store rather
/// than buffered: up to three buffers of this size (one being captured, one
/// queued, one being stored) stay within the ~100 MB that issue 10's memory
/// goal (the state + 25% + ~100 MB) allows beyond the state.
inline constexpr size_t kStreamedImageBytes = 32 << 20;

/// Opens a writer for an image under a store key (CheckpointStore::put_stream).
using OpenImageWriter = std::function<std::unique_ptr<ValueWriter>(const std::string& key)>;

class ImageChain {
 public:
  static constexpr size_t kMaxLinks = 8;
  static constexpr int kGiveUpAfter = 2, kRetryAfter = 16, kSwitchAfter = 3;

  /// `incremental`: whether deltas may be written at all. `costs`: what
  /// tracking costs (default: as measured in this process, dirty_costs()).
  /// `stream`: where images of more than kStreamedImageBytes go (none: into
  /// the buffer too).
  ImageChain(Codec codec, std::string key, bool incremental,
             std::optional<DirtyCosts> costs = std::nullopt, OpenImageWriter stream = {})
      : codec_(codec),
        key_(std::move(key)),
        incremental_(incremental),
        costs_(costs),
        stream_(std::move(stream)) {}
  ~ImageChain() { end(); }
  ImageChain(const ImageChain&) = delete;
  ImageChain& operator=(const ImageChain&) = delete;

  /// A task starts, or resumed from an inline image: its next image is full.
  void begin();
  /// A task resumed from the stored chain `keys` (restore_chain's `chain`),
  /// with `inline_top`: and from a delta that came inline on top of them (the
  /// last link `chain` describes, which is not among `keys`).
  void begin(Arena& arena, std::vector<std::string> keys, const ChainInfo& chain,
             bool inline_top = false);
  /// The task's arena is going away (or its slot reused): stop tracking.
  void end();

  struct Captured {
    bool full = false;
    /// The store key the image goes under (`link_key`), or empty: it travels
    /// inline.
    std::string store_key;
    /// The chain to report (CallInfo::image_key): its stored links, the image
    /// among them unless it travels inline. Empty for an inline full image.
    std::string chain;
    /// The state bytes the image carries (its extents, before compression).
    uint64_t raw_bytes = 0;
    /// The image's size.
    uint64_t image_bytes = 0;
    /// The image was streamed: it is in the store under store_key already,
    /// and `out` holds nothing.
    bool stored = false;
  };
  /// Captures the task (suspended, no arena current) into `out`, or streams
  /// it to the store. `link_key` is the key it gets if it goes to the store.
  Captured capture(Arena& arena, ImageBuffer& out, const std::string& link_key);

  size_t links() const { return keys_.size(); }
  /// How pages are tracked now (none: no chain is kept).
  std::optional<DirtyMethod> method() const {
    return dirty_ ? std::optional(dirty_->method()) : std::nullopt;
  }
  /// Whether a chain is kept, so that the next capture may be a delta (else
  /// it is full).
  bool chained() const { return !keys_.empty() && dirty_ != nullptr; }
  /// The bytes of the pages changed since the chain's full image, as of the
  /// last capture: at half the state, the next capture is full.
  uint64_t bytes_since_full() const;

 private:
  Captured full(Arena& arena, const std::vector<Extent>& extents, bool armed, ImageBuffer& out,
                const std::string& link_key);
  void reconsider(Arena& arena, const std::vector<Extent>& extents, uint64_t written_pages);
  // Writes the image of `raw_bytes` of state (with `delta`, a delta) into
  // `out`, or streams it under `link_key`; fills `c`'s image fields.
  ImageLink write(Arena& arena, uint64_t raw_bytes, const Delta* delta, ImageBuffer& out,
                  const std::string& link_key, Captured& c);

  Codec codec_;
  std::string key_;
  bool incremental_;
  std::optional<DirtyCosts> costs_;
  OpenImageWriter stream_;
  std::unique_ptr<DirtyPages> dirty_;  // while a chain is kept
  std::vector<std::string> keys_;      // the chain's store keys, full image first
  ImageLink first_, last_;             // the full image's link, the last stored link's
  std::vector<Extent> since_first_;    // pages changed since the full image
  std::vector<Extent> since_last_;     // pages changed since the last stored link
  int churned_ = 0;                    // full images in a row forced by changes
  int untracked_ = 0;                  // full images left before tracking again
  int leaning_ = 0;                    // deltas in a row the other method would have done better
};

}  // namespace kappa::detail
