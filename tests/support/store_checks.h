// Checks every CheckpointStore must pass, whatever it stores in: each
// store's tests run them on a store of their own.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"

namespace kappa::testing {

/// While it lives, a write past `bytes` into any file fails with EFBIG
/// (SIGXFSZ ignored), root or not: a disk that refuses more, without a mount.
class ScopedFileSizeLimit {
 public:
  explicit ScopedFileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved_;
    small.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~ScopedFileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }
  ScopedFileSizeLimit(const ScopedFileSizeLimit&) = delete;
  ScopedFileSizeLimit& operator=(const ScopedFileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

/// The message of the kappa::Error that `f` throws ("" if it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// put, get, list, replace, remove: on an empty store, leaving "ckpt-2",
/// "job/ckpt-3" and "other" in it.
inline void expect_basic_semantics(detail::CheckpointStore& store) {
  using Keys = std::vector<std::string>;
  EXPECT_EQ(store.get("ckpt-1"), std::nullopt);
  store.put("ckpt-2", "two");
  store.put("ckpt-1", "one");
  store.put("other", "x");
  store.put("job/ckpt-3", std::string(100000, 'c'));  // keys may name folders
  EXPECT_EQ(store.get("ckpt-1"), "one");
  EXPECT_EQ(store.get("job/ckpt-3"), std::string(100000, 'c'));
  EXPECT_EQ(store.list("ckpt-"), (Keys{"ckpt-1", "ckpt-2"}));
  EXPECT_EQ(store.list("job/"), (Keys{"job/ckpt-3"}));
  EXPECT_EQ(store.list(""), (Keys{"ckpt-1", "ckpt-2", "job/ckpt-3", "other"}));
  store.put("ckpt-1", "replaced");
  EXPECT_EQ(store.get("ckpt-1"), "replaced");
  store.put("empty", "");
  EXPECT_EQ(store.get("empty"), "");  // an empty value is not a missing one
  store.remove("empty");
  store.remove("ckpt-1");
  store.remove("ckpt-1");  // absent: not an error
  EXPECT_EQ(store.get("ckpt-1"), std::nullopt);
  EXPECT_EQ(store.list("ckpt-"), (Keys{"ckpt-2"}));
}

/// get_checked of `key`, which holds `value`, returns it whole and shows the
/// check its first `head_bytes` bytes and its whole size.
inline void expect_get_checked_shows_the_head(detail::CheckpointStore& store,
                                              const std::string& key, const std::string& value,
                                              size_t head_bytes) {
  std::string head;
  uint64_t size = 0;
  auto note = [&](std::string_view h, uint64_t s) {
    head = h;
    size = s;
  };
  EXPECT_EQ(store.get_checked(key, head_bytes, note), value);
  EXPECT_EQ(head, value.substr(0, head_bytes));
  EXPECT_EQ(size, value.size());
}

/// move(): replaces the target with the source's value, removes the source,
/// is idempotent once done, and is an error when neither key exists.
inline void expect_move_semantics(detail::CheckpointStore& store) {
  store.put("move/from", "staged bytes");
  store.put("move/to", "an older value");
  store.move("move/from", "move/to");
  EXPECT_EQ(store.get("move/to"), "staged bytes");
  EXPECT_EQ(store.get("move/from"), std::nullopt);
  store.move("move/from", "move/to");  // done already: nothing to do
  EXPECT_EQ(store.get("move/to"), "staged bytes");
  store.put("move/new", std::string(200000, 'n'));
  store.move("move/new", "move/fresh/key");  // to a key that did not exist
  EXPECT_EQ(store.get("move/fresh/key"), std::string(200000, 'n'));
  std::string error;
  try {
    store.move("move/absent", "move/also-absent");
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("neither exists"), std::string::npos) << error;
  store.remove_prefix("move/");
}

/// Bytes that show where a value was cut or shifted: each 8-byte word holds
/// its offset (`offset` + its place here, `offset` a multiple of 8), mixed
/// with `seed`.
inline std::string offset_pattern(size_t size, uint64_t seed = 1, uint64_t offset = 0) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t word = ((offset + i) / 8) * 0x9E3779B97F4A7C15ull ^ seed;
    std::memcpy(s.data() + i, &word, std::min<size_t>(8, size - i));
  }
  return s;
}

