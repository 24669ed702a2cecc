// Checkpoint images are verified before anything is mapped: each kind of bad
// image is rejected with its own reason.
#include "runtime/checkpoint_image.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <tuple>

#include "runtime/dirty_pages.h"
#include "runtime/key.h"

namespace kappa::detail {
namespace {

// Offsets of header fields (format version 4), for tampering.
constexpr size_t kVersionOffset = 8;
constexpr size_t kBuildIdOffset = 24;
constexpr size_t kFingerprintOffset = 88;

class ImageTest : public ::testing::TestWithParam<Codec> {
 protected:
  void SetUp() override {
    key = load_key();
    Arena* arena = Arena::create(unsigned(Arena::free_slot()));
    {
      ArenaScope scope(arena);
      auto* v = new std::vector<std::string>(1000, "some state");
      arena->task().root_frame = v;
      std::memset(std::malloc(300000), 0x5a, 300000);
    }
    ImageBuffer buf;
    write_image(*arena, GetParam(), key, buf);
    image.assign(buf.view());
    slot = arena->slot();
    Arena::destroy(arena);
  }

  // Recomputes the header checksum and HMAC, as a forger holding the key could.
  // The layout is taken from the untampered image.
  void resign(std::string& img, const std::string& k) {
    ImageLayout l = image_layout(image);
    std::string covered = img.substr(0, l.payload_offset) +
                          img.substr(l.table_offset, l.checksum_offset - l.table_offset);
    uint64_t sum = XXH3_64bits(covered.data(), covered.size());
    std::memcpy(img.data() + l.checksum_offset, &sum, 8);
    covered += img.substr(l.checksum_offset, 8);
    unsigned len = 0;
    HMAC(EVP_sha256(), k.data(), int(k.size()), reinterpret_cast<unsigned char*>(covered.data()),
         covered.size(), reinterpret_cast<unsigned char*>(img.data() + l.checksum_offset + 8),
         &len);
  }

