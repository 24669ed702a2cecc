// Arena: a task's private memory region at a fixed virtual address, and the
// allocator that serves every allocation the task makes.
//
// Why: a checkpoint of a suspended C++20 coroutine is only a set of bytes if
// everything the coroutine can reach lives in one region that can be mapped at
// the same address in another process. Each task therefore owns one arena
// slot; while the task runs, the replaced operator new / malloc route every
// allocation of its thread to it (see malloc_hooks.cc), and the allocator keeps
// all of its own metadata inside the slot, so the used pages *are* the state.
//
// Address space: kSlotCount slots of kSlotBytes each, starting at kRegionBase.
// A slot is reserved with MAP_NORESERVE and committed on touch. Slot layout:
//
//   [Arena object: allocator state + TaskState]   (first kHeaderBytes)
//   [page map: one uint32_t per data page]         (kMaxPages entries)
//   [span links: prev/next page of free spans]     (kMaxPages entries)
//   [data pages ...]                               (from kDataOffset)
//
// Threads: the thread that has the arena current (set_current) owns it and
// allocates and frees without atomics. A free of an arena pointer on any other
// thread, or on the owner thread while no arena is current, is pushed onto a
// lock-free "remote free" stack that the owner drains. Threads that a task
// starts inherit its arena; from then on the arena is "shared" and every
// operation takes its spinlock (see the pthread_create wrapper).
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kappa::detail {

inline constexpr uintptr_t kRegionBase = uintptr_t{0x100000000000};  // 16 TiB
inline constexpr unsigned kSlotShift = 36;                           // 64 GiB per slot
inline constexpr size_t kSlotBytes = size_t{1} << kSlotShift;
inline constexpr unsigned kSlotCount = 64;
inline constexpr uintptr_t kRegionEnd = kRegionBase + kSlotCount * kSlotBytes;
inline constexpr unsigned kPageShift = 12;
inline constexpr size_t kPageBytes = size_t{1} << kPageShift;
inline constexpr size_t kHeaderBytes = size_t{1} << 20;
inline constexpr size_t kMaxPages = kSlotBytes >> kPageShift;  // upper bound, incl. metadata
inline constexpr size_t kPageMapOffset = kHeaderBytes;
inline constexpr size_t kSpanLinkOffset = kPageMapOffset + kMaxPages * sizeof(uint32_t);
inline constexpr size_t kDataOffset = kSpanLinkOffset + kMaxPages * 2 * sizeof(uint32_t);
inline constexpr size_t kDataPages = (kSlotBytes - kDataOffset) >> kPageShift;

inline constexpr unsigned kClassCount = 40;
inline constexpr size_t kMaxSmall = 32768;
inline constexpr unsigned kSpanBins = 256;  // exact bins for 1..255 pages, last bin for more

/// True when p lies anywhere in the arena region (mapped or not).
inline bool in_arena_region(const void* p) {
  return reinterpret_cast<uintptr_t>(p) - kRegionBase < kRegionEnd - kRegionBase;
}

/// Per-task runtime state kept inside the arena, so it is captured by every
/// snapshot and restored with it.
struct TaskState {
  void* root_frame = nullptr;       // coroutine frame of the task's root coroutine
  void* suspended_frame = nullptr;  // innermost frame suspended at a pause point
  void* pending = nullptr;          // the PendingCall (in that frame) it waits on
  uint64_t next_seqno = 0;          // seqno the next pause point will use
  uint64_t seqno = 0;               // seqno of the pending call
  uint64_t images = 0;              // checkpoint images taken so far (this one included)
  void* heap_requests = nullptr;    // PendingCalls with requests on the process heap
};

struct ArenaStats {
  size_t used_pages = 0;       // pages below the high-water mark not in free spans
  size_t top_pages = 0;        // high-water mark of the data page allocator
  size_t free_span_pages = 0;  // pages in free spans
  size_t live_large = 0;       // live large allocations
};

/// One extent of the slot that a snapshot must carry: [offset, offset + bytes).
struct Extent {
  uint64_t offset;
  uint64_t bytes;
  bool operator==(const Extent&) const = default;
};

class Arena {
 public:
  /// Maps slot `slot` (fresh, zeroed) and constructs an empty arena in it.
  /// Throws kappa::Error if the slot is taken or the address range is in use.
  static Arena* create(unsigned slot);
  /// Maps slot `slot` without initializing it, for loading snapshot bytes:
  /// the caller writes the extents, then calls adopt(). Returns true if the
  /// mapping is fresh (no page faulted in yet), false if it was recycled.
  static bool map_raw(unsigned slot);
  /// Completes a raw load: registers the slot as live and returns its arena.
  static Arena* adopt(unsigned slot);
  /// Abandons a raw load (the bytes failed verification): unmaps the slot
  /// without reading anything in it, since none of it can be trusted.
  static void unmap_raw(unsigned slot);
  enum class Release {
    kKeepMapping,  // keep the (faulted-in) pages mapped for this slot's next arena
    kUnmap,        // give everything back to the OS
  };
  /// Releases the arena. Every pointer into it becomes invalid. The slot's
  /// mapping is kept for reuse unless `how` is kUnmap or the arena grew past
  /// 1 GiB (then it is unmapped: an idle worker should not hold that much).
  static void destroy(Arena* arena, Release how = Release::kKeepMapping);
  /// The arena whose slot contains p (p must be in a mapped slot).
  static Arena* of(const void* p) {
    return reinterpret_cast<Arena*>(reinterpret_cast<uintptr_t>(p) & ~(kSlotBytes - 1));
  }
  /// Whether p lies in this arena's slot.
  bool contains(const void* p) const {
    return reinterpret_cast<uintptr_t>(p) - base() < kSlotBytes;
  }
  /// The lowest free slot index, or -1.
  static int free_slot();

  uintptr_t base() const { return reinterpret_cast<uintptr_t>(this); }
  unsigned slot() const { return static_cast<unsigned>((base() - kRegionBase) >> kSlotShift); }

  // ---- allocation (owner thread, or any thread in shared mode) ----
  void* allocate(size_t bytes);
  void* allocate_aligned(size_t bytes, size_t align);
  void* reallocate(void* p, size_t bytes);
  void deallocate(void* p);
  size_t usable_size(const void* p) const;
  /// Frees p from a thread that does not own this arena (lock-free push).
  void deallocate_remote(void* p);

  // ---- snapshot support (owner thread, task suspended, no task threads) ----
  /// Drains remote frees and returns the extents a snapshot must carry, in
  /// increasing offset order: the header, the used part of the page map and
  /// span links, and every in-use data span (less the never-touched tail of
  /// each size class's current run).
  std::vector<Extent> snapshot_extents();
  /// Returns the runs of small objects whose objects are all free (except
  /// each class's current run) to the page allocator, so that snapshots
  /// leave out their pages: what a task allocated and freed between two
  /// pause points (a parsed batch, a map it built and dropped) is garbage an
  /// image would otherwise carry and compress. Visits the free lists, at most
  /// about four objects per page of state (a run seen only in part is kept),
  /// and only when freed small objects add up to an eighth of the state.
  /// Returns the pages released.
  size_t release_empty_runs();
  ArenaStats stats() const;
  /// The high-water mark (ArenaStats::top_pages) of the arena live in `slot`,
  /// or 0: readable from any thread while the owner allocates, as a bound
  /// of the state's size (a checkpoint carries at most these data pages).
  static size_t top_pages_of(unsigned slot);

  TaskState& task() { return task_; }

  // ---- threads started by the task (see malloc_hooks.cc) ----
  void enter_shared_mode() { shared_.store(true, std::memory_order_seq_cst); }
  bool shared() const { return shared_.load(std::memory_order_relaxed); }
  std::atomic<int>& live_threads() { return live_threads_; }

  /// The thread's current arena (null outside tasks). Defined in arena.cc with
  /// the initial-exec TLS model so access is a single fs-relative load.
  static Arena* current();
  static void set_current(Arena* arena);

 private:
  Arena() = default;
  struct FreeNode {
    FreeNode* next;
  };
  class Guard;  // takes the spinlock in shared mode

  void* allocate_small(unsigned cls);
  void* refill(unsigned cls);
  void* allocate_large(size_t pages);
  void* allocate_large_aligned(size_t pages, size_t align);
  void free_small(void* p, unsigned cls);
  void free_span(size_t page, size_t pages);
  void drain_remote();
  void publish_top();  // for top_pages_of
  void do_deallocate(void* p);

  // Page allocator.
  uint32_t* page_map() { return reinterpret_cast<uint32_t*>(base() + kPageMapOffset); }
  const uint32_t* page_map() const {
    return reinterpret_cast<const uint32_t*>(base() + kPageMapOffset);
  }
  uint32_t* links() { return reinterpret_cast<uint32_t*>(base() + kSpanLinkOffset); }
  uintptr_t data() const { return base() + kDataOffset; }
  size_t page_of(const void* p) const {
    return (reinterpret_cast<uintptr_t>(p) - data()) >> kPageShift;
  }
  void* page_addr(size_t page) const {
    return reinterpret_cast<void*>(data() + (page << kPageShift));
  }
  size_t take_pages(size_t pages);  // returns first page index, or SIZE_MAX
  void bin_insert(size_t page, size_t pages);
  void bin_remove(size_t page, size_t pages);
  void mark_free(size_t page, size_t pages);
  static unsigned bin_of(size_t pages) { return pages < kSpanBins ? unsigned(pages) : 0; }

  uint64_t magic_ = 0;
  TaskState task_;
  std::atomic<bool> shared_{false};
  std::atomic<bool> lock_{false};
  std::atomic<int> live_threads_{0};
  std::atomic<void*> remote_head_{nullptr};
  // Size classes.
  FreeNode* free_[kClassCount] = {};
  size_t free_small_bytes_ = 0;  // the bytes of the objects on free_
  uintptr_t bump_[kClassCount] = {};
  uintptr_t end_[kClassCount] = {};
  // Page spans.
  size_t top_ = 0;       // pages [0, top_) have been handed out at least once
  size_t peak_top_ = 0;  // highest top_ so far (this slot's touched pages, roughly)
  size_t free_span_pages_ = 0;
  size_t dirty_free_pages_ = 0;  // freed large-span pages kept mapped (estimate)
  size_t live_large_ = 0;
  uint32_t bin_head_[kSpanBins];  // kNoPage when empty; bin 0 holds spans >= kSpanBins
  uint64_t bin_nonempty_[kSpanBins / 64] = {};
};

/// Makes `arena` the calling thread's current arena for the scope.
class ArenaScope {
 public:
  explicit ArenaScope(Arena* arena) : saved_(Arena::current()) { Arena::set_current(arena); }
  ~ArenaScope() { Arena::set_current(saved_); }
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

 private:
  Arena* saved_;
};

/// Size class helpers (exposed for tests).
unsigned size_class_of(size_t bytes);
size_t class_size(unsigned cls);

}  // namespace kappa::detail
