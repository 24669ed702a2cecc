// kappa::Task<T> as a plain coroutine type (no task arena involved).
#include "kappa/task.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "kappa/error.h"
#include "kappa/pause.h"

namespace {

// Drives a task to completion from ordinary code.
template <class T>
T run(kappa::Task<T> task) {
  auto h = task.handle();
  h.resume();
  EXPECT_TRUE(h.done());
  return h.promise().result();
}

kappa::Task<int> leaf(int x) { co_return x * 2; }

kappa::Task<int> nested(int depth) {
  if (depth == 0) co_return co_await leaf(21);
  int below = co_await nested(depth - 1);
  co_return below + 1;
}

TEST(Task, ReturnsValueThroughNesting) { EXPECT_EQ(run(nested(5)), 42 + 5); }

TEST(Task, DeepNesting) { EXPECT_EQ(run(nested(20000)), 42 + 20000); }

kappa::Task<void> thrower() {
  throw std::invalid_argument("inner");
  co_return;
}

kappa::Task<std::string> catcher() {
  try {
    co_await thrower();
  } catch (const std::invalid_argument& e) {
    co_return std::string("caught ") + e.what();
  }
  co_return "not caught";
}

TEST(Task, ExceptionsPropagateThroughCoAwait) { EXPECT_EQ(run(catcher()), "caught inner"); }

TEST(Task, UncaughtExceptionReachesTheDriver) {
  auto t = thrower();
  t.handle().resume();
  EXPECT_THROW(t.handle().promise().result(), std::invalid_argument);
}

kappa::Task<std::unique_ptr<int>> move_only() { co_return std::make_unique<int>(7); }

TEST(Task, MoveOnlyValues) { EXPECT_EQ(*run(move_only()), 7); }

TEST(Task, DestroyingAnUnstartedTaskFreesItsFrame) {
  auto p = std::make_shared<int>(1);
  {
    auto t = [](std::shared_ptr<int> q) -> kappa::Task<int> { co_return *q; }(p);
    EXPECT_EQ(p.use_count(), 2);
  }
  EXPECT_EQ(p.use_count(), 1);
}

kappa::Task<int> pauses_outside_a_task() {
  co_await kappa::checkpoint();
  co_return 1;
}

TEST(Task, PausePointOutsideATaskIsAClearError) {
  auto t = pauses_outside_a_task();
  t.handle().resume();
  ASSERT_TRUE(t.handle().done());
  try {
    t.handle().promise().result();
    FAIL() << "expected kappa::Error";
  } catch (const kappa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside a kappa task"), std::string::npos) << e.what();
  }
}

TEST(Task, MaybeCheckpointIsFreeWhenNotDue) {
  auto t = []() -> kappa::Task<int> {
    int n = 0;
    for (int i = 0; i < 1000; ++i) {
      co_await kappa::maybe_checkpoint();  // not due: never suspends
      ++n;
    }
    co_return n;
  }();
  EXPECT_EQ(run(std::move(t)), 1000);
}

}  // namespace
