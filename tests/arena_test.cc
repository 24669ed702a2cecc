// The task arena and its allocator, in this process: size classes, spans,
// routing of every allocation function, and snapshot/restore of a stressed
// heap into a freshly mapped slot.
#include "runtime/arena.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "kappa/detail/calls.h"
#include "kappa/serialize.h"
#include "runtime/checkpoint_image.h"
#include "runtime/key.h"
#include "support/pattern_block.h"

namespace kappa::detail {
namespace {

class ArenaTest : public ::testing::Test {
 protected:
  void SetUp() override { arena = Arena::create(unsigned(Arena::free_slot())); }
  void TearDown() override { Arena::destroy(arena); }
  Arena* arena = nullptr;
};

TEST(SizeClasses, EverySizeFitsItsClassAndClassesAreTight) {
  for (size_t n = 0; n <= kMaxSmall; ++n) {
    unsigned c = size_class_of(n);
    ASSERT_GE(class_size(c), n) << n;
    if (c > 0) {
      ASSERT_LT(class_size(c - 1), n) << n;
    }
  }
}

TEST_F(ArenaTest, SmallBlocksAreReusedAfterFree) {
  void* a = arena->allocate(100);
  void* b = arena->allocate(100);
  EXPECT_NE(a, b);
  EXPECT_TRUE(arena->contains(a));
  arena->deallocate(a);
  EXPECT_EQ(arena->allocate(100), a);
  EXPECT_EQ(arena->usable_size(b), 112u);
}

TEST_F(ArenaTest, FreedSpansCoalesceAndLowerTheHighWaterMark) {
  void* a = arena->allocate(1 << 20);
  void* b = arena->allocate(1 << 20);
  void* c = arena->allocate(1 << 20);
  size_t top = arena->stats().top_pages;
  arena->deallocate(a);
  arena->deallocate(b);
  EXPECT_EQ(arena->stats().free_span_pages, 512u);  // a and b merged
  void* d = arena->allocate(2 << 20);               // fits exactly in the merged span
  EXPECT_EQ(d, a);
  EXPECT_EQ(arena->stats().top_pages, top);
  arena->deallocate(c);
  arena->deallocate(d);
  EXPECT_EQ(arena->stats().top_pages, 0u);  // everything returned to the untouched region
  EXPECT_EQ(arena->stats().free_span_pages, 0u);
}

// A large block freed at the high-water mark and allocated again, over and
// over (a queue item decoded each round), stays mapped: the arena's budget of
// freed pages kept for reuse is not used up by pages that are reused.
TEST_F(ArenaTest, ReusedTopPagesAreNotReleasedToTheSystem) {
  constexpr size_t kBlock = 1 << 20;
  constexpr int kRounds = 200;  // 200 MiB through the arena: three times its budget
  auto faults = [] {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_minflt;
  };
  void* warm = arena->allocate(kBlock);
  std::memset(warm, 1, kBlock);
  arena->deallocate(warm);
  long before = faults();
  for (int i = 0; i < kRounds; ++i) {
    void* p = arena->allocate(kBlock);
    std::memset(p, i, kBlock);
    arena->deallocate(p);
  }
  long per_round = (faults() - before) / kRounds;
  EXPECT_LT(per_round, 8) << "a 1 MiB block was faulted in again about every round";
}

// A call's request is built on the heap (the worker takes it without a
// copy); the task's arena is current again afterwards, and a failure to
// build it reaches the task as a kappa::Error.
TEST_F(ArenaTest, RequestsAreBuiltOutsideTheArena) {
  ArenaScope scope(arena);
  std::string request = request_outside_arena([] { return encode(std::string(1 << 20, 'r')); });
  EXPECT_FALSE(arena->contains(request.data()));
  EXPECT_EQ(Arena::current(), arena);
  EXPECT_EQ(decode<std::string>(request), std::string(1 << 20, 'r'));
  try {
    request_outside_arena([]() -> std::string { throw std::runtime_error("cannot encode"); });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cannot encode");
  }
  EXPECT_EQ(Arena::current(), arena);
  void* p = std::malloc(64);
  EXPECT_TRUE(arena->contains(p));
  std::free(p);
}  // `request` goes back to the heap: frees are routed by address

TEST_F(ArenaTest, AlignedAllocationsAreAligned) {
  for (size_t align : {32, 64, 256, 4096, 8192, 1 << 16, 1 << 21}) {
    for (size_t size : {1, 100, 5000, 100000}) {
      void* p = arena->allocate_aligned(size, align);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align << " " << size;
      EXPECT_GE(arena->usable_size(p), size);
      std::memset(p, 0xab, size);
      arena->deallocate(p);
    }
  }
}

TEST_F(ArenaTest, ReallocGrowsInPlaceAtTheTop) {
  auto* p = static_cast<char*>(arena->allocate(100000));
  std::memset(p, 7, 100000);
  auto* q = static_cast<char*>(arena->reallocate(p, 10000000));
  EXPECT_EQ(p, q);
  EXPECT_EQ(q[99999], 7);
  auto* small = static_cast<char*>(arena->reallocate(q, 10));
  EXPECT_EQ(small[9], 7);
  arena->deallocate(small);
}

TEST_F(ArenaTest, EveryAllocationFunctionIsRoutedToTheCurrentArena) {
  std::vector<void*> c_blocks;
  std::string* s;
  {
    ArenaScope scope(arena);
    c_blocks.push_back(std::malloc(10));
    c_blocks.push_back(std::calloc(10, 10));
    c_blocks.push_back(strdup("hello"));
    c_blocks.push_back(std::realloc(nullptr, 50));
    c_blocks.push_back(std::realloc(std::malloc(10), 100000));
    c_blocks.push_back(std::aligned_alloc(64, 128));
    c_blocks.push_back(memalign(128, 10));
    c_blocks.push_back(valloc(10));
    void* pm = nullptr;
    ASSERT_EQ(posix_memalign(&pm, 256, 300), 0);
    c_blocks.push_back(pm);
    s = new std::string(1000, 'x');
    auto* aligned = new (std::align_val_t(512)) char[10];
    EXPECT_TRUE(arena->contains(aligned));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % 512, 0u);
    ::operator delete[](aligned, std::align_val_t(512));
  }
  for (void* p : c_blocks) EXPECT_TRUE(arena->contains(p)) << p;
  EXPECT_TRUE(arena->contains(s));
  EXPECT_TRUE(arena->contains(s->data()));
  EXPECT_EQ(static_cast<char*>(c_blocks[1])[99], 0);
  EXPECT_STREQ(static_cast<char*>(c_blocks[2]), "hello");
  EXPECT_GE(malloc_usable_size(c_blocks[0]), 10u);
  // Outside the scope: glibc allocates, and frees still route home by address.
  void* outside = std::malloc(10);
  EXPECT_FALSE(arena->contains(outside));
  std::free(outside);
  size_t free_before = arena->stats().free_span_pages;
  for (void* p : c_blocks) std::free(p);  // remote frees, drained by the arena
  delete s;
  arena->snapshot_extents();  // drains
  EXPECT_GE(arena->stats().free_span_pages, free_before);
}

TEST_F(ArenaTest, ThreadsStartedInATaskInheritItsArena) {
  std::vector<int>* filled = nullptr;
  {
    ArenaScope scope(arena);
    std::thread t([&] {
      filled = new std::vector<int>(1000, 5);
      EXPECT_EQ(arena->live_threads().load(), 1);
    });
    t.join();
  }
  EXPECT_TRUE(arena->contains(filled));
  EXPECT_TRUE(arena->contains(filled->data()));
  EXPECT_EQ(arena->live_threads().load(), 0);
  EXPECT_TRUE(arena->shared());
  delete filled;
}

TEST_F(ArenaTest, FreedLargeSpansAreLeftOutOfSnapshots) {
  void* keep = arena->allocate(4096 * 3);
  auto raw = [&] {
    size_t n = 0;
    for (const Extent& e : arena->snapshot_extents()) n += e.bytes;
    return n;
  };
  void* big = arena->allocate(64 << 20);
  void* after = arena->allocate(40000);  // keeps `big` from being at the top
  size_t with_big = raw();
  arena->deallocate(big);
  size_t without = raw();
  EXPECT_GE(with_big - without, size_t(64) << 20);
  EXPECT_LT(without, size_t(1) << 20);
  arena->deallocate(keep);
  arena->deallocate(after);
}

// Runs of small objects that were all freed go back to the page allocator
// at a pause point, and out of snapshots; runs holding a live object stay,
// with it intact; the free lists stay whole (everything allocates again, no
// object twice).
TEST_F(ArenaTest, EmptyRunsAreReleasedAndLeftOutOfSnapshots) {
  auto raw = [&] {
    size_t n = 0;
    for (const Extent& e : arena->snapshot_extents()) n += e.bytes;
    return n;
  };
  constexpr size_t kObjects = 40000;  // 64 bytes each: ~2.5 MiB of runs
  std::vector<uint64_t*> objects(kObjects);
  for (size_t i = 0; i < kObjects; ++i) {
    objects[i] = static_cast<uint64_t*>(arena->allocate(64));
    objects[i][0] = i;
  }
  // Every 2000th object stays: its run (256 objects) is kept.
  for (size_t i = 0; i < kObjects; ++i)
    if (i % 2000 != 0) arena->deallocate(objects[i]);
  size_t before = raw();
  size_t released = arena->release_empty_runs();
  size_t after = raw();
  EXPECT_GT(released, 500u) << "most of the ~620 pages of runs";
  EXPECT_LT(after, before / 4);
  for (size_t i = 0; i < kObjects; i += 2000) EXPECT_EQ(objects[i][0], i);
  EXPECT_EQ(arena->release_empty_runs(), 0u) << "nothing left to release";
  // Allocate everything again: distinct objects, none over a kept one.
  std::set<void*> seen;
  for (size_t i = 0; i < kObjects; i += 2000) seen.insert(objects[i]);
  for (size_t i = 0; i < kObjects; ++i) {
    if (i % 2000 == 0) continue;
    void* p = arena->allocate(64);
    ASSERT_TRUE(seen.insert(p).second) << "allocated twice: " << p;
    std::memset(p, 0xab, 64);
  }
  for (size_t i = 0; i < kObjects; i += 2000) EXPECT_EQ(objects[i][0], i);
  for (void* p : seen) arena->deallocate(p);
}

// Freed small objects that add up to little of the state are left alone:
// no walk of the free lists at every pause point.
TEST_F(ArenaTest, AFewFreedObjectsAreNotWorthAWalk) {
  void* big = arena->allocate(8 << 20);  // the state
  std::vector<void*> small;
  for (int i = 0; i < 1000; ++i) small.push_back(arena->allocate(64));  // 64 KB
  for (void* p : small) arena->deallocate(p);
  EXPECT_EQ(arena->release_empty_runs(), 0u);
  arena->deallocate(big);
}

// ---- stress: random sizes 1 B .. 64 MiB, random frees, content checks,
// snapshot, release, restore into a fresh mapping, check again, go on.

using Block = kappa::testing::PatternBlock;
constexpr size_t kStride = 61;
void fill(const Block& b) { b.fill(kStride); }

::testing::AssertionResult intact(const Block& b) {
  if (auto at = b.first_damage(kStride))
    return ::testing::AssertionFailure() << "block " << b.id << " damaged at byte " << *at;
  return ::testing::AssertionSuccess();
}

// Random allocations of 1 byte to 2^max_log2 bytes (at most 64 MiB), random
// frees, rounds of snapshot and restore with every block checked. With
// `drop`, every other round ends by freeing most of what it allocated (a
// batch parsed and dropped): runs emptied, released before the image.
// Adds the pages released to `*released`.
void stress(unsigned max_log2, bool drop, size_t* released) {
  std::string key = load_key();
  Arena* arena = Arena::create(unsigned(Arena::free_slot()));
  unsigned slot = arena->slot();
  std::mt19937_64 rng(12345);
  // The block table itself lives in the arena, like a task's own state.
  std::vector<Block>* live;
  {
    ArenaScope scope(arena);
    live = new std::vector<Block>();
    arena->task().root_frame = live;  // a root pointer that survives restore
  }
  uint64_t next_id = 1;
  size_t total = 0;
  for (int round = 0; round < 6; ++round) {
    {
      ArenaScope scope(arena);
      size_t round_start = live->size();
      for (int op = 0; op < 3000; ++op) {
        if (!live->empty() && rng() % 5 < 2) {
          size_t k = rng() % live->size();
          ASSERT_TRUE(intact((*live)[k]));
          total -= (*live)[k].size;
          std::free((*live)[k].p);
          (*live)[k] = live->back();
          live->pop_back();
          continue;
        }
        size_t size = size_t(1) << (rng() % max_log2);
        size = std::min(size + rng() % size, size_t(64) << 20);
        if (total + size > (size_t(768) << 20)) continue;
        auto* p = static_cast<unsigned char*>(rng() % 2 ? std::malloc(size) : ::operator new(size));
        ASSERT_NE(p, nullptr);
        Block b{next_id++, size, p};
        fill(b);
        live->push_back(b);
        total += size;
      }
      if (drop && round % 2 == 1) {  // a batch of small objects, most dropped below
        for (int i = 0; i < 20000; ++i) {
          size_t size = 16 + rng() % 240;
          Block b{next_id++, size, static_cast<unsigned char*>(std::malloc(size))};
          ASSERT_NE(b.p, nullptr);
          fill(b);
          live->push_back(b);
          total += size;
        }
      }
      for (size_t k = live->size(); drop && round % 2 == 1 && k-- > round_start;) {
        if ((*live)[k].id % 50 == 0) continue;  // a few survive
        EXPECT_TRUE(intact((*live)[k]));
        total -= (*live)[k].size;
        std::free((*live)[k].p);
        (*live)[k] = live->back();
        live->pop_back();
      }
    }
    *released += arena->release_empty_runs();  // as the worker does before each image
    ImageBuffer image;
    write_image(*arena, Codec::kLz4, key, image);
    Arena::destroy(arena);
    arena = restore_image(image.view(), key);
    ASSERT_EQ(arena->slot(), slot);
    live = static_cast<std::vector<Block>*>(arena->task().root_frame);
    for (const Block& b : *live) ASSERT_TRUE(intact(b));
  }
  EXPECT_GT(next_id, 5000u);
  Arena::destroy(arena);
}

TEST(ArenaStress, RandomAllocFreeSurvivesSnapshotAndRestore) {
  size_t released = 0;
  stress(27, false, &released);
}

// Small objects, batches of them dropped: empty runs are released before
// the images, and what lives on is intact.
TEST(ArenaStress, SmallObjectsSurviveReleasedRunsSnapshotAndRestore) {
  size_t released = 0;
  stress(12, true, &released);
  EXPECT_GT(released, 100u);
}

// Containers built and decoded inside an arena stay intact (a regression
// test: a large std::map decoded by cereal inside a task came out corrupt).
TEST_F(ArenaTest, LargeDecodedMapInsideTheArena) {
  std::map<std::string, uint64_t> source;
  for (int i = 0; i < 50000; ++i) source["word-" + std::to_string(i * 7919 % 100003)] = i;
  std::string bytes = encode(source);
  ArenaScope scope(arena);
  auto decoded = std::make_unique<std::map<std::string, uint64_t>>(
      decode<std::map<std::string, uint64_t>>(bytes));
  uint64_t n = 0;
  for (const auto& entry : *decoded) n += entry.second;
  uint64_t expected = 0;
  for (const auto& entry : source) expected += entry.second;
  EXPECT_EQ(n, expected);
  EXPECT_EQ(*decoded, source);
}

TEST_F(ArenaTest, GrowingVectorBesideALargeMap) {
  std::map<std::string, uint64_t> source;
  for (int i = 0; i < 11388; ++i) source["w" + std::to_string(i * 7919 % 100003)] = i;
  std::string bytes = encode(std::vector<std::map<std::string, uint64_t>>{source});
  ArenaScope scope(arena);
  auto tables = decode<std::vector<std::map<std::string, uint64_t>>>(bytes);
  std::vector<std::pair<std::string, uint64_t>> all;
  uint64_t total = 0;
  for (const auto& t : tables)
    for (const auto& e : t) {
      all.emplace_back(e.first, e.second);
      total += e.second;
    }
  EXPECT_EQ(all.size(), source.size());
  uint64_t expected = 0;
  for (const auto& e : source) expected += e.second;
  EXPECT_EQ(total, expected);
  EXPECT_EQ(tables[0], source);
}

}  // namespace
}  // namespace kappa::detail
