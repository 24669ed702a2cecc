// Concurrency: spawn, futures, map_spawn, wait_all and bounded queues
// (DESIGN.md section 3). Every call here is a pause point: the task is
// checkpointed, the call goes to the coordinator, which applies it at most
// once even when the task is restarted, and the task resumes with the result
// (possibly in another worker process, if the call had to wait).
//
//   Future<R> f = co_await kappa::spawn(fn, args...);   // fn: Task<R>(P...) or R(P...)
//   R r         = co_await f;                            // throws kappa::TaskFailed
//   auto fs     = co_await kappa::map_spawn(fn, elems, extra...);   // fn(elem, extra...)
//   auto vs     = co_await kappa::wait_all(fs);
//   Queue<T> q  = co_await kappa::make_queue<T>(max_size);          // 0: rendezvous
//   co_await q.enqueue(v);  T v = co_await q.dequeue();
//   co_await q.enqueue_async(v);                          // does not wait for the reply
//
// Functions are spawned by pointer (plain functions, or captureless lambdas
// converted with unary +): the child runs the same binary, so the address is
// valid there. Arguments and results cross processes serialized with
// kappa::encode (cereal). An argument of type Future<T> where the function
// takes a T is a dataflow edge: the child starts once the future resolves and
// receives its value.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kappa/detail/calls.h"
#include "kappa/error.h"
#include "kappa/serialize.h"
#include "kappa/task.h"

