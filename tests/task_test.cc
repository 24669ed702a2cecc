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

// Misuse of a Task surfaces as a kappa::Error at the co_await; `attempt`
// returns its message, or "no error".
template <class Body>
kappa::Task<std::string> error_of(Body attempt) {
  try {
    co_await attempt();
  } catch (const kappa::Error& e) {
    co_return e.what();
  }
  co_return "no error";
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << text;
}

TEST(Task, AwaitingAnEmptyTaskIsAClearError) {
  expect_contains(run(error_of([]() -> kappa::Task<void> {
                    kappa::Task<int> empty;
                    co_await empty;
                  })),
                  "empty kappa::Task");
  expect_contains(run(error_of([]() -> kappa::Task<void> {
                    kappa::Task<int> t = leaf(1);
                    kappa::Task<int> owner = std::move(t);
                    co_await t;  // moved from
                  })),
                  "empty kappa::Task");
  expect_contains(run(error_of([]() -> kappa::Task<void> { co_await kappa::Task<void>(); })),
                  "empty kappa::Task");
}

kappa::Task<std::unique_ptr<int>> boxed(int x) { co_return std::make_unique<int>(x); }

TEST(Task, AwaitingATaskTwiceIsAClearError) {
  expect_contains(run(error_of([]() -> kappa::Task<void> {
                    kappa::Task<std::unique_ptr<int>> t = boxed(7);
                    std::unique_ptr<int> first = co_await t;
                    EXPECT_EQ(*first, 7);
                    std::unique_ptr<int> second = co_await t;  // the value was moved out
                  })),
                  "already awaited");
  expect_contains(run(error_of([]() -> kappa::Task<void> {
                    kappa::Task<void> t = []() -> kappa::Task<void> { co_return; }();
                    co_await t;
                    co_await t;
                  })),
                  "already awaited");
  // A task that failed: the second co_await reports the misuse rather than
  // rethrowing the task's exception again.
  expect_contains(run(error_of([]() -> kappa::Task<void> {
                    kappa::Task<void> t = thrower();
                    EXPECT_THROW(co_await t, std::invalid_argument);
                    co_await t;
                  })),
                  "already awaited");
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
