// DirtyPages: which pages of a task's arena changed since its last image, so
// that the next image (a delta, see checkpoint_image.h) carries only those.
//
// Two methods, chosen per process (pick_dirty_method):
//
// - kWriteProtect: userfaultfd write protection in asynchronous mode with
//   PAGEMAP_SCAN (Linux 6.7). The captured pages are write-protected; the
//   first write to one costs the task a minor fault, which the kernel
//   resolves by itself (no handler thread) and records as "written".
//   PAGEMAP_SCAN then reports the written pages and protects them again in
//   one call. Collecting costs a page-table walk, not a read of the state.
//   Pages written between every two collects (a task's frames, a vector it
//   appends to; 32 at most, in 4 runs) are left writable and reported each
//   time, which spares a fault and a protection per page and image.
// - kHash: an XXH3-64 of every captured 4 KiB page; collecting hashes the
//   pages again (all cores) and reports the ones that differ. For kernels
//   without the above, and processes that may not use userfaultfd (seccomp
//   profiles such as Docker's default, or vm.unprivileged_userfaultfd=0
//   before Linux 5.11).
//
// Soft-dirty bits (/proc/PID/clear_refs) were the third candidate; this
// kernel builds without them (CONFIG_MEM_SOFT_DIRTY), and clearing them is
// process-wide. See docs/benchmarks.md ("Incremental checkpoints") for what
// each method costs here.
//
// What counts as changed: a page that was written since it was last captured,
// or that was never captured. Extents are byte ranges of the slot (arena.h);
// tracking is per page, and a page counts as captured once any of its bytes
// were. Bytes of a page that were outside every extent when it was captured
// and enter one later without being written are not reported: they were never
// written by the task (a run's untouched tail, a fresh allocation not yet
// initialized), so no value of theirs can matter, exactly as for the bytes a
// full image omits.
//
// Threads: one tracker per arena, used by the thread that checkpoints it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/arena.h"

namespace kappa::detail {

enum class DirtyMethod { kWriteProtect, kHash };
const char* dirty_method_name(DirtyMethod method);

/// The best method this process can use: kWriteProtect if userfaultfd with
/// asynchronous write protection and PAGEMAP_SCAN work here (probed once, on a
/// scratch mapping), kHash otherwise. KAPPA_DIRTY_PAGES=hash or =wp forces one
/// (wp falls back to hash, with a warning, where it cannot work).
DirtyMethod pick_dirty_method();

/// What tracking costs in this process, measured once (a few hundred
/// microseconds, on first use): per written page under write protection, the
/// task's fault and the collect's protecting it again (pages in separate page
/// tables, the dearer case); per MiB of state hashed by one thread. Zero for
/// write protection where it is unavailable.
struct DirtyCosts {
  double fault_us_per_page = 0;
  double reprotect_us_per_page = 0;
  double hash_us_per_mib = 0;
};
const DirtyCosts& dirty_costs();

/// Whether KAPPA_DIRTY_PAGES chose the method (then it is not switched).
bool dirty_method_forced();

class DirtyPages {
 public:
  /// Tracks the slot of `arena` (which must outlive the tracker, or be
  /// released with forget() first). Throws kappa::Error if `method` cannot be
  /// set up.
  static std::unique_ptr<DirtyPages> create(Arena& arena, DirtyMethod method);
  virtual ~DirtyPages() = default;
  DirtyPages(const DirtyPages&) = delete;
  DirtyPages& operator=(const DirtyPages&) = delete;

  DirtyMethod method() const { return method_; }

  /// Of `extents` (sorted, as Arena::snapshot_extents returns them), the
  /// parts in pages that changed since they were last captured, and in hot
  /// pages (hot_pages(), which may not have), clipped to the extents and
  /// sorted; from now on all of `extents` counts as captured.
  virtual std::vector<Extent> collect(const std::vector<Extent>& extents) = 0;
  /// Counts all of `extents` as captured now, without reporting (after a
  /// restore wrote them, or after a full image).
  virtual void capture_all(const std::vector<Extent>& extents) = 0;
  /// Stops tracking: nothing counts as captured any more (the next collect()
  /// reports everything), and the slot's pages are writable without faults
  /// again. Call before the arena's slot is released or reused.
  virtual void forget() = 0;
  /// Pages currently counted as captured.
  virtual uint64_t captured_pages() const = 0;
  /// Of those, the pages reported at every collect without being tracked
  /// (write protection's hot pages, written between every two images: see
  /// dirty_pages.cc); they cost a copy each, not a fault and a protection.
  virtual uint64_t hot_pages() const { return 0; }

 protected:
  explicit DirtyPages(DirtyMethod method) : method_(method) {}

 private:
  DirtyMethod method_;
};

/// Extent helpers, on extents sorted by offset: `extents` rounded out to
/// whole pages and merged; the parts of `extents` inside `pages`; the union
/// of two merged lists, merged.
std::vector<Extent> page_cover(const std::vector<Extent>& extents);
std::vector<Extent> intersect(const std::vector<Extent>& extents, const std::vector<Extent>& pages);
std::vector<Extent> unite(const std::vector<Extent>& a, const std::vector<Extent>& b);

}  // namespace kappa::detail
