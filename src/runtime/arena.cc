#include "runtime/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kappa/error.h"
#include "runtime/fatal.h"

namespace kappa::detail {

// The calling thread's current arena. __thread (not thread_local) so that
// access never goes through a TLS wrapper function; initial-exec because this
// code is always linked into the executable.
__thread Arena* t_current_arena __attribute__((tls_model("initial-exec"))) = nullptr;

Arena* Arena::current() { return t_current_arena; }
void Arena::set_current(Arena* arena) { t_current_arena = arena; }

namespace {

constexpr uint64_t kArenaMagic = 0x4b41505041524e41ull;  // "KAPPARNA"
constexpr uint32_t kNoPage = UINT32_MAX;
constexpr uint32_t kKindShift = 30;
constexpr uint32_t kValueMask = (1u << kKindShift) - 1;
constexpr uint32_t kRun = 1u << kKindShift;    // page of a small-object run; value: class
constexpr uint32_t kLarge = 2u << kKindShift;  // first page of a large span; value: pages
constexpr uint32_t kFree = 3u << kKindShift;   // first and last page of a free span; value: pages
constexpr uint32_t kKindMask = 3u << kKindShift;
// Freed large spans of at least this many pages are returned to the OS, once
// more than kDirtyBudgetPages of freed pages are kept mapped for reuse
// (releasing every one made each large allocation fault its pages in again:
// ~0.6 ms per MiB here).
constexpr size_t kReleasePages = 32;
constexpr size_t kDirtyBudgetPages = (size_t{64} << 20) >> kPageShift;

constexpr std::array<uint32_t, kClassCount> kClassSizes = {
    16,   32,   48,   64,   80,    96,    112,   128,   160,   192,   224,   256,  320,  384,
    448,  512,  640,  768,  896,   1024,  1280,  1536,  1792,  2048,  2560,  3072, 3584, 4096,
    5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768};
static_assert(kClassSizes.back() == kMaxSmall);

// Size -> class for every multiple of 16 up to kMaxSmall.
constexpr auto kClassLookup = [] {
  std::array<uint8_t, kMaxSmall / 16 + 1> table{};
  unsigned cls = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    while (kClassSizes[cls] < i * 16) ++cls;
    table[i] = static_cast<uint8_t>(cls);
  }
  return table;
}();

// Pages per run: at least 16 KiB and at least eight objects.
constexpr auto kRunPages = [] {
  std::array<uint32_t, kClassCount> pages{};
  for (unsigned c = 0; c < kClassCount; ++c) {
    size_t bytes = kClassSizes[c] * 8 < 16384 ? 16384 : kClassSizes[c] * 8;
    pages[c] = static_cast<uint32_t>((bytes + kPageBytes - 1) >> kPageShift);
  }
  return pages;
}();

std::atomic<bool> g_slot_live[kSlotCount];
// Slots still mapped after their arena was released, kept for the next task:
// their pages are already faulted in, which is most of a restore's cost.
std::atomic<bool> g_slot_recycled[kSlotCount];
// Each live arena's high-water mark in pages (Arena::top_pages_of), for
// threads other than the owner: the worker's estimate of what a checkpoint
// would cost, made by the checkpoint clock's thread while the task runs.
std::atomic<size_t> g_slot_top[kSlotCount];
// A released arena that touched more than this is unmapped instead.
constexpr size_t kRecyclePages = (size_t{1} << 30) >> kPageShift;

size_t pages_for(size_t bytes) { return (bytes + kPageBytes - 1) >> kPageShift; }
uintptr_t round_up(uintptr_t v, size_t to) { return (v + to - 1) & ~(uintptr_t(to) - 1); }

void* map_slot(unsigned slot) {
  if (slot >= kSlotCount) throw Error("arena slot " + std::to_string(slot) + " out of range");
  void* want = reinterpret_cast<void*>(kRegionBase + uintptr_t(slot) * kSlotBytes);
  // A recycled slot holds stale bytes. That is fine: a restore overwrites
  // every extent the allocator will read, and a new arena never reads pages
  // it has not handed out (nor promises zeroed memory; calloc zeroes).
  if (g_slot_recycled[slot].exchange(false)) return want;
  void* got = mmap(want, kSlotBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (got == MAP_FAILED) {
    int err = errno;
    throw Error("cannot reserve task arena slot " + std::to_string(slot) + " at " +
                std::to_string(reinterpret_cast<uintptr_t>(want)) + ": " + std::strerror(err) +
                (err == EEXIST ? " (address range already in use)" : ""));
  }
  if (got != want) {  // kernels before 4.17 ignore MAP_FIXED_NOREPLACE
    munmap(got, kSlotBytes);
    throw Error("cannot reserve task arena slot " + std::to_string(slot) +
                ": the kernel placed it elsewhere (MAP_FIXED_NOREPLACE unsupported?)");
  }
  return got;
}

}  // namespace

unsigned size_class_of(size_t bytes) { return kClassLookup[(bytes + 15) >> 4]; }
size_t class_size(unsigned cls) { return kClassSizes[cls]; }

// Takes the arena's spinlock while the arena is shared with task threads.
class Arena::Guard {
 public:
  explicit Guard(Arena* a) : a_(a->shared_.load(std::memory_order_acquire) ? a : nullptr) {
    if (!a_) return;
    while (a_->lock_.exchange(true, std::memory_order_acquire)) {
      while (a_->lock_.load(std::memory_order_relaxed)) __builtin_ia32_pause();
    }
  }
  ~Guard() {
    if (a_) a_->lock_.store(false, std::memory_order_release);
  }

