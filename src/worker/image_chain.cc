#include "worker/image_chain.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/image_chain.h"

namespace kappa::detail {
namespace {

uint64_t bytes_in(const std::vector<Extent>& extents) {
  uint64_t n = 0;
  for (const Extent& e : extents) n += e.bytes;
  return n;
}

}  // namespace

void ImageChain::begin() {
  end();
  churned_ = untracked_ = leaning_ = 0;
}

uint64_t ImageChain::bytes_since_full() const { return bytes_in(since_first_); }

void ImageChain::begin(Arena& arena, std::vector<std::string> keys, const ChainInfo& chain,
                       bool inline_top) {
  end();
  churned_ = untracked_ = leaning_ = 0;
  if (!incremental_) return;
  try {
    dirty_ = DirtyPages::create(arena, pick_dirty_method());
    // The restore wrote every page of the state, as the chain holds it.
    dirty_->capture_all(arena.snapshot_extents());
  } catch (const std::exception& e) {  // the task goes on, with full images
    spdlog::warn("incremental checkpoints off for this task: {}", e.what());
    end();
    return;
  }
  keys_ = std::move(keys);
  first_ = chain.first;
  since_first_ = chain.since_first;
  if (inline_top) {  // the restored chain's last delta is not among the keys
    last_ = chain.below_last;
    since_last_ = chain.last_pages;
  } else {
    last_ = chain.last;
  }
}

void ImageChain::end() {
  if (dirty_) dirty_->forget();
  dirty_.reset();
  keys_.clear();
  since_first_.clear();
  since_last_.clear();
}

ImageChain::Captured ImageChain::capture(Arena& arena, ImageBuffer& out,
                                         const std::string& link_key) {
  // What the task allocated and freed since the last image stays out of
  // this one (and of its extents: a delta leaves out the pages too).
  arena.release_empty_runs();
  std::vector<Extent> extents = arena.snapshot_extents();
  if (keys_.empty() || !dirty_) return full(arena, extents, false, out, link_key);

  std::vector<Extent> changed;
  try {
    changed = dirty_->collect(extents);
  } catch (const std::exception& e) {
    spdlog::warn("incremental checkpoints off for this task: {}", e.what());
    end();
    incremental_ = false;
    return full(arena, extents, false, out, link_key);
  }
  std::vector<Extent> pages = page_cover(changed);
  since_first_ = unite(since_first_, pages);
  since_last_ = unite(since_last_, pages);
  std::vector<Extent> since_first = intersect(extents, since_first_);
  if (bytes_in(since_first) * 2 >= bytes_in(extents)) {
    if (++churned_ >= kGiveUpAfter) {  // most of the state changes every time
      spdlog::debug("deltas off for {} images: the task rewrites most of its state", kRetryAfter);
      end();
      untracked_ = kRetryAfter;
    }
    return full(arena, extents, true, out, link_key);
  }
  churned_ = 0;

  uint64_t written = 0;
  for (const Extent& e : pages) written += e.bytes >> kPageShift;
  if (keys_.size() >= kMaxLinks) {  // [full, every change since]
    keys_.resize(1);
    last_ = first_;
    since_last_ = since_first_;
  }
  // Every page changed since the last stored link: the links kept inline
  // since are not in the store, so each delta is of that link.
  Delta delta{last_, intersect(extents, since_last_)};
  Captured c{false, link_key, {}, bytes_in(delta.extents)};
  ImageLink link = write(arena, c.raw_bytes, &delta, out, link_key, c);
  bool travels_inline = !c.stored && c.image_bytes <= kInlineImageBytes;
  if (travels_inline) {
    c.store_key.clear();
  } else {
    keys_.push_back(link_key);
    last_ = link;
    since_last_.clear();
  }
  c.chain = join_image_chain(keys_);
  reconsider(arena, extents, written);
  spdlog::debug("delta image {}: {} bytes, link {} of its chain{}", link_key, c.image_bytes,
                travels_inline ? keys_.size() : keys_.size() - 1,
                travels_inline ? ", inline"
                : c.stored     ? ", streamed"
                               : "");
  return c;
}

ImageLink ImageChain::write(Arena& arena, uint64_t raw_bytes, const Delta* delta, ImageBuffer& out,
                            const std::string& link_key, Captured& c) {
  if (!stream_ || raw_bytes <= kStreamedImageBytes) {
    ImageLink link = write_image(arena, codec_, key_, out, delta);
    c.image_bytes = out.size();
    return link;
  }
  std::unique_ptr<ValueWriter> writer = stream_(link_key);
  CountingSink counted(*writer);
  ImageLink link = write_image(arena, codec_, key_, counted, delta);
  writer->commit();
  out.resize(0);
  c.image_bytes = counted.bytes();
  c.stored = true;
  return link;
}

// Per delta, what each way of tracking costs the task, in microseconds: under
// write protection each written page faults once and is protected again;
// hashing reads the whole state.
void ImageChain::reconsider(Arena& arena, const std::vector<Extent>& extents,
                            uint64_t written_pages) {
  if (!dirty_ || dirty_method_forced() || pick_dirty_method() != DirtyMethod::kWriteProtect)
    return;  // chosen by the user, or write protection unavailable: hashes it is
  const DirtyCosts& c = costs_ ? *costs_ : dirty_costs();
  // Hot pages cost neither a fault nor a protection (dirty_pages.h).
  uint64_t tracked = written_pages - std::min(written_pages, dirty_->hot_pages());
  double wp = double(tracked) * (c.fault_us_per_page + c.reprotect_us_per_page);
  double hash = double(bytes_in(extents)) / double(1 << 20) * c.hash_us_per_mib;
  DirtyMethod now = dirty_->method(), better = now;
  if (now == DirtyMethod::kWriteProtect && hash * 2 < wp) better = DirtyMethod::kHash;
  if (now == DirtyMethod::kHash && wp * 2 < hash) better = DirtyMethod::kWriteProtect;
  if (better == now) {
    leaning_ = 0;
    return;
  }
  if (++leaning_ < kSwitchAfter) return;
  leaning_ = 0;
  spdlog::debug("dirty pages: {} from now on (estimated {:.0f} us a capture against {:.0f})",
                dirty_method_name(better), better == DirtyMethod::kHash ? hash : wp,
                better == DirtyMethod::kHash ? wp : hash);
  dirty_->forget();
  dirty_ = DirtyPages::create(arena, better);
  dirty_->capture_all(extents);  // the image just written holds every page as it is
}

ImageChain::Captured ImageChain::full(Arena& arena, const std::vector<Extent>& extents, bool armed,
                                      ImageBuffer& out, const std::string& link_key) {
  Captured c{true, link_key, link_key, bytes_in(extents)};
  ImageLink link = write(arena, c.raw_bytes, nullptr, out, link_key, c);
  if (untracked_ > 0) --untracked_;
  // Inline, with no chain to keep nor pages to track: a small state, or one
  // that compresses small while its pages are not tracked. A large state that
  // compresses small is stored when they can be: the calls after it then send
  // the pages they change (inline deltas), rather than compress all of it
  // again each time.
  bool tracked = incremental_ && untracked_ == 0;
  if (!c.stored && c.image_bytes <= kInlineImageBytes &&
      (c.raw_bytes <= kInlineImageBytes || !tracked)) {
    end();
    return Captured{true, {}, {}, c.raw_bytes, c.image_bytes};
  }
  if (tracked) {
    if (!dirty_) {
      try {
        dirty_ = DirtyPages::create(arena, pick_dirty_method());
      } catch (const std::exception& e) {
        spdlog::warn("incremental checkpoints off for this task: {}", e.what());
        incremental_ = false;
      }
    }
    if (dirty_ && !armed) dirty_->capture_all(extents);
  }
  spdlog::debug("full image {}: {} bytes{}", link_key, c.image_bytes, c.stored ? ", streamed" : "");
  keys_.assign(1, link_key);
  first_ = last_ = link;
  since_first_.clear();
  since_last_.clear();
  return c;
}

}  // namespace kappa::detail
