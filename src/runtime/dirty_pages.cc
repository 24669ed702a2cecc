#include "runtime/dirty_pages.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "kappa/error.h"
#include "runtime/parallel.h"

// Linux 6.7's PAGEMAP_SCAN and the userfaultfd features it works with, for C
// library headers older than the kernel (include/uapi/linux/fs.h and
// userfaultfd.h; a stable ABI).
#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace kappa::detail {

const char* dirty_method_name(DirtyMethod method) {
  return method == DirtyMethod::kWriteProtect ? "write-protect" : "hash";
}

// ---------------------------------------------------------------- extents

namespace {

constexpr uint64_t kPageMask = kPageBytes - 1;

void append_merged(std::vector<Extent>& out, uint64_t from, uint64_t to) {
  if (from >= to) return;
  if (!out.empty() && out.back().offset + out.back().bytes >= from) {
    uint64_t end = std::max(out.back().offset + out.back().bytes, to);
    out.back().bytes = end - out.back().offset;
  } else {
    out.push_back({from, to - from});
  }
}

// a \ b, both sorted and merged.
std::vector<Extent> subtract(const std::vector<Extent>& a, const std::vector<Extent>& b) {
  std::vector<Extent> out;
  size_t j = 0;
  for (const Extent& e : a) {
    uint64_t pos = e.offset, end = e.offset + e.bytes;
    while (j < b.size() && b[j].offset + b[j].bytes <= pos) ++j;
    for (size_t k = j; k < b.size() && b[k].offset < end && pos < end; ++k) {
      append_merged(out, pos, b[k].offset);
      pos = std::max(pos, b[k].offset + b[k].bytes);
    }
    append_merged(out, pos, end);
  }
  return out;
}

uint64_t pages_in(const std::vector<Extent>& ranges) {
  uint64_t n = 0;
  for (const Extent& e : ranges) n += e.bytes >> kPageShift;
  return n;
}

}  // namespace

std::vector<Extent> unite(const std::vector<Extent>& a, const std::vector<Extent>& b) {
  std::vector<Extent> out;
  out.reserve(a.size() + b.size());
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    const Extent& e =
        (j == b.size() || (i < a.size() && a[i].offset < b[j].offset)) ? a[i++] : b[j++];
    append_merged(out, e.offset, e.offset + e.bytes);
  }
  return out;
}

std::vector<Extent> page_cover(const std::vector<Extent>& extents) {
  std::vector<Extent> out;
  for (const Extent& e : extents)
    if (e.bytes > 0)
      append_merged(out, e.offset & ~kPageMask, (e.offset + e.bytes + kPageMask) & ~kPageMask);
  return out;
}

std::vector<Extent> intersect(const std::vector<Extent>& extents,
                              const std::vector<Extent>& pages) {
  std::vector<Extent> out;
  size_t j = 0;
  for (const Extent& e : extents) {
    uint64_t end = e.offset + e.bytes;
    while (j < pages.size() && pages[j].offset + pages[j].bytes <= e.offset) ++j;
    for (size_t k = j; k < pages.size() && pages[k].offset < end; ++k) {
      uint64_t from = std::max(e.offset, pages[k].offset);
      uint64_t to = std::min(end, pages[k].offset + pages[k].bytes);
      if (from < to) out.push_back({from, to - from});
    }
  }
  return out;
}

// ---------------------------------------------------------------- write protection