 private:
  Arena* a_;
};

// ---------------------------------------------------------------- lifecycle

Arena* Arena::create(unsigned slot) {
  void* mem = map_slot(slot);
  auto* a = new (mem) Arena();
  a->magic_ = kArenaMagic;
  a->publish_top();
  for (auto& h : a->bin_head_) h = kNoPage;
  g_slot_live[slot].store(true, std::memory_order_release);
  return a;
}

bool Arena::map_raw(unsigned slot) {
  bool recycled = slot < kSlotCount && g_slot_recycled[slot].load();
  map_slot(slot);
  return !recycled;
}

Arena* Arena::adopt(unsigned slot) {
  auto* a = reinterpret_cast<Arena*>(kRegionBase + uintptr_t(slot) * kSlotBytes);
  if (a->magic_ != kArenaMagic) throw Error("restored arena has a bad magic number");
  // Runtime-only fields: a snapshot is taken with no task threads running and
  // remote frees drained, but never trust that for the lock.
  a->shared_.store(false);
  a->lock_.store(false);
  a->live_threads_.store(0);
  a->remote_head_.store(nullptr);
  a->publish_top();
  g_slot_live[slot].store(true, std::memory_order_release);
  return a;
}

void Arena::unmap_raw(unsigned slot) {
  // Neither live nor recycled: the next map_slot maps fresh zero pages.
  g_slot_recycled[slot].store(false, std::memory_order_release);
  munmap(reinterpret_cast<void*>(kRegionBase + uintptr_t(slot) * kSlotBytes), kSlotBytes);
}

void Arena::destroy(Arena* arena, Release how) {
  if (!arena) return;
  unsigned slot = arena->slot();
  if (t_current_arena == arena) t_current_arena = nullptr;
  g_slot_top[slot].store(0, std::memory_order_relaxed);
  g_slot_live[slot].store(false, std::memory_order_release);
  if (how == Release::kKeepMapping && arena->peak_top_ <= kRecyclePages) {
    arena->magic_ = 0;  // no longer an arena until created or restored again
    g_slot_recycled[slot].store(true, std::memory_order_release);
    return;
  }
  munmap(arena, kSlotBytes);
}

int Arena::free_slot() {
  for (unsigned i = 0; i < kSlotCount; ++i)
    if (!g_slot_live[i].load(std::memory_order_acquire)) return int(i);
  return -1;
}

// ---------------------------------------------------------------- small objects

void Arena::free_small(void* p, unsigned cls) {
  auto* n = static_cast<FreeNode*>(p);
  n->next = free_[cls];
  free_[cls] = n;
  free_small_bytes_ += kClassSizes[cls];
}

void* Arena::allocate_small(unsigned cls) {
  if (FreeNode* n = free_[cls]) {
    free_[cls] = n->next;
    free_small_bytes_ -= kClassSizes[cls];
    return n;
  }
  size_t size = kClassSizes[cls];
  if (bump_[cls] + size <= end_[cls]) {
    void* p = reinterpret_cast<void*>(bump_[cls]);
    bump_[cls] += size;
    return p;
  }
  return refill(cls);
}

void* Arena::refill(unsigned cls) {
  if (remote_head_.load(std::memory_order_relaxed)) {
    drain_remote();
    if (FreeNode* n = free_[cls]) {
      free_[cls] = n->next;
      free_small_bytes_ -= kClassSizes[cls];
      return n;
    }
  }
  size_t pages = kRunPages[cls];
  size_t first = take_pages(pages);
  if (first == SIZE_MAX) return nullptr;
  uint32_t* pm = page_map();
  for (size_t i = 0; i < pages; ++i) pm[first + i] = kRun | cls;
  size_t size = kClassSizes[cls];
  uintptr_t start = reinterpret_cast<uintptr_t>(page_addr(first));
  bump_[cls] = start + size;
  end_[cls] = start + ((pages << kPageShift) / size) * size;
  return reinterpret_cast<void*>(start);
}

// ---------------------------------------------------------------- page spans

void Arena::bin_insert(size_t page, size_t pages) {
  unsigned b = bin_of(pages);
  uint32_t* l = links();
  uint32_t head = bin_head_[b];
  l[2 * page] = kNoPage;
  l[2 * page + 1] = head;
  if (head != kNoPage) l[2 * head] = uint32_t(page);
  bin_head_[b] = uint32_t(page);
  bin_nonempty_[b / 64] |= uint64_t{1} << (b % 64);
}

void Arena::bin_remove(size_t page, size_t pages) {
  unsigned b = bin_of(pages);
  uint32_t* l = links();
  uint32_t prev = l[2 * page], next = l[2 * page + 1];
  if (prev != kNoPage)
    l[2 * prev + 1] = next;
  else
    bin_head_[b] = next;
  if (next != kNoPage) l[2 * next] = prev;
  if (bin_head_[b] == kNoPage) bin_nonempty_[b / 64] &= ~(uint64_t{1} << (b % 64));
}

void Arena::mark_free(size_t page, size_t pages) {
  uint32_t* pm = page_map();
  pm[page] = kFree | uint32_t(pages);
  pm[page + pages - 1] = kFree | uint32_t(pages);
}

size_t Arena::take_pages(size_t pages) {
  size_t found = SIZE_MAX, found_pages = 0;
  if (pages < kSpanBins) {
    // Smallest exact bin >= pages (bin 0, the "large" bin, is searched last).
    for (unsigned w = unsigned(pages / 64); w < kSpanBins / 64 && found == SIZE_MAX; ++w) {
      uint64_t bits = bin_nonempty_[w];
      if (w == pages / 64) bits &= ~uint64_t{0} << (pages % 64);
      if (w == 0) bits &= ~uint64_t{1};
      if (bits) {
        unsigned b = w * 64 + unsigned(__builtin_ctzll(bits));
        found = bin_head_[b];
        found_pages = b;
      }
    }
  }
  if (found == SIZE_MAX) {
    const uint32_t* l = links();
    for (uint32_t p = bin_head_[0]; p != kNoPage; p = l[2 * p + 1]) {
      size_t n = page_map()[p] & kValueMask;
      if (n >= pages) {
        found = p;
        found_pages = n;
        break;
      }
    }
  }
  if (found != SIZE_MAX) {
    bin_remove(found, found_pages);
    free_span_pages_ -= found_pages;
    // Reused pages may have been among the dirty ones (an estimate: spans
    // coalesce, and clean and dirty pages are not told apart).
    dirty_free_pages_ -= std::min(dirty_free_pages_, found_pages);
    if (found_pages > pages) {
      mark_free(found + pages, found_pages - pages);
      bin_insert(found + pages, found_pages - pages);
      free_span_pages_ += found_pages - pages;
    }
    return found;
  }
  if (top_ + pages > kDataPages) return SIZE_MAX;
  size_t page = top_;
  top_ += pages;
  publish_top();
  // Pages below the old high-water mark were freed there still mapped (see
  // free_span) and count as dirty: they are in use again.
  if (page < peak_top_) dirty_free_pages_ -= std::min({dirty_free_pages_, pages, peak_top_ - page});
  if (top_ > peak_top_) peak_top_ = top_;
  return page;
}

void Arena::free_span(size_t page, size_t pages) {
  uint32_t* pm = page_map();
  if (pages >= kReleasePages) {
    if (dirty_free_pages_ + pages > kDirtyBudgetPages)
      madvise(page_addr(page), pages << kPageShift, MADV_DONTNEED);
    else
      dirty_free_pages_ += pages;
  }
  if (page > 0 && (pm[page - 1] & kKindMask) == kFree) {
    size_t n = pm[page - 1] & kValueMask;
    bin_remove(page - n, n);
    free_span_pages_ -= n;
    page -= n;
    pages += n;
  }
  if (page + pages < top_ && (pm[page + pages] & kKindMask) == kFree) {
    size_t n = pm[page + pages] & kValueMask;
    bin_remove(page + pages, n);
    free_span_pages_ -= n;
    pages += n;
  }
  if (page + pages == top_) {  // the span ends at the high-water mark: lower it
    top_ = page;
    publish_top();
    pm[page] = 0;
    return;
  }
  mark_free(page, pages);
  bin_insert(page, pages);
  free_span_pages_ += pages;
}

void* Arena::allocate_large(size_t pages) {
  if (remote_head_.load(std::memory_order_relaxed)) drain_remote();
  size_t page = take_pages(pages);
  if (page == SIZE_MAX) return nullptr;
  uint32_t* pm = page_map();
  pm[page] = kLarge | uint32_t(pages);
  if (pages > 1) pm[page + pages - 1] = 0;
  ++live_large_;
  return page_addr(page);
}

void* Arena::allocate_large_aligned(size_t pages, size_t align) {
  size_t extra = align / kPageBytes - 1;
  size_t first = take_pages(pages + extra);
  if (first == SIZE_MAX) return nullptr;
  uintptr_t addr = round_up(reinterpret_cast<uintptr_t>(page_addr(first)), align);
  size_t page = page_of(reinterpret_cast<void*>(addr));
  size_t lead = page - first, trail = extra - lead;
  uint32_t* pm = page_map();
  pm[page] = kLarge | uint32_t(pages);
  if (pages > 1) pm[page + pages - 1] = 0;
  ++live_large_;
  // The trailing piece first: if it ends at the high-water mark it lowers it.
  if (trail) {
    pm[page + pages] = kLarge;  // placeholder head so free_span sees a span
    free_span(page + pages, trail);
  }
  if (lead) {
    pm[first] = kLarge;
    if (lead > 1) pm[first + lead - 1] = 0;
    free_span(first, lead);
  }
  return reinterpret_cast<void*>(addr);
}

// ---------------------------------------------------------------- public API

void* Arena::allocate(size_t bytes) {
  Guard g(this);
  if (bytes <= kMaxSmall) return allocate_small(size_class_of(bytes));
  return allocate_large(pages_for(bytes));
}

void* Arena::allocate_aligned(size_t bytes, size_t align) {
  if (align <= 16) return allocate(bytes);
  Guard g(this);
  if (align <= kPageBytes && bytes <= kMaxSmall) {
    size_t want = bytes < align ? align : bytes;
    for (unsigned c = size_class_of(want); c < kClassCount; ++c)
      if (kClassSizes[c] % align == 0) return allocate_small(c);
  }
  if (align <= kPageBytes) return allocate_large(pages_for(bytes));
  return allocate_large_aligned(pages_for(bytes), align);
}

void Arena::do_deallocate(void* p) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  if (addr < data() || addr >= base() + kSlotBytes)
    fatal("free() of %p: inside a task arena but not an allocation", p);
  size_t page = page_of(p);
  uint32_t e = page_map()[page];
  switch (e & kKindMask) {
    case kRun:
      free_small(p, e & kValueMask);
      return;
    case kLarge:
      if (reinterpret_cast<uintptr_t>(page_addr(page)) != addr) break;
      --live_large_;
      free_span(page, e & kValueMask);
      return;
    default:
      break;
  }
  fatal("free() of %p: not a live allocation of its task arena (double free?)", p);
}