  void expect_rejected(const std::string& img, const std::string& reason,
                       const std::string& k = "") {
    try {
      Arena* a = restore_image(img, k.empty() ? key : k);
      Arena::destroy(a);
      FAIL() << "image accepted; expected rejection for: " << reason;
    } catch (const CheckpointRejected& e) {
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
    // Nothing stays mapped after a rejection.
    EXPECT_EQ(Arena::free_slot(), int(slot));
  }

  std::string key, image;
  unsigned slot = 0;
};

TEST_P(ImageTest, GoodImageRestores) {
  Arena* a = restore_image(image, key);
  auto* v = static_cast<std::vector<std::string>*>(a->task().root_frame);
  ASSERT_EQ(v->size(), 1000u);
  EXPECT_EQ((*v)[999], "some state");
  Arena::destroy(a);
}

TEST_P(ImageTest, FlippedByteIsCorruption) {
  ImageLayout l = image_layout(image);
  // In the header, in the segment table: the checksum.
  for (size_t at : {size_t(200), l.table_offset + 3}) {
    std::string bad = image;
    bad[at] ^= 0x10;
    expect_rejected(bad, "corrupted (checksum mismatch");
  }
  // In the payload: its segment's tag.
  std::string bad = image;
  bad[l.payload_offset + l.payload_bytes / 2] ^= 0x10;
  expect_rejected(bad, "payload segment 0 does not match its tag");
}

TEST_P(ImageTest, TruncatedImage) {
  for (size_t n : {size_t(4), size_t(100), image.size() / 2, image.size() - 1}) {
    expect_rejected(image.substr(0, n), n < 8 ? "bad magic" : "truncated");
  }
}

// Before an image is read whole, its header tells how large it can be:
// exactly when it is uncompressed, within the codec's bounds otherwise.
TEST_P(ImageTest, HeadCheckComparesTheSizeTheHeaderAnnounces) {
  std::string_view head = std::string_view(image).substr(0, image_header_bytes());
  EXPECT_NO_THROW(check_image_head(head, image.size()));
  EXPECT_NO_THROW(check_image_head(image, image.size()));  // more than the header is fine
  auto refusal = [&](std::string_view h, uint64_t size) -> std::string {
    try {
      check_image_head(h, size);
    } catch (const CheckpointRejected& e) {
      return e.what();
    }
    return "accepted";
  };
  if (verify_image(image, key).codec == Codec::kNone) {
    std::string expected = ", expected " + std::to_string(image.size());
    EXPECT_NE(refusal(head, image.size() - 1)
                  .find("truncated: " + std::to_string(image.size() - 1) + " bytes" + expected),
              std::string::npos);
    EXPECT_NE(
        refusal(head, uint64_t{1} << 40)
            .find("trailing garbage: " + std::to_string(uint64_t{1} << 40) + " bytes" + expected),
        std::string::npos);
  } else {
    EXPECT_NE(refusal(head, image_header_bytes() + 1).find("truncated: "), std::string::npos);
    EXPECT_NE(refusal(head, uint64_t{1} << 40)
                  .find("trailing garbage: " + std::to_string(uint64_t{1} << 40) +
                        " bytes, expected between "),
              std::string::npos);
  }
  EXPECT_NE(refusal(head.substr(0, 100), 100).find("the header alone needs"), std::string::npos);
  EXPECT_NE(refusal(std::string(512, '\0'), uint64_t{1} << 40).find("bad magic"),
            std::string::npos);
}

TEST_P(ImageTest, WrongKey) { expect_rejected(image, "HMAC mismatch", "another-key-0123456789"); }

TEST_P(ImageTest, ForgedPayloadWithFixedChecksums) {
  // A forger without the key changes the payload, puts a tag of its own
  // making in the segment table and fixes the checksum it can compute.
  ImageLayout l = image_layout(image);
  ASSERT_EQ(l.segment_count, 1u);
  std::string bad = image;
  bad[l.payload_offset + l.payload_bytes / 2] ^= 1;
  uint64_t guess = XXH3_64bits(bad.data() + l.payload_offset, l.payload_bytes);
  std::memcpy(bad.data() + l.table_offset, &guess, 8);
  std::string covered = bad.substr(0, l.payload_offset) +
                        bad.substr(l.table_offset, l.checksum_offset - l.table_offset);
  uint64_t sum = XXH3_64bits(covered.data(), covered.size());
  std::memcpy(bad.data() + l.checksum_offset, &sum, 8);
  expect_rejected(bad, "HMAC mismatch");
}

TEST_P(ImageTest, ForgedPayloadWithResignedHeader) {
  // Even re-signing the header (key holder) cannot fix the segment's
  // Poly1305 tag without deriving the one-time key: a payload swapped under
  // a valid header is caught by the tag.
  ImageLayout l = image_layout(image);
  std::string bad = image;
  bad[l.payload_offset + l.payload_bytes / 2] ^= 1;
  uint64_t guess = XXH3_64bits(bad.data() + l.payload_offset, l.payload_bytes);
  std::memcpy(bad.data() + l.table_offset, &guess, 8);
  resign(bad, key);
  expect_rejected(bad, "payload segment 0 does not match its tag");
}

TEST_P(ImageTest, WrongFormatVersion) {
  std::string bad = image;
  bad[kVersionOffset] = 9;
  resign(bad, key);
  expect_rejected(bad, "unsupported format version 9");
}

TEST_P(ImageTest, WrongBinary) {
  std::string bad = image;
  bad[kBuildIdOffset] = bad[kBuildIdOffset] == 'f' ? '0' : 'f';
  resign(bad, key);
  expect_rejected(bad, "written by another binary");
}

TEST_P(ImageTest, WrongAddressLayout) {
  std::string bad = image;
  bad[kFingerprintOffset] ^= 1;
  resign(bad, key);
  expect_rejected(bad, "another address layout");
}

TEST_P(ImageTest, NotACheckpoint) { expect_rejected("hello world, not an image", "bad magic"); }

// A state that does not compress is stored as it is, whatever the codec asked
// for; one that does keeps the codec. Either way it restores.
TEST(ImageCodec, IncompressibleStateIsStoredUncompressed) {
  std::string key = load_key();
  for (bool random : {true, false}) {
    Arena* arena = Arena::create(unsigned(Arena::free_slot()));
    constexpr size_t kBytes = 1 << 20;
    uint64_t x = 0x9E3779B97F4A7C15u;
    {
      ArenaScope scope(arena);
      auto* bytes = static_cast<unsigned char*>(std::malloc(kBytes));
      for (size_t i = 0; i < kBytes; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bytes[i] = random ? static_cast<unsigned char>(x) : static_cast<unsigned char>(i / 4096);
      }
      arena->task().root_frame = bytes;
    }
    ImageBuffer buf;
    write_image(*arena, Codec::kZstd, key, buf);
    Arena::destroy(arena);
    ImageInfo info = verify_image(buf.view(), key);
    EXPECT_EQ(info.codec, random ? Codec::kNone : Codec::kZstd) << "random: " << random;
    Arena* back = restore_image(buf.view(), key);
    auto* bytes = static_cast<unsigned char*>(back->task().root_frame);
    x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < kBytes; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      unsigned char want =
          random ? static_cast<unsigned char>(x) : static_cast<unsigned char>(i / 4096);
      ASSERT_EQ(bytes[i], want) << "byte " << i;
    }
    Arena::destroy(back);
  }
}

// A small state's image is not compressed: it travels inline, and
// compressing it would cost more time than its size does.
TEST(ImageCodec, SmallStateIsStoredUncompressed) {
  std::string key = load_key();
  Arena* arena = Arena::create(unsigned(Arena::free_slot()));
  {
    ArenaScope scope(arena);
    arena->task().root_frame = new std::string(1000, 'a');
  }
  ImageBuffer buf;
  write_image(*arena, Codec::kZstd, key, buf);
  Arena::destroy(arena);
  EXPECT_EQ(verify_image(buf.view(), key).codec, Codec::kNone);
  EXPECT_LT(buf.size(), 8192u);
  Arena* back = restore_image(buf.view(), key);
  EXPECT_EQ(*static_cast<std::string*>(back->task().root_frame), std::string(1000, 'a'));
  Arena::destroy(back);
}

// An uncompressed payload is verified while it is copied into place, so a
// corrupted one is rejected after its bytes, the arena header's included, have
// landed in the slot. The slot is then released without reading any of them:
// it is unmapped whatever the garbage says. (Arena::destroy used to decide
// from the garbage header: one that looked like a small arena kept the slot
// mapped, marked for reuse.)
TEST(ImageRestore, RejectionDoesNotTrustTheRestoredArenaHeader) {
  std::string key = load_key();
  unsigned slot = unsigned(Arena::free_slot());
  Arena* arena = Arena::create(slot);
  {
    ArenaScope scope(arena);
    arena->task().root_frame = new std::string(1000, 'a');
  }
  ImageBuffer buf;
  write_image(*arena, Codec::kNone, key, buf);
  Arena::destroy(arena, Arena::Release::kUnmap);
  ImageInfo info = verify_image(buf.view(), key);
  ASSERT_EQ(info.codec, Codec::kNone);
  ASSERT_EQ(info.extents[0].offset, 0u);  // the payload starts with the arena header
  ImageLayout l = image_layout(buf.view());
  for (unsigned char fill : {0x00, 0xff}) {
    std::string bad(buf.view());
    std::memset(bad.data() + l.payload_offset, fill, sizeof(Arena));
    try {
      Arena::destroy(restore_image(bad, key));
      FAIL() << "corrupted image accepted";
    } catch (const CheckpointRejected& e) {
      EXPECT_NE(std::string(e.what()).find("payload segment 0 does not match its tag"),
                std::string::npos)
          << e.what();
    }
    unsigned char resident = 0;
    errno = 0;
    EXPECT_EQ(mincore(reinterpret_cast<void*>(info.arena_base), kPageBytes, &resident), -1)
        << "the slot is still mapped after a rejected restore (header filled with " << int(fill)
        << ")";
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_EQ(Arena::free_slot(), int(slot));
  }
}

// Takes an image in pieces, as a store's writer does.
class PieceSink final : public ByteSink {
 public:
  void write(std::string_view piece) override {
    bytes.append(piece);
    ++writes;
    largest = std::max(largest, piece.size());
  }
  std::string bytes;
  size_t writes = 0, largest = 0;
};

// Lends no bytes in place (as a store's reader), and counts its reads.
class CopyingSource final : public ByteSource {
 public:
  explicit CopyingSource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, char* dst, size_t n) override {
    ASSERT_LE(offset + n, bytes_.size());
    std::memcpy(dst, bytes_.data() + offset, n);
    ++reads;
  }
  size_t reads = 0;