namespace {

// The process's userfaultfd, in asynchronous write-protect mode: faults are
// resolved by the kernel, nothing is ever read from it. -1 if unavailable.
using Clock = std::chrono::steady_clock;

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Uffd {
  int fd = -1;
  std::string why;  // when unavailable
  // What the probe measured, per page: the write fault on a protected page,
  // and protecting it again (PAGEMAP_SCAN).
  double fault_us = 0, reprotect_us = 0;
};

int open_uffd(std::string& why) {
  int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (fd < 0) {
    why = std::string("userfaultfd: ") + std::strerror(errno);
    return -1;
  }
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    why = std::string("userfaultfd without asynchronous write protection (Linux 6.7): ") +
          std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int pagemap_fd() {
  static int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  return fd;
}

bool write_protect(int uffd, uintptr_t from, uint64_t bytes, bool on) {
  uffdio_writeprotect wp{};
  wp.range.start = from;
  wp.range.len = bytes;
  wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0;
}

// Appends the written pages of [from, from + bytes) (absolute addresses) to
// `out` as slot offsets relative to `base`, and write-protects them again.
// Returns false (errno set) if the scan failed.
bool scan_written(uintptr_t base, uintptr_t from, uint64_t bytes, std::vector<Extent>& out) {
  page_region regions[256];
  uint64_t start = from, end = from + bytes;
  while (start < end) {
    pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    arg.start = start;
    arg.end = end;
    arg.vec = reinterpret_cast<uintptr_t>(regions);
    arg.vec_len = std::size(regions);
    arg.category_mask = PAGE_IS_WRITTEN;
    arg.return_mask = PAGE_IS_WRITTEN;
    long n = ioctl(pagemap_fd(), PAGEMAP_SCAN, &arg);
    if (n < 0) return false;
    for (long i = 0; i < n; ++i) append_merged(out, regions[i].start - base, regions[i].end - base);
    if (arg.walk_end <= start) break;  // no progress: cannot happen, but never spin
    start = arg.walk_end;
  }
  return true;
}

// Probes the whole mechanism once on a scratch mapping: register, protect,
// write, scan. Kernels and sandboxes differ in which step they refuse. The
// pages are 2 MiB apart (each in a page table of its own, the dearer case),
// and the writes and the scan are timed: what tracking costs (dirty_costs).
const Uffd& process_uffd() {
  static const Uffd uffd = [] {
    Uffd u;
    u.fd = open_uffd(u.why);
    if (u.fd < 0) return u;
    constexpr size_t kPages = 16, kApart = size_t{2} << 20;
    size_t bytes = kPages * kApart;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    bool ok = m != MAP_FAILED;
    if (ok) {
      auto* p = static_cast<char*>(m);
      auto at = reinterpret_cast<uintptr_t>(m);
      for (size_t i = 0; i < kPages; ++i) p[i * kApart] = 1;
      uffdio_register reg{};
      reg.range.start = at;
      reg.range.len = bytes;
      reg.mode = UFFDIO_REGISTER_MODE_WP;
      std::vector<Extent> written;
      ok = ioctl(u.fd, UFFDIO_REGISTER, &reg) == 0 && write_protect(u.fd, at, bytes, true);
      auto t1 = Clock::now();
      if (ok)
        for (size_t i = 0; i < kPages; ++i) p[i * kApart] = 2;
      auto t2 = Clock::now();
      ok = ok && scan_written(at, at, bytes, written);
      auto t3 = Clock::now();
      ok = ok && written.size() == kPages;
      for (size_t i = 0; ok && i < kPages; ++i)
        ok = written[i].offset == i * kApart && written[i].bytes == kPageBytes;
      if (ok) {
        u.fault_us = us(t2 - t1) / kPages;
        u.reprotect_us = us(t3 - t2) / kPages;
      } else {
        u.why = std::string("PAGEMAP_SCAN (Linux 6.7) unavailable: ") + std::strerror(errno);
      }
      munmap(m, bytes);
    }
    if (!ok) {
      close(u.fd);
      u.fd = -1;
    }
    return u;
  }();
  return uffd;
}

class WriteProtectPages final : public DirtyPages {
 public:
  WriteProtectPages(Arena& arena, int uffd)
      : DirtyPages(DirtyMethod::kWriteProtect), base_(arena.base()), uffd_(uffd) {
    register_slot();
  }
  ~WriteProtectPages() override { forget(); }

  std::vector<Extent> collect(const std::vector<Extent>& extents) override {
    std::vector<Extent> cover = page_cover(extents);
    std::vector<Extent> changed = rearm(cover);
    return intersect(extents, changed);
  }

  void capture_all(const std::vector<Extent>& extents) override { rearm(page_cover(extents)); }

  void forget() override {
    if (!registered_) return;
    // Unregistering clears the protection of every page (Linux 6.2 on).
    uffdio_range range{base_, kSlotBytes};
    ioctl(uffd_, UFFDIO_UNREGISTER, &range);  // fails only for an unmapped slot: nothing to do
    registered_ = false;
    captured_.clear();
    hot_.clear();
    last_written_.clear();
  }

  uint64_t captured_pages() const override { return pages_in(captured_) + pages_in(hot_); }
  uint64_t hot_pages() const override { return pages_in(hot_); }

 private:
  // The pages of `cover` written since captured or never captured; all of
  // `cover` counts as captured afterwards, and is protected but for the hot
  // pages.
  std::vector<Extent> rearm(const std::vector<Extent>& cover) {
    if (!registered_) register_slot();
    std::vector<Extent> written;
    for (const Extent& e : intersect(cover, captured_))
      if (!scan_written(base_, base_ + e.offset, e.bytes, written))
        throw Error(std::string("PAGEMAP_SCAN failed: ") + std::strerror(errno));
    hot_ = unite(intersect(hot_, cover), {});  // pages the arena released leave
    // Hot pages are never captured, so they are always among the fresh ones.
    std::vector<Extent> fresh = subtract(cover, captured_);
    if (!hot_.empty() && ++since_relearn_ >= kHotRelearn) {  // protected again: seen anew
      hot_.clear();
      since_relearn_ = 0;
    }
    std::vector<Extent> protect = subtract(fresh, hot_);
    for (const Extent& e : protect)
      if (!write_protect(uffd_, base_ + e.offset, e.bytes, true))
        throw Error(std::string("cannot write-protect arena pages: ") + std::strerror(errno));
    captured_ = unite(captured_, protect);
    promote(written);
    return unite(written, fresh);
  }

  // Pages written before this collect and the one before it become hot, up
  // to kMaxHotPages in kMaxHotRuns runs: left writable (scan_written
  // protected them again).
  void promote(const std::vector<Extent>& written) {
    std::vector<Extent> again = unite(intersect(written, last_written_), {});
    last_written_ = written;
    uint64_t room = kMaxHotPages - std::min(kMaxHotPages, pages_in(hot_));
    size_t runs = hot_.size();
    std::vector<Extent> hot;
    for (const Extent& e : again) {
      if (room == 0 || runs++ >= kMaxHotRuns) break;
      uint64_t pages = std::min(room, e.bytes >> kPageShift);
      if (write_protect(uffd_, base_ + e.offset, pages << kPageShift, false))
        hot.push_back({e.offset, pages << kPageShift});
      room -= pages;
    }
    if (hot.empty()) return;
    captured_ = subtract(captured_, hot);
    hot_ = unite(hot_, hot);
  }

  void register_slot() {
    uffdio_register reg{};
    reg.range.start = base_;
    reg.range.len = kSlotBytes;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0)
      throw Error(std::string("cannot register the task's arena with userfaultfd: ") +
                  std::strerror(errno));
    registered_ = true;
  }

  // Pages that the task writes between every two images (its coroutine
  // frames, a counter, the vector it appends to): protecting them again at
  // each collect would cost the task a fault and the collect a re-protection
  // per page each time (tens of microseconds apiece where the MMU is
  // virtualized in software, as on this project's VMs) to learn what is
  // known. They are left writable instead and reported at every collect, a
  // copy of 4 KiB each. Every kHotRelearn collects they are protected again,
  // and only those written twice in a row again become hot.
  // Each run of hot pages splits the captured ranges, and each range costs
  // the collect a PAGEMAP_SCAN call of its own: pages written here and there
  // are left to the faults.
  static constexpr uint64_t kMaxHotPages = 32;
  static constexpr size_t kMaxHotRuns = 4;
  static constexpr int kHotRelearn = 64;

  uintptr_t base_;
  int uffd_;
  bool registered_ = false;
  std::vector<Extent> captured_;      // page ranges protected since their capture
  std::vector<Extent> hot_;           // writable pages, reported at every collect
  std::vector<Extent> last_written_;  // protected pages the last collect found written
  int since_relearn_ = 0;
};

// ---------------------------------------------------------------- hashes

class HashedPages final : public DirtyPages {
 public:
  explicit HashedPages(Arena& arena) : DirtyPages(DirtyMethod::kHash), base_(arena.base()) {}