void Arena::deallocate(void* p) {
  Guard g(this);
  do_deallocate(p);
}

void Arena::deallocate_remote(void* p) {
  if (!g_slot_live[slot()].load(std::memory_order_acquire))
    fatal("free() of %p: its task arena was already released", p);
  if (shared()) return deallocate(p);
  auto* node = static_cast<FreeNode*>(p);
  void* head = remote_head_.load(std::memory_order_relaxed);
  do {
    node->next = static_cast<FreeNode*>(head);
  } while (!remote_head_.compare_exchange_weak(head, node, std::memory_order_release,
                                               std::memory_order_relaxed));
}

void Arena::drain_remote() {
  auto* n = static_cast<FreeNode*>(remote_head_.exchange(nullptr, std::memory_order_acquire));
  while (n) {
    FreeNode* next = n->next;
    do_deallocate(n);
    n = next;
  }
}

size_t Arena::usable_size(const void* p) const {
  uint32_t e = page_map()[page_of(p)];
  switch (e & kKindMask) {
    case kRun:
      return kClassSizes[e & kValueMask];
    case kLarge:
      return size_t(e & kValueMask) << kPageShift;
    default:
      return 0;
  }
}

void* Arena::reallocate(void* p, size_t bytes) {
  if (!p) return allocate(bytes);
  Guard g(this);
  size_t old = usable_size(p);
  if (bytes <= old && (old <= kMaxSmall || bytes > kMaxSmall)) return p;
  uint32_t* pm = page_map();
  size_t page = page_of(p);
  if (old > kMaxSmall && bytes > old) {  // grow a large span in place at the high-water mark
    size_t pages = old >> kPageShift, want = pages_for(bytes);
    if (page + pages == top_ && page + want <= kDataPages) {
      top_ = page + want;
      publish_top();
      if (top_ > peak_top_) peak_top_ = top_;
      pm[page] = kLarge | uint32_t(want);
      pm[page + want - 1] = 0;
      return p;
    }
  }
  void* q =
      bytes <= kMaxSmall ? allocate_small(size_class_of(bytes)) : allocate_large(pages_for(bytes));
  if (!q) return nullptr;
  std::memcpy(q, p, old < bytes ? old : bytes);
  do_deallocate(p);
  return q;
}

