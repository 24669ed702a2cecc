// The worker's image chain policy (worker/image_chain.h): inline images for
// small states; for large ones a full image, deltas (inline while they are
// small, on top of the stored links), a cumulative delta at
// kMaxLinks, a new full image once half the state changed, and no tracking
// while a task rewrites most of its state. Every reported chain, read back
// from the "store", restores the state as it was.
#include "worker/image_chain.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "protocol/image_chain.h"
#include "runtime/key.h"

namespace kappa::detail {
namespace {

class ImageChainTest : public ::testing::Test {
 protected:
  static constexpr size_t kWords = (4 << 20) / 8;  // 4 MiB

  void SetUp() override {
    key = load_key();
    arena = Arena::create(unsigned(Arena::free_slot()));
    ArenaScope in(arena);
    words = static_cast<uint64_t*>(std::malloc(kWords * 8));
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < kWords; ++i) words[i] = x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    arena->task().root_frame = words;
  }
  void TearDown() override {
    chain.end();
    if (arena) Arena::destroy(arena, Arena::Release::kUnmap);
  }

  // Captures the next image as the worker does and keeps it in the "store".
  // With `resume`, then checks that the reported chain restores exactly the
  // current words, and goes on from the restored arena as a worker resumed
  // from that chain would (a fresh tracker, the chain as reported).
  ImageChain::Captured capture(bool resume = true) {
    ImageBuffer buf;
    std::string link = "seq-" + std::to_string(++seq);
    ImageChain::Captured c = chain.capture(*arena, buf, link);
    if (!c.store_key.empty()) store[c.store_key] = std::string(buf.view());
    if (!resume) return c;
    std::vector<std::string> images;
    for (const std::string& k : split_image_chain(c.chain)) images.push_back(store.at(k));
    bool inline_top = !c.chain.empty() && c.store_key.empty();  // a delta on top of the chain
    if (c.store_key.empty()) images.push_back(std::string(buf.view()));
    std::vector<std::string_view> views(images.begin(), images.end());
    std::vector<uint64_t> now(words, words + kWords);
    chain.end();
    Arena::destroy(arena, Arena::Release::kUnmap);
    ChainInfo info;
    arena = restore_chain(views, key, &info);
    EXPECT_EQ(static_cast<uint64_t*>(arena->task().root_frame), words);
    EXPECT_TRUE(std::equal(now.begin(), now.end(), words)) << "after " << link;
    if (c.chain.empty())
      chain.begin();
    else
      chain.begin(*arena, split_image_chain(c.chain), info, inline_top);
    return c;
  }
  // Rewrites the first word of page `page` of the words.
  void touch_page(size_t page, uint64_t v) { words[page * (kPageBytes / 8)] = v; }
  void touch(size_t n_words, uint64_t v) {
    for (size_t i = 0; i < n_words; ++i) words[(i * 4099) % kWords] = v + i;
  }