  std::vector<Extent> collect(const std::vector<Extent>& extents) override {
    return intersect(extents, rehash(page_cover(extents)));
  }
  void capture_all(const std::vector<Extent>& extents) override { rehash(page_cover(extents)); }
  void forget() override {
    hashes_.clear();
    hashes_.shrink_to_fit();
    captured_ = 0;
  }
  uint64_t captured_pages() const override { return captured_; }

 private:
  static constexpr uint64_t kBatchPages = 256;  // 1 MiB per parallel piece

  // Hashes every page of `cover`, records the hashes, and returns the pages
  // whose hash differs from the recorded one (or had none).
  std::vector<Extent> rehash(const std::vector<Extent>& cover) {
    if (!cover.empty()) {
      uint64_t last = (cover.back().offset + cover.back().bytes) >> kPageShift;
      if (hashes_.size() < last) hashes_.resize(last, 0);
    }
    struct Batch {
      uint64_t first_page, pages;
    };
    std::vector<Batch> batches;
    for (const Extent& e : cover)
      for (uint64_t p = e.offset >> kPageShift, end = (e.offset + e.bytes) >> kPageShift; p < end;
           p += kBatchPages)
        batches.push_back({p, std::min(kBatchPages, end - p)});
    std::vector<std::vector<Extent>> changed(batches.size());
    std::vector<uint64_t> added(batches.size(), 0);
    parallel_for(batches.size(), [&](size_t b) {
      for (uint64_t p = batches[b].first_page; p < batches[b].first_page + batches[b].pages; ++p) {
        // Never 0, which marks a page not captured.
        uint64_t h =
            XXH3_64bits(reinterpret_cast<const void*>(base_ + (p << kPageShift)), kPageBytes) | 1;
        if (hashes_[p] == h) continue;
        if (hashes_[p] == 0) ++added[b];
        hashes_[p] = h;
        append_merged(changed[b], p << kPageShift, (p + 1) << kPageShift);
      }
    });
    std::vector<Extent> out;
    for (size_t b = 0; b < batches.size(); ++b) {
      captured_ += added[b];
      for (const Extent& e : changed[b]) append_merged(out, e.offset, e.offset + e.bytes);
    }
    return out;
  }