// ---------------------------------------------------------------- snapshots

size_t Arena::release_empty_runs() {
  drain_remote();
  // Its own vectors must not come from the arena they change.
  if (current() == this || top_ == 0) return 0;
  size_t state_bytes = top_ << kPageShift;
  if (free_small_bytes_ < std::max<size_t>(state_bytes / 8, size_t{64} << 10)) return 0;
  // The first page of the run each page belongs to (kNoPage: none, or a
  // class's current run, which stays), found as snapshot_extents walks them.
  const uint32_t* pm = page_map();
  std::vector<uint32_t> run_of(top_, kNoPage), free_in(top_, 0);
  for (size_t page = 0; page < top_;) {
    uint32_t e = pm[page];
    size_t pages = e & kValueMask;
    if ((e & kKindMask) == kRun) {
      unsigned cls = e & kValueMask;
      pages = kRunPages[cls];
      uintptr_t start = reinterpret_cast<uintptr_t>(page_addr(page));
      bool current = end_[cls] > start && end_[cls] <= start + (pages << kPageShift);
      if (!current) std::fill_n(run_of.begin() + ptrdiff_t(page), pages, uint32_t(page));
    }
    page += std::max<size_t>(pages, 1);
  }
  // Count the free objects of each run, on a budget: a run whose objects
  // were not all seen is not released, so stopping early only keeps more.
  size_t budget = std::max<size_t>(top_ * 4, 1 << 16);
  std::array<size_t, kClassCount> visited{};
  for (unsigned cls = 0; cls < kClassCount && budget > 0; ++cls)
    for (FreeNode* n = free_[cls]; n && budget > 0; n = n->next, --budget, ++visited[cls])
      if (uint32_t run = run_of[page_of(n)]; run != kNoPage) ++free_in[run];
  auto empty = [&](uint32_t run) {
    if (run == kNoPage) return false;
    unsigned cls = pm[run] & kValueMask;
    return free_in[run] == ((size_t(kRunPages[cls]) << kPageShift) / kClassSizes[cls]);
  };
  // Unlink their objects (all among those visited), then free their pages.
  for (unsigned cls = 0; cls < kClassCount; ++cls) {
    FreeNode** link = &free_[cls];
    for (size_t i = 0; i < visited[cls] && *link; ++i) {
      FreeNode* n = *link;
      if (empty(run_of[page_of(n)])) {
        *link = n->next;
        free_small_bytes_ -= kClassSizes[cls];
      } else {
        link = &n->next;
      }
    }
  }
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t page = 0; page < top_;) {
    uint32_t run = run_of[page];
    if (run == page && empty(run)) {
      runs.emplace_back(page, kRunPages[pm[page] & kValueMask]);
      page += runs.back().second;
    } else {
      ++page;
    }
  }
  size_t released = 0;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {  // from the top: it may come down
    free_span(it->first, it->second);
    released += it->second;
  }
  return released;
}