 private:
  std::string_view bytes_;
};

// ---- chains: a full image and deltas of it ----

// A state of 4 MiB of pseudo-random words and a small map, imaged in full,
// then changed and imaged as deltas (dirty pages from either method).
class ChainTest : public ::testing::TestWithParam<std::tuple<Codec, DirtyMethod>> {
 protected:
  static constexpr size_t kWords = (4 << 20) / 8;
  struct State {
    uint64_t* words;
    std::map<int, std::string>* map;
  };

  void SetUp() override {
    auto [codec, method] = GetParam();
    if (method == DirtyMethod::kWriteProtect && pick_dirty_method() != method)
      GTEST_SKIP() << "userfaultfd write protection with PAGEMAP_SCAN (Linux 6.7) unavailable";
    key = load_key();
    arena = Arena::create(unsigned(Arena::free_slot()));
    slot = arena->slot();
    {
      ArenaScope scope(arena);
      auto* s = new State{static_cast<uint64_t*>(std::malloc(kWords * 8)),
                          new std::map<int, std::string>};
      uint64_t x = 88172645463325252u;
      for (size_t i = 0; i < kWords; ++i) s->words[i] = x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      arena->task().root_frame = s;
    }
    tracker = DirtyPages::create(*arena, method);
    images.push_back(image(nullptr));
  }
  void TearDown() override {
    tracker.reset();
    if (arena) Arena::destroy(arena, Arena::Release::kUnmap);
  }
  State& state() { return *static_cast<State*>(arena->task().root_frame); }