namespace kappa {

template <class T>
class Future;

namespace detail {

template <class T>
T decode_wait_result(const WaitResult& r) {
  if (r.failed) throw TaskFailed(r.bytes);
  if constexpr (!std::is_void_v<T>) return decode<T>(r.bytes);
}

template <class T>
auto wait_call(std::vector<uint64_t> ids) {
  return make_call<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>(
      Op::kWait, encode(ids), [](std::string_view reply) {
        auto results = decode<std::vector<WaitResult>>(reply);
        if constexpr (std::is_void_v<T>) {
          for (const WaitResult& r : results) decode_wait_result<void>(r);
        } else {
          std::vector<T> values;
          values.reserve(results.size());
          for (const WaitResult& r : results) values.push_back(decode_wait_result<T>(r));
          return values;
        }
      });
}

}  // namespace detail

/// The result of a spawned task. A copyable handle (an id): it can be awaited
/// by any task, passed to spawn as an argument, and stored in state.
template <class T>
class Future {
 public:
  using value_type = T;
  Future() = default;
  explicit Future(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  /// Waits for the task and returns its value; throws kappa::TaskFailed
  /// (whose message names the task and its error) if it failed.
  auto operator co_await() const {
    return detail::make_call<T>(detail::Op::kWait, encode(std::vector<uint64_t>{id_}),
                                [](std::string_view reply) {
                                  auto results = decode<std::vector<detail::WaitResult>>(reply);
                                  return detail::decode_wait_result<T>(results.at(0));
                                });
  }

  template <class A>
  void serialize(A& a) {
    a(id_);
  }

 private:
  uint64_t id_ = 0;
};

/// Any future, whatever its type (for SpawnOptions::awaits).
struct FutureRef {
  template <class T>
  FutureRef(const Future<T>& f) : id(f.id()) {}  // NOLINT: implicit by design
  uint64_t id;
};

struct SpawnOptions {
  /// Shown in logs, errors and traces.
  std::string name = {};
  /// Run beside the coordinator, with no time limit and never killed by
  /// --chaos-kill: the place for side effects that must happen once.
  bool on_coordinator = false;
  /// Futures that must resolve before the task starts (their values are not
  /// passed).
  std::vector<FutureRef> awaits = {};
};

/// A bounded FIFO queue of T shared between tasks; a copyable handle that can
/// be passed to spawned tasks.
template <class T>
class Queue {
 public:
  Queue() = default;
  explicit Queue(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  /// Appends `value`, waiting while the queue is full (max_size 0: until a
  /// dequeue takes it).
  auto enqueue(const T& value) const {
    return detail::make_call<void>(detail::Op::kEnqueue, detail::enqueue_request(id_, value),
                                   [](std::string_view) {});
  }
  /// Appends `value` without waiting for the coordinator's reply: the task
  /// goes on at once while the call travels (like an asynchronous
  /// checkpoint). If the queue turns out to be full, the task is parked at
  /// this point and resumes from it once the item is accepted; what it
  /// computed in the meantime is computed again. Either way the item is
  /// enqueued exactly once.
  auto enqueue_async(const T& value) const {
    return detail::make_call<void>(
        detail::Op::kEnqueue, detail::enqueue_request(id_, value), [](std::string_view) {},
        /*async=*/true);
  }
  /// Removes and returns the oldest item, waiting while the queue is empty.
  auto dequeue() const {
    return detail::make_call<T>(detail::Op::kDequeue, encode(id_),
                                [](std::string_view reply) { return decode<T>(reply); });
  }

  template <class A>
  void serialize(A& a) {
    a(id_);
  }

 private:
  uint64_t id_ = 0;
};

namespace detail {

template <class T>
struct unwrap_future {
  using type = T;
  static constexpr bool is_future = false;
};
template <class T>
struct unwrap_future<Future<T>> {
  using type = T;
  static constexpr bool is_future = true;
};

template <class R>
struct task_value {
  using type = R;
  static constexpr bool is_task = false;
};
template <class R>
struct task_value<Task<R>> {
  using type = R;
  static constexpr bool is_task = true;
};

template <class Fn>
struct fn_traits {
  static_assert(sizeof(Fn) == 0,
                "kappa::spawn takes a function pointer: a plain function, or a captureless "
                "lambda converted with unary + (state must travel as arguments)");
};
template <class R, class... P>
struct fn_traits<R (*)(P...)> {
  using returned = R;
  using value = typename task_value<R>::type;
  static constexpr bool is_task = task_value<R>::is_task;
  using params = std::tuple<std::decay_t<P>...>;
};

template <class Fn, class... P, size_t... I>
auto decode_args(const std::vector<std::string>& args, std::index_sequence<I...>) {
  return std::tuple<P...>(decode<P>(args[I])...);
}

/// Runs the function at address `fn` of type Fn inside the child task.
template <class Fn, class... P>
Task<std::string> trampoline(uintptr_t fn, std::vector<std::string> args) {
  using traits = fn_traits<Fn>;
  if (args.size() != sizeof...(P))
    throw Error("spawned function received " + std::to_string(args.size()) +
                " arguments, expected " + std::to_string(sizeof...(P)));
  auto f = reinterpret_cast<Fn>(fn);
  auto params = decode_args<Fn, P...>(args, std::index_sequence_for<P...>{});
  if constexpr (traits::is_task) {
    // The task is a named local, never a temporary inside the co_await
    // expression: GCC 12 can destroy such a temporary (and free the child's
    // frame) while the child is still suspended.
    typename traits::returned task = std::apply(f, std::move(params));
    if constexpr (std::is_void_v<typename traits::value>) {
      co_await task;
      co_return std::string();
    } else {
      auto value = co_await task;
      co_return encode(value);
    }
  } else {
    if constexpr (std::is_void_v<typename traits::value>) {
      std::apply(f, std::move(params));
      co_return std::string();
    } else {
      co_return encode(std::apply(f, std::move(params)));
    }
  }
}

template <class Fn, class Tuple>
struct trampoline_for;
template <class Fn, class... P>
struct trampoline_for<Fn, std::tuple<P...>> {
  static uint64_t address() {
    Trampoline t = &trampoline<Fn, P...>;
    return reinterpret_cast<uint64_t>(t);
  }
};

template <class Param, class Arg>
ArgSlot make_slot(Arg&& arg) {
  using A = std::decay_t<Arg>;
  if constexpr (unwrap_future<A>::is_future) {
    static_assert(std::is_same_v<typename unwrap_future<A>::type, Param>,
                  "a Future<T> argument must match the parameter type T exactly");
    return ArgSlot{arg.id(), {}};
  } else {
    return ArgSlot{0, encode(Param(std::forward<Arg>(arg)))};
  }
}

template <class Fn, class... Args, size_t... I>
SpawnSpec make_spec(const SpawnOptions& opts, Fn fn, std::index_sequence<I...>, Args&&... args) {
  using params = typename fn_traits<Fn>::params;
  static_assert(sizeof...(Args) == std::tuple_size_v<params>,
                "kappa::spawn: wrong number of arguments for the function");
  SpawnSpec spec;
  spec.fn = code_offset(reinterpret_cast<uint64_t>(fn));
  spec.trampoline = code_offset(trampoline_for<Fn, params>::address());
  spec.args = {make_slot<std::tuple_element_t<I, params>>(std::forward<Args>(args))...};
  spec.name = opts.name;
  spec.on_coordinator = opts.on_coordinator;
  for (const FutureRef& f : opts.awaits) spec.awaits.push_back(f.id);
  return spec;
}

template <class F>
auto to_function_pointer(F f) {
  if constexpr (std::is_pointer_v<F>)
    return f;
  else
    return +f;  // a captureless lambda
}

}  // namespace detail

/// Starts fn(args...) as a new task; returns its future once the coordinator
/// has recorded the spawn.
template <class F, class... Args>
auto spawn(const SpawnOptions& options, F f, Args&&... args) {
  auto fn = detail::to_function_pointer(f);
  using R = typename detail::fn_traits<decltype(fn)>::value;
  std::vector<detail::SpawnSpec> specs;
  specs.push_back(detail::make_spec(options, fn, std::index_sequence_for<Args...>{},
                                    std::forward<Args>(args)...));
  return detail::make_call<Future<R>>(
      detail::Op::kSpawn, detail::request_outside_arena([&] { return encode(specs); }),
      [](std::string_view reply) { return Future<R>(decode<std::vector<uint64_t>>(reply).at(0)); });
}

template <class F, class... Args>
requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto spawn(F f, Args&&... args) {
  return spawn(SpawnOptions{}, f, std::forward<Args>(args)...);
}

/// Starts fn(elem, extra...) for every element; one call to the coordinator.
template <class F, class Range, class... Extra>
auto map_spawn(F f, const Range& elems, const Extra&... extra) {
  auto fn = detail::to_function_pointer(f);
  using R = typename detail::fn_traits<decltype(fn)>::value;
  std::vector<detail::SpawnSpec> specs;
  for (const auto& e : elems)
    specs.push_back(detail::make_spec(
        SpawnOptions{}, fn, std::make_index_sequence<1 + sizeof...(Extra)>{}, e, extra...));
  return detail::make_call<std::vector<Future<R>>>(
      detail::Op::kSpawn, detail::request_outside_arena([&] { return encode(specs); }),
      [](std::string_view reply) {
        std::vector<Future<R>> futures;
        for (uint64_t id : decode<std::vector<uint64_t>>(reply)) futures.emplace_back(id);
        return futures;
      });
}

/// Waits for every future; returns their values in order (void for
/// Future<void>). Throws kappa::TaskFailed for the first failed one.
template <class T>
auto wait_all(const std::vector<Future<T>>& futures) {
  std::vector<uint64_t> ids;
  ids.reserve(futures.size());
  for (const Future<T>& f : futures) ids.push_back(f.id());
  return detail::wait_call<T>(std::move(ids));
}

/// Creates a queue holding at most max_size items (0: every enqueue waits for
/// a dequeue, a rendezvous).
template <class T>
auto make_queue(uint64_t max_size) {
  return detail::make_call<Queue<T>>(
      detail::Op::kMakeQueue, encode(max_size),
      [](std::string_view reply) { return Queue<T>(decode<uint64_t>(reply)); });
}

}  // namespace kappa