  std::string key;
  Arena* arena = nullptr;
  uint64_t* words = nullptr;
  ImageChain chain{Codec::kNone, load_key(), true};
  std::map<std::string, std::string> store;
  int seq = 0;
};

TEST_F(ImageChainTest, SmallStatesTravelInline) {
  {
    ArenaScope in(arena);
    std::free(words);
    words = static_cast<uint64_t*>(std::malloc(1024));
    std::memset(words, 1, 1024);
    arena->task().root_frame = words;
  }
  ImageBuffer buf;
  ImageChain::Captured c = chain.capture(*arena, buf, "k");
  EXPECT_TRUE(c.full);
  EXPECT_EQ(c.store_key, "");
  EXPECT_EQ(c.chain, "");
  EXPECT_LE(buf.size(), kInlineImageBytes);
}

TEST_F(ImageChainTest, DeltasThenACumulativeDeltaThenAFullImage) {
  ImageChain::Captured c = capture();
  EXPECT_TRUE(c.full);
  EXPECT_EQ(c.chain, "seq-1");
  for (size_t n = 2; n <= ImageChain::kMaxLinks; ++n) {
    touch(50, n);
    c = capture();
    EXPECT_FALSE(c.full);
    EXPECT_LT(store.at(c.store_key).size(), 300u << 10) << "a delta of 50 pages";
    EXPECT_EQ(split_image_chain(c.chain).size(), n);
  }
  touch(50, 100);
  c = capture();  // at kMaxLinks: [full, everything since]
  EXPECT_FALSE(c.full);
  EXPECT_EQ(c.chain, "seq-1\n" + c.store_key);
  touch(50, 200);
  c = capture();
  EXPECT_EQ(split_image_chain(c.chain).size(), 3u);
  // Half the state changed since the full image: a new one.
  touch(kWords / 1024 * 600, 300);  // 60% of the pages
  c = capture();
  EXPECT_TRUE(c.full);
  EXPECT_EQ(c.chain, c.store_key);
  touch(10, 400);
  EXPECT_FALSE(capture().full);
}

// Small deltas travel inline on top of the stored chain, each carrying every
// page changed since its last stored link, until they no longer fit: that
// one is stored and becomes a link, and the next inline delta starts afresh.
// Every capture restores (from the stored links and the inline delta) and
// goes on from the restored arena.
TEST_F(ImageChainTest, SmallDeltasTravelInlineOnTopOfTheStoredLinks) {
  ImageChain::Captured c = capture();
  ASSERT_TRUE(c.full);
  ASSERT_EQ(c.chain, "seq-1");
  size_t page = 3, inline_in_a_row = 0;
  for (;; ++page) {
    touch_page(page, page);
    c = capture();
    ASSERT_FALSE(c.full);
    if (!c.store_key.empty()) break;
    ++inline_in_a_row;
    EXPECT_EQ(c.chain, "seq-1") << "an inline delta is no link of the chain";
    EXPECT_LE(c.image_bytes, kInlineImageBytes);
    EXPECT_GE(c.raw_bytes, inline_in_a_row * kPageBytes) << "every page since the stored link";
    ASSERT_LT(inline_in_a_row, 64u) << "the pages since the stored link never outgrew inline";
  }
  // 16 pages fill 64 KiB: the delta that outgrew it went to the store.
  EXPECT_GE(inline_in_a_row, kInlineImageBytes / kPageBytes - 2);
  EXPECT_GT(c.image_bytes, kInlineImageBytes);
  EXPECT_EQ(c.chain, "seq-1\n" + c.store_key);
  touch_page(page + 1, 1);
  c = capture();
  EXPECT_EQ(c.store_key, "");
  EXPECT_EQ(split_image_chain(c.chain).size(), 2u);
  EXPECT_LE(c.raw_bytes, 2 * kPageBytes) << "only what changed since the new link";
}

// A large state that compresses to less than fits inline: its full image is
// stored once all the same, and the captures after it carry only the pages
// that changed, inline, rather than the whole state compressed again.
TEST_F(ImageChainTest, ALargeStateThatCompressesSmallIsStoredOnceThenSendsItsChanges) {
  std::memset(words, 7, kWords * 8);  // 4 MiB of one byte
  ImageChain zstd(Codec::kZstd, key, true);
  ImageBuffer buf;
  ImageChain::Captured c = zstd.capture(*arena, buf, "z1");
  EXPECT_TRUE(c.full);
  EXPECT_LE(c.image_bytes, kInlineImageBytes) << "it compresses small";
  EXPECT_EQ(c.store_key, "z1") << "and is stored all the same";
  EXPECT_EQ(c.chain, "z1");
  for (int i = 2; i <= 4; ++i) {
    touch_page(size_t(i) * 10, uint64_t(i));
    c = zstd.capture(*arena, buf, "z" + std::to_string(i));
    EXPECT_FALSE(c.full);
    EXPECT_EQ(c.store_key, "") << "a delta of a few pages, inline";
    EXPECT_EQ(c.chain, "z1");
    EXPECT_LE(c.raw_bytes, size_t(i) * kPageBytes) << "the pages changed since z1";
  }
  zstd.end();
  // Without tracking (--no-incremental), the same state travels inline whole.
  ImageChain whole(Codec::kZstd, key, false);
  c = whole.capture(*arena, buf, "w1");
  EXPECT_TRUE(c.full);
  EXPECT_EQ(c.store_key, "");
  EXPECT_EQ(c.chain, "");
}

TEST_F(ImageChainTest, ATaskThatRewritesItsStateStopsTrackingForAWhile) {
  capture(false);
  int full_in_a_row = 0;
  for (int i = 0; i < ImageChain::kGiveUpAfter; ++i) {
    touch(kWords, 1000 + i);  // every word
    full_in_a_row += capture(false).full;
  }
  EXPECT_EQ(full_in_a_row, ImageChain::kGiveUpAfter);
  // Small changes now, but no tracking: full images until the retry.
  int full_after = 0;
  for (int i = 0; i < ImageChain::kRetryAfter + 2; ++i) {
    touch(10, 2000 + i);
    full_after += capture(false).full;
  }
  EXPECT_GE(full_after, ImageChain::kRetryAfter - 1);
  EXPECT_LE(full_after, ImageChain::kRetryAfter + 1);
  touch(10, 3000);
  EXPECT_FALSE(capture().full) << "tracking again after the retry (and the chain restores)";
}

// Given what tracking costs, the task moves to the cheaper way after
// kSwitchAfter deltas, and back when the costs turn.
TEST_F(ImageChainTest, TracksPagesTheCheaperWay) {
  if (dirty_method_forced() || pick_dirty_method() != DirtyMethod::kWriteProtect)
    GTEST_SKIP() << "write protection unavailable, or KAPPA_DIRTY_PAGES set: nothing to choose";
  // Faults dear, hashing cheap: 50 pages written of 1024 cost more than
  // hashing all of them.
  DirtyCosts dear_faults{
      .fault_us_per_page = 100, .reprotect_us_per_page = 0, .hash_us_per_mib = 1};
  ImageChain dear(Codec::kNone, key, true, dear_faults);
  ImageBuffer buf;
  dear.capture(*arena, buf, "a");
  EXPECT_EQ(dear.method(), DirtyMethod::kWriteProtect);
  for (int i = 1; i <= ImageChain::kSwitchAfter; ++i) {
    EXPECT_EQ(dear.method(), DirtyMethod::kWriteProtect) << "after " << i - 1 << " deltas";
    touch(50, 10 * i);
    EXPECT_FALSE(dear.capture(*arena, buf, "a" + std::to_string(i)).full);
  }
  EXPECT_EQ(dear.method(), DirtyMethod::kHash);
  dear.end();
  // Faults cheap, hashing dear: write protection stays.
  DirtyCosts cheap_faults{
      .fault_us_per_page = 0.1, .reprotect_us_per_page = 0.1, .hash_us_per_mib = 1000};
  ImageChain cheap(Codec::kNone, key, true, cheap_faults);
  cheap.capture(*arena, buf, "b");
  for (int i = 1; i <= ImageChain::kSwitchAfter + 1; ++i) {
    touch(50, 100 * i);
    cheap.capture(*arena, buf, "b" + std::to_string(i));
  }
  EXPECT_EQ(cheap.method(), DirtyMethod::kWriteProtect);
}

}  // namespace
}  // namespace kappa::detail
