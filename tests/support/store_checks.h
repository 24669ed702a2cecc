// Checks every CheckpointStore must pass, whatever it stores in: each
// store's tests run them on a store of their own.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"

namespace kappa::testing {

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