/// The growth of this process's peak resident memory from its construction
/// (which resets the peak, VmHWM, to the current size) to a call of bytes().
class PeakMemoryGrowth {
 public:
  PeakMemoryGrowth() {
    std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := VmRSS
    start_ = field("VmRSS:");
    EXPECT_LT(field("VmHWM:"), start_ + (1 << 20)) << "the peak was not reset";
  }
  uint64_t bytes() const { return field("VmHWM:") - start_; }

 private:
  static uint64_t field(const std::string& name) {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind(name, 0) == 0) return std::stoull(line.substr(name.size())) << 10;  // kB
    ADD_FAILURE() << name << " not in /proc/self/status";
    return 0;
  }
  uint64_t start_ = 0;
};

/// Whether `a` == `b`, without printing megabytes when they differ.
inline ::testing::AssertionResult same_bytes(const std::string& a, const std::string& b) {
  if (a == b) return ::testing::AssertionSuccess();
  size_t at = 0;
  while (at < a.size() && at < b.size() && a[at] == b[at]) ++at;
  return ::testing::AssertionFailure()
         << "sizes " << a.size() << " and " << b.size() << ", first difference at byte " << at;
}

/// put_stream and open_value, on a store with no key under "stream/": a
/// value written in pieces of the sizes `pieces` reads back whole through
/// get() and through ranges of open_value(); nothing of it is visible before
/// commit(); a writer destroyed uncommitted changes nothing (after which
/// `expect_no_debris` runs, if given: the store's own check that nothing it
/// wrote stayed behind); of two writers of one key, the last to commit
/// wins; reads outside a value throw. Leaves "stream/k" and "stream/empty".
inline void expect_stream_semantics(detail::CheckpointStore& store,
                                    const std::vector<size_t>& pieces,
                                    const std::function<void()>& expect_no_debris = {}) {
  using Keys = std::vector<std::string>;
  const size_t total = std::accumulate(pieces.begin(), pieces.end(), size_t(0));
  const std::string value = offset_pattern(total, 3);
  std::string_view v = value;
  store.put("stream/k", "old value");
  {
    std::unique_ptr<detail::ValueWriter> writer = store.put_stream("stream/k");
    std::unique_ptr<detail::ValueWriter> abandoned = store.put_stream("stream/new");
    size_t at = 0;
    for (size_t n : pieces) {
      writer->write(v.substr(at, n));
      abandoned->write(v.substr(at, n));
      at += n;
      EXPECT_EQ(store.get("stream/k"), "old value") << "after " << at << " bytes";
    }
    EXPECT_EQ(store.get("stream/new"), std::nullopt);
    EXPECT_EQ(store.open_value("stream/new"), nullptr);
    EXPECT_EQ(store.list("stream/"), Keys{"stream/k"});
    EXPECT_EQ(store.list(""), Keys{"stream/k"});
    writer->commit();
  }
  std::optional<std::string> got = store.get("stream/k");
  ASSERT_TRUE(got);
  EXPECT_TRUE(same_bytes(*got, value));
  got.reset();
  EXPECT_EQ(store.get("stream/new"), std::nullopt);

  {  // a replacement abandoned: the value stays
    std::unique_ptr<detail::ValueWriter> writer = store.put_stream("stream/k");
    writer->write(v.substr(0, total / 2));
    writer->write("and never committed");
  }
  got = store.get("stream/k");
  ASSERT_TRUE(got);
  EXPECT_TRUE(same_bytes(*got, value));
  got.reset();
  EXPECT_EQ(store.list(""), Keys{"stream/k"});
  if (expect_no_debris) expect_no_debris();

  // Ranges of odd sizes, back to front, cover the value.
  std::unique_ptr<detail::ValueReader> reader = store.open_value("stream/k");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), total);
  std::vector<std::pair<uint64_t, size_t>> ranges;
  const size_t sizes[] = {77, 1, 1000003, (3 << 20) + 1};
  for (size_t at = 0, i = 0; at < total; ++i) {
    size_t n = std::min(sizes[i % 4], total - at);
    ranges.emplace_back(at, n);
    at += n;
  }
  std::string copy(total, '\0');
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it)
    reader->read(it->first, copy.data() + it->first, it->second);
  EXPECT_TRUE(same_bytes(copy, value));
  char byte = 0;
  reader->read(total, &byte, 0);  // an empty range at the end is inside
  EXPECT_NE(error_of([&] { reader->read(total - 1, copy.data(), 2); }), "");
  EXPECT_NE(error_of([&] { reader->read(total, copy.data(), 1); }), "");
  EXPECT_NE(error_of([&] { reader->read(total + 1, copy.data(), 0); }), "");
  EXPECT_NE(error_of([&] { reader->read(UINT64_MAX, copy.data(), 2); }), "");
  reader->read(total - 1, &byte, 1);  // still usable
  EXPECT_EQ(byte, value.back());
  EXPECT_EQ(store.open_value("stream/absent"), nullptr);

  // Two writers of one key at once: each value whole, the last commit wins.
  {
    std::unique_ptr<detail::ValueWriter> first = store.put_stream("stream/both");
    std::unique_ptr<detail::ValueWriter> second = store.put_stream("stream/both");
    first->write("first ");
    second->write("second ");
    first->write("value");
    second->write("value");
    second->commit();
    EXPECT_EQ(store.get("stream/both"), "second value");
    first->commit();
    EXPECT_EQ(store.get("stream/both"), "first value");
  }
  store.remove("stream/both");

  // An empty value is a value.
  store.put_stream("stream/empty")->commit();
  EXPECT_EQ(store.get("stream/empty"), "");
  reader = store.open_value("stream/empty");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), 0u);
  reader->read(0, &byte, 0);
  EXPECT_NE(error_of([&] { reader->read(0, &byte, 1); }), "");
  EXPECT_EQ(store.list("stream/"), (Keys{"stream/empty", "stream/k"}));
}