std::vector<Extent> Arena::snapshot_extents() {
  drain_remote();
  std::vector<Extent> out;
  auto add = [&](uint64_t off, uint64_t bytes) {
    if (bytes == 0) return;
    if (!out.empty() && out.back().offset + out.back().bytes == off)
      out.back().bytes += bytes;
    else
      out.push_back({off, bytes});
  };
  // Byte-exact extents: what lies beyond them in a page was never used, and a
  // restore maps fresh zero pages.
  add(0, sizeof(Arena));
  add(kPageMapOffset, top_ * sizeof(uint32_t));
  add(kSpanLinkOffset, top_ * 2 * sizeof(uint32_t));
  const uint32_t* pm = page_map();
  for (size_t page = 0; page < top_;) {
    uint32_t e = pm[page];
    uint64_t off = kDataOffset + (uint64_t(page) << kPageShift);
    switch (e & kKindMask) {
      case kRun: {
        unsigned cls = e & kValueMask;
        size_t pages = kRunPages[cls];
        uintptr_t start = base() + off, stop = start + (pages << kPageShift);
        // The current run of a class is used only below its bump pointer.
        if (end_[cls] > start && end_[cls] <= stop) stop = bump_[cls];
        add(off, stop - start);
        page += pages;
        break;
      }
      case kLarge:
        add(off, uint64_t(e & kValueMask) << kPageShift);
        page += e & kValueMask;
        break;
      case kFree:
        page += e & kValueMask;
        break;
      default:
        fatal("arena page map corrupt at page %zu (entry %#x)", page, e);
    }
  }
  return out;
}

void Arena::publish_top() { g_slot_top[slot()].store(top_, std::memory_order_relaxed); }

size_t Arena::top_pages_of(unsigned slot) {
  return slot < kSlotCount ? g_slot_top[slot].load(std::memory_order_relaxed) : 0;
}

ArenaStats Arena::stats() const {
  ArenaStats s;
  s.top_pages = top_;
  s.free_span_pages = free_span_pages_;
  s.used_pages = top_ - free_span_pages_;
  s.live_large = live_large_;
  return s;
}

}  // namespace kappa::detail