  // The next image of the chain (a full one without a parent).
  std::string image(const ImageLink* parent) {
    ImageBuffer buf;
    std::vector<Extent> extents = arena->snapshot_extents();
    std::vector<Extent> changed = tracker->collect(extents);
    if (parent) {
      Delta d{*parent, changed};
      last = write_image(*arena, std::get<0>(GetParam()), key, buf, &d);
    } else {
      last = write_image(*arena, std::get<0>(GetParam()), key, buf);
    }
    return std::string(buf.view());
  }
  // Changes a few words and the map, then takes a delta.
  void change(int round) {
    {
      ArenaScope scope(arena);
      for (size_t i = 0; i < 10; ++i) state().words[(i * 7919 + round * 104729) % kWords] = round;
      (*state().map)[round] = std::string(100 * (round + 1), char('a' + round));
    }
    images.push_back(image(&last));
  }
  std::vector<uint64_t> words() { return {state().words, state().words + kWords}; }

  Arena* restore(std::initializer_list<size_t> which) {
    std::vector<std::string_view> chain;
    for (size_t i : which) chain.push_back(images[i]);
    return restore_chain(chain, key);
  }
  void expect_rejected(std::initializer_list<size_t> which, const std::string& reason) {
    try {
      Arena::destroy(restore(which));
      FAIL() << "chain accepted; expected rejection for: " << reason;
    } catch (const CheckpointRejected& e) {
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
  }

  std::string key;
  Arena* arena = nullptr;
  unsigned slot = 0;
  std::unique_ptr<DirtyPages> tracker;
  std::vector<std::string> images;
  ImageLink last;
};

TEST_P(ChainTest, EachPrefixRestoresItsState) {
  std::vector<std::vector<uint64_t>> words_at = {words()};
  std::vector<std::map<int, std::string>> map_at = {*state().map};
  for (int round = 1; round <= 3; ++round) {
    change(round);
    words_at.push_back(words());
    map_at.push_back(*state().map);
  }
  // Deltas are small: a few pages against 4 MiB.
  for (size_t i = 1; i < images.size(); ++i) {
    EXPECT_LT(images[i].size(), images[0].size() / 20) << "delta " << i;
    EXPECT_EQ(verify_image(images[i], key).chain_depth, i);
  }
  Arena::destroy(arena, Arena::Release::kUnmap);
  arena = nullptr;
  tracker.reset();
  for (size_t n = 1; n <= images.size(); ++n) {
    std::vector<std::string_view> chain(images.begin(), images.begin() + long(n));
    // From memory, and by ranges as from a store (a delta's scattered
    // pages read in runs).
    std::vector<CopyingSource> sources(chain.begin(), chain.end());
    std::vector<ByteSource*> links;
    for (CopyingSource& src : sources) links.push_back(&src);
    for (bool by_ranges : {false, true}) {
      Arena* back = by_ranges ? restore_chain(std::span<ByteSource* const>(links), key)
                              : restore_chain(chain, key);
      auto* s = static_cast<State*>(back->task().root_frame);
      EXPECT_TRUE(std::equal(s->words, s->words + kWords, words_at[n - 1].begin()))
          << n << " links, by ranges: " << by_ranges;
      EXPECT_EQ(*s->map, map_at[n - 1]) << n << " links, by ranges: " << by_ranges;
      Arena::destroy(back, Arena::Release::kUnmap);
    }
    for (const CopyingSource& src : sources) EXPECT_LT(src.reads, 12u) << n << " links";
  }
}

TEST_P(ChainTest, MissingReorderedOrForeignLinksAreRefused) {
  change(1);
  change(2);
  // Another chain of the same task: a full image taken now, and a delta of it.
  images.push_back(image(nullptr));  // 3: full
  change(3);                         // 4: delta of 3
  Arena::destroy(arena, Arena::Release::kUnmap);
  arena = nullptr;
  tracker.reset();
  expect_rejected({0, 2}, "link 1 of the chain is not a delta of link 0");
  expect_rejected({0, 2, 1}, "is not a delta of link");
  expect_rejected({0, 1, 4}, "link 2 of the chain is not a delta of link 1");
  expect_rejected({0, 4}, "from another chain");
  expect_rejected({1, 2}, "starts with a delta");
  expect_rejected({0, 3}, "link 1 of the chain is a full image");
  EXPECT_EQ(Arena::free_slot(), int(slot)) << "nothing stays mapped after a refusal";
  // A tampered delta is refused like a tampered full image.
  std::string bad = images[1];
  bad[image_layout(bad).payload_offset] ^= 1;
  images[1] = bad;
  expect_rejected({0, 1, 2}, "payload segment 0");
  EXPECT_EQ(Arena::free_slot(), int(slot));
  // The good chains still restore.
  Arena::destroy(restore({3, 4}), Arena::Release::kUnmap);
}

INSTANTIATE_TEST_SUITE_P(CodecsAndMethods, ChainTest,
                         ::testing::Combine(::testing::Values(Codec::kNone, Codec::kZstd),
                                            ::testing::Values(DirtyMethod::kWriteProtect,
                                                              DirtyMethod::kHash)),
                         [](const auto& info) {
                           return std::string(codec_name(std::get<0>(info.param))) + "_" +
                                  (std::get<1>(info.param) == DirtyMethod::kHash ? "hash" : "wp");
                         });

INSTANTIATE_TEST_SUITE_P(Codecs, ImageTest,
                         ::testing::Values(Codec::kNone, Codec::kLz4, Codec::kZstd),
                         [](const auto& info) { return std::string(codec_name(info.param)); });

// ---- streamed images: written in pieces, read by ranges ----

// A 40 MiB state over ten segments, half random and half compressible, with
// a map, written streamed and restored by ranges with each codec.
class StreamedImage : public ::testing::TestWithParam<Codec> {
 protected:
  static constexpr size_t kBytes = 40 << 20;
  struct State {
    unsigned char* bytes;
    std::map<int, std::string>* map;
  };
  static unsigned char byte_at(size_t i) {
    if (i >= kBytes / 2) return static_cast<unsigned char>(i / 4096);
    uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15u;
    x ^= x >> 29, x *= 0xBF58476D1CE4E5B9u, x ^= x >> 32;
    return static_cast<unsigned char>(x >> (8 * (i % 8)));
  }
  void SetUp() override {
    key = load_key();
    Arena* arena = Arena::create(unsigned(Arena::free_slot()));
    slot = arena->slot();
    {
      ArenaScope scope(arena);
      auto* s = new State{static_cast<unsigned char*>(std::malloc(kBytes)),
                          new std::map<int, std::string>};
      for (size_t i = 0; i < kBytes; ++i) s->bytes[i] = byte_at(i);
      for (int k = 0; k < 100; ++k) (*s->map)[k] = std::string(size_t(k) * 10, char('a' + k % 26));
      arena->task().root_frame = s;
    }
    write_image(*arena, GetParam(), key, sink);
    Arena::destroy(arena, Arena::Release::kUnmap);
  }
  void expect_state(Arena* a) {
    auto* s = static_cast<State*>(a->task().root_frame);
    for (size_t i = 0; i < kBytes; i += 997) ASSERT_EQ(s->bytes[i], byte_at(i)) << "byte " << i;
    EXPECT_EQ(s->bytes[kBytes - 1], byte_at(kBytes - 1));
    ASSERT_EQ(s->map->size(), 100u);
    EXPECT_EQ(s->map->at(99), std::string(990, 'a' + 99 % 26));
  }