// ThreadSanitizer keeps shadow memory beside every byte a program touches
// (2.5x the S3 stream's own growth, measured here): a bound on memory growth
// scales with it, still far below what holding a whole value would take.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KAPPA_TESTS_UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(KAPPA_TESTS_UNDER_TSAN)
#define KAPPA_TESTS_UNDER_TSAN 1
#endif
#ifdef KAPPA_TESTS_UNDER_TSAN
inline constexpr uint64_t kShadowFactor = 3;
#else
inline constexpr uint64_t kShadowFactor = 1;
#endif

/// Writes `pieces` pieces of 4 MiB under `key` with put_stream, reads them
/// back by ranges of 4 MiB, and expects the process's peak memory to have
/// grown by less than `limit` meanwhile (the buffering defaults hold the whole
/// value, and a copy of it at the read); under ThreadSanitizer, `limit` times
/// kShadowFactor.
inline void expect_streams_in_bounded_memory(detail::CheckpointStore& store, size_t pieces,
                                             uint64_t limit, uint64_t seed) {
  constexpr size_t kPiece = 4 << 20;
  std::string piece, read_back(kPiece, '\0');
  PeakMemoryGrowth growth;
  auto writer = store.put_stream("big");
  for (size_t i = 0; i < pieces; ++i) {
    piece = offset_pattern(kPiece, seed, i * kPiece);
    writer->write(piece);
  }
  writer->commit();
  writer.reset();
  auto reader = store.open_value("big");
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->size(), kPiece * pieces);
  for (size_t i = 0; i < pieces; ++i) {
    reader->read(i * kPiece, read_back.data(), kPiece);
    piece = offset_pattern(kPiece, seed, i * kPiece);
    ASSERT_TRUE(same_bytes(read_back, piece)) << "piece " << i;
  }
  EXPECT_LT(growth.bytes(), limit * kShadowFactor);
}

}  // namespace kappa::testing
