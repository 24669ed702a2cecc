// Checks every CheckpointStore must pass, whatever it stores in: each
// store's tests run them on a store of their own.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <optional>
#include <string>
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

}  // namespace kappa::testing
