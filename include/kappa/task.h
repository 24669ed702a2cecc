// kappa::Task<T>: the return type of a pausable function.
//
// A Task is a lazily started C++20 coroutine. `co_await task` starts it and
// suspends the caller until it finishes (symmetric transfer, so nesting to any
// depth costs no stack), then yields its value or rethrows its exception.
//
// Inside a Kappa task every coroutine frame, like every other allocation, is
// placed in the task's arena, which is what makes the whole chain of suspended
// frames checkpointable (DESIGN.md section 2). Outside a task, a Task is an
// ordinary coroutine on the normal heap.
//
// Ownership: a Task object owns its coroutine frame and destroys it; moving
// transfers ownership. A Task is awaited at most once: its value is moved out
// to the awaiter. Awaiting an empty Task (default-constructed or moved from) or
// awaiting a Task a second time throws kappa::Error at that co_await.
//
// Inside a Kappa task, a coroutine may only suspend at Kappa pause points
// and at `co_await` on a Task: awaiting another library's awaitable that
// suspends fails the task ("the task suspended outside a kappa pause
// point"). Memory: a task's frames and heap come from its arena (about 64 GiB
// of address space); when it is exhausted operator new throws std::bad_alloc
// and malloc returns null, though the machine's memory usually runs out first.
//
// Threads: a Task is not thread-safe. Create, await and destroy it on the
// thread that runs the task; threads the task starts must not touch it.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "kappa/error.h"

namespace kappa {

template <class T = void>
class Task;

namespace detail {

class TaskPromiseBase {
 public:
  // Frames go through the replaced global operator new, which places them in
  // the current task arena (or on the normal heap outside tasks).
  static void* operator new(std::size_t n) { return ::operator new(n); }
  static void operator delete(void* p) noexcept { ::operator delete(p); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      std::coroutine_handle<> c = h.promise().continuation_;
      return c ? c : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }

  /// Records that the task is being awaited; false if it was already, which
  /// is a misuse (its value is gone, or it is running for another awaiter).
  bool claim_for_await() noexcept { return !std::exchange(awaited_, true); }

 protected:
  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::coroutine_handle<> continuation_;
  std::exception_ptr error_;
  bool awaited_ = false;
};

template <class T>
class TaskPromise : public TaskPromiseBase {
 public:
  Task<T> get_return_object() noexcept;

  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value_.emplace(std::forward<U>(v)); }

  /// The task's value; rethrows its exception. Valid once, after completion.
  T result() {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> : public TaskPromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() { rethrow_if_failed(); }
};

}  // namespace detail

/// The return type of a pausable function: a lazily started coroutine that
/// yields a T (or nothing, for Task<void>) to the one coroutine awaiting it.
/// Owns its frame (see the file comment for ownership, misuse and threads).
template <class T>
class [[nodiscard]] Task {
 public:
  /// The coroutine's promise (C++ coroutine machinery; not for direct use).
  using promise_type = detail::TaskPromise<T>;
  /// What `co_await task` yields.
  using value_type = T;
  /// The type of handle() and release().
  using handle_type = std::coroutine_handle<promise_type>;

  /// An empty Task: owns no coroutine; awaiting it throws kappa::Error.
  Task() noexcept = default;
  /// Takes ownership of the coroutine `h` (called by the promise).
  explicit Task(handle_type h) noexcept : h_(h) {}
  /// Takes `other`'s coroutine; `other` becomes empty.
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  /// Destroys the coroutine this Task owns, if any, then takes `other`'s.
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  /// Destroys the owned coroutine frame (and the locals in it), if any. Not
  /// while the coroutine runs or is being awaited: a Task outlives its await.
  ~Task() {
    if (h_) h_.destroy();
  }

  /// True once the coroutine has run to completion (returned or threw), and
  /// for an empty Task.
  bool done() const noexcept { return !h_ || h_.done(); }

  /// What operator co_await returns: starts the coroutine by symmetric
  /// transfer and resumes the awaiter when it ends.
  struct Awaiter {
    /// The awaited coroutine (null for an empty Task).
    handle_type h;
    /// Set by await_ready when the Task cannot be awaited; await_resume throws
    /// it, so that the error surfaces at the awaiter's co_await.
    const char* misuse = nullptr;

    /// Claims the Task for this await; true (no suspension) if it has already
    /// finished or is misused.
    bool await_ready() noexcept {
      if (!h) {
        misuse = "co_await on an empty kappa::Task (default-constructed or moved from)";
      } else if (!h.promise().claim_for_await()) {
        misuse = "co_await on a kappa::Task that was already awaited (a Task can be awaited once)";
      }
      return misuse || h.done();
    }
    /// Records `caller` as the continuation and runs the Task's coroutine.
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
      h.promise().set_continuation(caller);
      return h;
    }
    /// The Task's value, moved out. Rethrows the exception that escaped the
    /// coroutine, as is; throws kappa::Error on misuse.
    T await_resume() {
      if (misuse) throw Error(misuse);
      return h.promise().result();
    }
  };
  /// `co_await task`: runs the coroutine to completion inside the awaiting
  /// one (in the same task, on the same thread: not a pause point, though the
  /// coroutine may contain some) and yields its value. Rethrows what escaped
  /// it, with its own type. Throws kappa::Error if the Task is empty or was
  /// awaited before.
  Awaiter operator co_await() & noexcept { return Awaiter{h_}; }
  /// The same for a temporary: `co_await f(x)`. With g++ 12, an aggregate
  /// temporary with a std::string or std::vector member built inside a
  /// co_await expression is freed twice: name it first (README, "Compilers").
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }

  /// For runtime drivers: the coroutine handle (ownership stays with the Task).
  handle_type handle() const noexcept { return h_; }
  /// For runtime drivers: gives up ownership of the frame; the Task is empty.
  handle_type release() noexcept { return std::exchange(h_, {}); }

 private:
  handle_type h_;
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace kappa
