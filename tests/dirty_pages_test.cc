// Dirty page tracking (runtime/dirty_pages.h), with both methods, on a real
// arena: what a collect reports after writes inside and outside the captured
// extents, after frees that return pages, and after forget().
#include "runtime/dirty_pages.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>

namespace kappa::detail {
namespace {

std::vector<Extent> ext(std::initializer_list<std::pair<uint64_t, uint64_t>> list) {
  std::vector<Extent> out;
  for (auto [o, b] : list) out.push_back({o, b});
  return out;
}

std::string show(const std::vector<Extent>& v) {
  std::string s;
  for (const Extent& e : v)
    s += "[" + std::to_string(e.offset) + "+" + std::to_string(e.bytes) + ")";
  return s;
}

TEST(Extents, PageCoverRoundsOutAndMerges) {
  EXPECT_EQ(page_cover(ext({{10, 5}, {4000, 200}, {8192, 1}, {20480, 0}})), ext({{0, 12288}}));
  EXPECT_EQ(page_cover(ext({{4096, 4096}, {16384, 10}})), ext({{4096, 4096}, {16384, 4096}}));
}

TEST(Extents, IntersectClipsToTheExtents) {
  EXPECT_EQ(intersect(ext({{100, 8000}, {9000, 100}, {20000, 10}}), ext({{4096, 8192}})),
            ext({{4096, 4004}, {9000, 100}}));
  EXPECT_EQ(intersect(ext({{0, 100}}), {}), ext({}));
}

class DirtyPagesTest : public ::testing::TestWithParam<DirtyMethod> {
 protected:
  void SetUp() override {
    if (GetParam() == DirtyMethod::kWriteProtect &&
        pick_dirty_method() != DirtyMethod::kWriteProtect)
      GTEST_SKIP() << "userfaultfd write protection with PAGEMAP_SCAN (Linux 6.7) unavailable";
    arena = Arena::create(unsigned(Arena::free_slot()));
    tracker = DirtyPages::create(*arena, GetParam());
  }
  void TearDown() override {
    tracker.reset();
    if (arena) Arena::destroy(arena, Arena::Release::kUnmap);
  }
  char* alloc(size_t bytes, char fill = 7) {
    ArenaScope in(arena);
    auto* p = static_cast<char*>(arena->allocate(bytes));
    std::memset(p, fill, bytes);
    return p;
  }
  uint64_t offset(const void* p) const { return reinterpret_cast<uintptr_t>(p) - arena->base(); }
  // The pages of `extents` that a collect reported, rounded out: what must
  // hold a given address.
  static bool covers(const std::vector<Extent>& changed, uint64_t at) {
    for (const Extent& e : changed)
      if (at >= e.offset && at < e.offset + e.bytes) return true;
    return false;
  }

