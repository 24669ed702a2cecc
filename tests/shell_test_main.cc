// Entry point of the tests that run without the arena allocator (the
// coordinator, its shell, the transports, the backends, the stores): they
// also run under ThreadSanitizer, which cannot coexist with a replaced
// malloc.
#include <gtest/gtest.h>

#include "util/log.h"

int main(int argc, char** argv) {
  kappa::detail::init_logging("test");
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
