// Test entry point: a fixed checkpoint key for every test and every child
// process the tests start, and the runtime's one-time setup.
#include <gtest/gtest.h>

#include <cstdlib>

#include "runtime/runtime.h"
#include "util/log.h"

int main(int argc, char** argv) {
  setenv("KAPPA_KEY", "kappa-tests-key-0123456789abcdef", 1);
  kappa::detail::runtime_init();
  kappa::detail::init_logging("test");
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