  std::string key;
  unsigned slot = 0;
  PieceSink sink;
};

TEST_P(StreamedImage, RestoresByRanges) {
  ASSERT_GT(sink.writes, 2u) << "written in pieces";
  // A store's writer may copy each piece (a Redis command is built whole).
  EXPECT_LE(sink.largest, size_t{4} << 20);
  CopyingSource src(sink.bytes);
  ImageInfo info = verify_image(src, key);
  EXPECT_EQ(info.raw_bytes > kBytes, true);
  // A compressible half: the codec is kept (none stays none).
  EXPECT_EQ(info.codec, GetParam());
  src.reads = 0;
  ByteSource* links[] = {&src};
  Arena* back = restore_chain(links, key);
  expect_state(back);
  Arena::destroy(back, Arena::Release::kUnmap);
  // Large ranges: header, extent table, footer and table, then a few reads
  // per 32 MiB of payload (or one per 4 MiB segment, compressed).
  EXPECT_LT(src.reads, 30u);
  // The same bytes restore from memory too.
  back = restore_image(sink.bytes, key);
  expect_state(back);
  Arena::destroy(back, Arena::Release::kUnmap);
}

TEST_P(StreamedImage, RejectsATamperedSegmentAndReleasesTheSlot) {
  ImageLayout l = image_layout(sink.bytes);
  ASSERT_GE(l.segment_count, 2u);
  std::string bad = sink.bytes;
  size_t segment = l.segment_count - 1;
  bad[l.payload_offset + segment * l.segment_bytes + 5] ^= 1;
  CopyingSource src(bad);
  ByteSource* links[] = {&src};
  try {
    Arena::destroy(restore_chain(links, key));
    FAIL() << "tampered image accepted";
  } catch (const CheckpointRejected& e) {
    EXPECT_NE(std::string(e.what()).find("payload segment " + std::to_string(segment)),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(Arena::free_slot(), int(slot)) << "nothing stays mapped after a rejection";
  // Cut short anywhere: refused before anything is mapped.
  for (size_t n : {size_t(300), l.payload_offset + l.payload_bytes / 2, sink.bytes.size() - 1}) {
    CopyingSource cut(std::string_view(sink.bytes).substr(0, n));
    ByteSource* cut_links[] = {&cut};
    try {
      Arena::destroy(restore_chain(cut_links, key));
      FAIL() << "an image cut to " << n << " bytes accepted";
    } catch (const CheckpointRejected& e) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
    EXPECT_EQ(Arena::free_slot(), int(slot));
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, StreamedImage,
                         ::testing::Values(Codec::kNone, Codec::kLz4, Codec::kZstd),
                         [](const auto& info) { return std::string(codec_name(info.param)); });

}  // namespace
}  // namespace kappa::detail