  Arena* arena = nullptr;
  std::unique_ptr<DirtyPages> tracker;
};

TEST_P(DirtyPagesTest, ReportsEverythingFirstThenOnlyWrittenPages) {
  char* big = alloc(64 * kPageBytes);
  std::vector<Extent> extents = arena->snapshot_extents();
  EXPECT_EQ(tracker->collect(extents), extents);
  EXPECT_EQ(tracker->collect(extents), ext({})) << "nothing written since";

  big[5 * kPageBytes + 17] = 1;
  big[40 * kPageBytes] = 2;
  std::vector<Extent> changed = tracker->collect(extents);
  EXPECT_EQ(changed, ext({{offset(big) + 5 * kPageBytes, kPageBytes},
                          {offset(big) + 40 * kPageBytes, kPageBytes}}))
      << show(changed);
  EXPECT_EQ(tracker->collect(extents), ext({}));
  EXPECT_GE(tracker->captured_pages(), 64u);
}

TEST_P(DirtyPagesTest, RewritingTheSameBytesIsNotAChangeForHashesOnly) {
  char* big = alloc(8 * kPageBytes);
  std::vector<Extent> extents = arena->snapshot_extents();
  tracker->capture_all(extents);
  volatile char* same = big + 3 * kPageBytes;
  *same = *same;  // a write, of the same value
  std::vector<Extent> changed = tracker->collect(extents);
  if (GetParam() == DirtyMethod::kHash)
    EXPECT_EQ(changed, ext({}));
  else
    EXPECT_EQ(changed, ext({{offset(big) + 3 * kPageBytes, kPageBytes}}));
}

TEST_P(DirtyPagesTest, NewAllocationsAndPagesFreedAndReusedAreReported) {
  char* a = alloc(300 * kPageBytes);  // a large span: returned to the OS when freed
  tracker->capture_all(arena->snapshot_extents());
  {
    ArenaScope in(arena);
    arena->deallocate(a);
  }
  // The freed span may be zapped (MADV_DONTNEED); either way it left the extents.
  std::vector<Extent> after_free = arena->snapshot_extents();
  EXPECT_FALSE(covers(after_free, offset(a) + 100 * kPageBytes));
  tracker->collect(after_free);
  char* b = alloc(600 * kPageBytes, 8);  // reuses a's pages and goes beyond them
  std::vector<Extent> extents = arena->snapshot_extents();
  std::vector<Extent> changed = tracker->collect(extents);
  for (uint64_t page = 0; page < 600; ++page)
    ASSERT_TRUE(covers(changed, offset(b) + page * kPageBytes)) << "page " << page;
  // Nothing written since, but the arena's own page was written at both
  // collects before: write protection may report it as a hot page.
  uint64_t reported = 0;
  for (const Extent& e : page_cover(tracker->collect(extents))) reported += e.bytes / kPageBytes;
  EXPECT_LE(reported, tracker->hot_pages());
}

TEST_P(DirtyPagesTest, PagesWrittenWhileOutsideTheExtentsAreReportedWhenTheyReturn) {
  char* a = alloc(16 * kPageBytes);
  std::vector<Extent> all = arena->snapshot_extents();
  tracker->capture_all(all);
  // Collect over a part only: a write elsewhere must survive until its page
  // is collected.
  a[9 * kPageBytes] = 3;
  std::vector<Extent> part = intersect(all, ext({{0, offset(a) + 8 * kPageBytes}}));
  EXPECT_FALSE(covers(tracker->collect(part), offset(a) + 9 * kPageBytes));
  EXPECT_TRUE(covers(tracker->collect(all), offset(a) + 9 * kPageBytes));
}

TEST_P(DirtyPagesTest, ForgetStartsOver) {
  char* a = alloc(4 * kPageBytes);
  std::vector<Extent> extents = arena->snapshot_extents();
  tracker->capture_all(extents);
  tracker->forget();
  EXPECT_EQ(tracker->captured_pages(), 0u);
  a[0] = 1;  // writable, with or without a fault
  EXPECT_EQ(tracker->collect(extents), extents);
}

// A page written before every collect is reported by every one of them,
// also once write protection leaves it writable (a hot page) and each time it
// is protected again to be seen anew; once no longer written, it stops being
// reported, and a later write is found again.
TEST_P(DirtyPagesTest, APageWrittenBeforeEveryCollectIsReportedEveryTime) {
  char* a = alloc(8 * kPageBytes);
  std::vector<Extent> extents = arena->snapshot_extents();
  tracker->capture_all(extents);
  uint64_t hot = offset(a) + 2 * kPageBytes, cold = offset(a) + 5 * kPageBytes;
  uint64_t most_hot = 0;
  for (int i = 0; i < 150; ++i) {                  // crosses the hot pages' relearning twice
    a[2 * kPageBytes + i % 100] = char(0x80 | i);  // never the value it replaces
    std::vector<Extent> changed = tracker->collect(extents);
    ASSERT_TRUE(covers(changed, hot)) << "collect " << i << ": " << show(changed);
    ASSERT_FALSE(covers(changed, cold)) << "collect " << i;
    most_hot = std::max(most_hot, tracker->hot_pages());
  }
  if (GetParam() == DirtyMethod::kWriteProtect) EXPECT_EQ(most_hot, 1u);
  EXPECT_GE(tracker->captured_pages(), 8u);
  int reported = 0;  // no more writes
  while (reported < 1000 && covers(tracker->collect(extents), hot)) ++reported;
  EXPECT_LE(reported, 64) << "still reported after it was left alone";
  EXPECT_EQ(tracker->collect(extents), ext({}));
  EXPECT_EQ(tracker->hot_pages(), 0u);
  a[2 * kPageBytes] = 1;
  EXPECT_EQ(tracker->collect(extents), ext({{hot, kPageBytes}}));
}

INSTANTIATE_TEST_SUITE_P(Methods, DirtyPagesTest,
                         ::testing::Values(DirtyMethod::kWriteProtect, DirtyMethod::kHash),
                         [](const auto& info) {
                           return info.param == DirtyMethod::kHash ? std::string("hash")
                                                                   : std::string("wp");
                         });

}  // namespace
}  // namespace kappa::detail