  uintptr_t base_;
  std::vector<uint64_t> hashes_;  // per page of the slot: XXH3 | 1, or 0 (not captured)
  uint64_t captured_ = 0;
};

}  // namespace

const DirtyCosts& dirty_costs() {
  static const DirtyCosts costs = [] {
    DirtyCosts c;
    // Hashing: one thread over 4 MiB, warm.
    std::vector<char> buf(size_t{4} << 20, 1);
    uint64_t sink = 0;
    for (size_t p = 0; p < buf.size(); p += kPageBytes)
      sink += XXH3_64bits(buf.data() + p, kPageBytes);
    auto t0 = Clock::now();
    for (size_t p = 0; p < buf.size(); p += kPageBytes)
      sink += XXH3_64bits(buf.data() + p, kPageBytes);
    c.hash_us_per_mib = us(Clock::now() - t0) / 4;
    volatile uint64_t keep = sink;  // the hashing is not optimized away
    (void)keep;
    // Write protection: as the availability probe measured it.
    const Uffd& u = process_uffd();
    c.fault_us_per_page = u.fault_us;
    c.reprotect_us_per_page = u.reprotect_us;
    spdlog::debug(
        "dirty page tracking costs: {:.1f} us a fault, {:.1f} us to protect a page "
        "again, {:.0f} us to hash a MiB",
        c.fault_us_per_page, c.reprotect_us_per_page, c.hash_us_per_mib);
    return c;
  }();
  return costs;
}

bool dirty_method_forced() {
  const char* forced = std::getenv("KAPPA_DIRTY_PAGES");
  return forced && *forced;
}

DirtyMethod pick_dirty_method() {
  static const DirtyMethod method = [] {
    const char* forced = std::getenv("KAPPA_DIRTY_PAGES");
    std::string want = forced ? forced : "";
    if (want == "hash") return DirtyMethod::kHash;
    if (want != "" && want != "wp")
      spdlog::warn("KAPPA_DIRTY_PAGES={} is neither 'wp' nor 'hash': choosing by itself", want);
    const Uffd& u = process_uffd();
    if (u.fd >= 0) return DirtyMethod::kWriteProtect;
    if (want == "wp") spdlog::warn("KAPPA_DIRTY_PAGES=wp: {}; hashing pages instead", u.why);
    return DirtyMethod::kHash;
  }();
  return method;
}

std::unique_ptr<DirtyPages> DirtyPages::create(Arena& arena, DirtyMethod method) {
  if (method == DirtyMethod::kHash) return std::make_unique<HashedPages>(arena);
  const Uffd& u = process_uffd();
  if (u.fd < 0) throw Error("write-protect dirty page tracking unavailable: " + u.why);
  return std::make_unique<WriteProtectPages>(arena, u.fd);
}

}  // namespace kappa::detail
