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
//
// Common contract. Each function returns an awaitable and the call is made
// when it is awaited: await it once, in the task that created it (it may be
// kept and awaited after other pause points). Arguments are converted and
// serialized when the function is called, not when it is awaited. At the
// co_await, besides the errors each call lists, kappa::Error is thrown (and
// the call is not made) outside a task, while threads the task started still
// run, and under `solo`, which has no coordinator. The job ends when its root
// task (the handler) returns: tasks still running then are stopped; and a job
// whose live tasks all wait on futures or queues that nothing will fill fails.
//
// Threads: make these calls from the task's own thread only. A Future or a
// Queue is a plain value (an id), like FutureRef and SpawnOptions: copy it,
// keep it in task state, and send it to other tasks freely.
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

/// One awaited future's value; throws kappa::TaskFailed if its task failed.
template <class T>
T decode_wait_result(const WaitResult& r) {
  if (r.failed) throw TaskFailed(r.bytes);
  if constexpr (!std::is_void_v<T>) return decode<T>(r.bytes);
}

/// The kWait call for `ids`, yielding their values (wait_all).
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
/// by any task, any number of times, passed to spawn as an argument, and
/// stored in state.
template <class T>
class Future {
 public:
  /// What awaiting the future yields.
  using value_type = T;
  /// An empty future (id 0), of no task: awaiting it throws kappa::Error, and
  /// a task spawned with it as an argument fails.
  Future() = default;
  /// The future of task `id` (as id() returns it). For the runtime and tests:
  /// nothing checks that the task yields a T; a mismatch surfaces as a
  /// kappa::Error when the value is decoded.
  explicit Future(uint64_t id) : id_(id) {}
  /// The task's id in its job (0: empty): the ID in its logs and in
  /// TaskFailed messages ("task ID").
  uint64_t id() const { return id_; }

  /// A pause point: waits for the task and yields a copy of its value.
  /// Throws kappa::TaskFailed (whose message names the task and its error) if
  /// it failed; kappa::Error for an empty or unknown future or a value that
  /// does not decode as T, and as in the file comment.
  auto operator co_await() const {
    return detail::make_call<T>(detail::Op::kWait, encode(std::vector<uint64_t>{id_}),
                                [](std::string_view reply) {
                                  auto results = decode<std::vector<detail::WaitResult>>(reply);
                                  return detail::decode_wait_result<T>(results.at(0));
                                });
  }

  /// cereal's hook: a Future travels as its id, so it can be a spawn
  /// argument, part of a result or a queue item.
  template <class A>
  void serialize(A& a) {
    a(id_);
  }

 private:
  uint64_t id_ = 0;
};

/// Any future, whatever its type (for SpawnOptions::awaits).
struct FutureRef {
  /// Refers to `f`'s task; implicit, so that `.awaits = {fa, fb}` works.
  template <class T>
  FutureRef(const Future<T>& f) : id(f.id()) {}  // NOLINT: implicit by design
  /// The future's id (Future::id).
  uint64_t id;
};

/// How spawn starts a task. An aggregate: `SpawnOptions{.name = "merge"}`
/// (with g++ 12, name it before the co_await: README, "Compilers").
struct SpawnOptions {
  /// Shown in logs, errors (TaskFailed's "task ID (NAME)") and traces.
  std::string name = {};
  /// Run beside the coordinator, with no time limit and never killed by
  /// --chaos-kill: the place for side effects that must happen once.
  bool on_coordinator = false;
  /// Futures that must resolve before the task starts (their values are not
  /// passed). One that fails does not stop the task, unlike a failed Future
  /// argument; an empty one (id 0) fails it.
  std::vector<FutureRef> awaits = {};
};

/// A bounded FIFO queue of T shared between tasks; a copyable handle that can
/// be passed to spawned tasks. Items are handed out in the order they were
/// accepted, each to one dequeuer; waiting enqueuers and dequeuers are served
/// first come, first served. A queue lives as long as its job.
template <class T>
class Queue {
 public:
  /// An empty handle (id 0), to be assigned later: enqueue and dequeue on it
  /// throw kappa::Error.
  Queue() = default;
  /// The queue with id `id` (as id() returns it). For the runtime and tests:
  /// nothing checks that its items are Ts.
  explicit Queue(uint64_t id) : id_(id) {}
  /// The queue's id in its job (0: empty).
  uint64_t id() const { return id_; }

  /// A pause point: appends `value`, waiting while the queue is full
  /// (max_size 0: until a dequeue takes it); the item is enqueued once even
  /// if the task restarts. `value` is serialized by this call: kappa::Error if
  /// that throws. At the co_await, kappa::Error for an empty or unknown queue
  /// and as in the file comment.
  auto enqueue(const T& value) const {
    return detail::make_call<void>(detail::Op::kEnqueue, detail::enqueue_request(id_, value),
                                   [](std::string_view) {});
  }
  /// As above, for a value the caller gives up (a temporary, as in
  /// `q.enqueue(co_await p.dequeue())`, or `std::move(v)`): it is moved from
  /// and its memory released before the pause, so the task's checkpoint at
  /// this call does not carry the item a second time beside the request.
  auto enqueue(T&& value) const {
    return detail::make_call<void>(detail::Op::kEnqueue,
                                   detail::enqueue_request(id_, T(std::move(value))),
                                   [](std::string_view) {});
  }
  /// Appends `value` without waiting for the coordinator's reply: the task
  /// goes on at once while the call travels (like an asynchronous
  /// checkpoint). If the queue turns out to be full, the task is parked at
  /// this point and resumes from it once the item is accepted; what it
  /// computed in the meantime is computed again. Either way the item is
  /// enqueued exactly once. Throws as enqueue, except that a call that fails
  /// at the coordinator (an empty or unknown queue) fails the task at its
  /// next pause point or at its end, without an exception the task can catch.
  auto enqueue_async(const T& value) const {
    return detail::make_call<void>(
        detail::Op::kEnqueue, detail::enqueue_request(id_, value), [](std::string_view) {},
        /*async=*/true);
  }
  /// As above, moving from `value` and releasing it before the pause (see
  /// enqueue(T&&)).
  auto enqueue_async(T&& value) const {
    return detail::make_call<void>(
        detail::Op::kEnqueue, detail::enqueue_request(id_, T(std::move(value))),
        [](std::string_view) {}, /*async=*/true);
  }
  /// A pause point: removes and yields the oldest item, waiting while the
  /// queue is empty. Throws kappa::Error for an empty or unknown queue or an
  /// item that does not decode as T (the item is gone), and as in the file
  /// comment.
  auto dequeue() const {
    return detail::make_call<T>(detail::Op::kDequeue, encode(id_),
                                [](std::string_view reply) { return decode<T>(reply); });
  }

  /// cereal's hook: a Queue travels as its id, so it can be a spawn argument,
  /// part of a result or a queue item.
  template <class A>
  void serialize(A& a) {
    a(id_);
  }

 private:
  uint64_t id_ = 0;
};

namespace detail {

/// T, or the U of a Future<U> (an argument that is a dataflow edge).
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

/// R, or the U of a Task<U> (what a spawned function yields).
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

/// The return and parameter types of a spawnable function pointer.
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

/// Decodes a spawned function's arguments (kappa::Error if one is malformed).
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

/// The trampoline of a function type, from its parameter tuple.
template <class Fn, class Tuple>
struct trampoline_for;
template <class Fn, class... P>
struct trampoline_for<Fn, std::tuple<P...>> {
  static uint64_t address() {
    Trampoline t = &trampoline<Fn, P...>;
    return reinterpret_cast<uint64_t>(t);
  }
};

/// One argument of a spawn: a future's id, or the value converted to Param
/// and encoded.
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

/// The SpawnSpec of fn(args...) with `opts`.
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

/// `f` as a function pointer (a captureless lambda converts).
template <class F>
auto to_function_pointer(F f) {
  if constexpr (std::is_pointer_v<F>)
    return f;
  else
    return +f;  // a captureless lambda
}

}  // namespace detail

/// A pause point: starts f(args...) as a new task and yields its Future<R>
/// once the coordinator has recorded the spawn (the child starts later, in
/// another worker process). `f` is a function pointer or a captureless lambda
/// of type Task<R>(P...) or R(P...) (checked at compile time), in this binary.
/// Each argument is converted to its P and serialized by this call: what that
/// throws propagates from it. An argument of type Future<P> (P exactly) is a
/// dataflow edge: the child starts once it resolves, with its value, and
/// fails without running if it failed. An exception escaping the child fails
/// it: awaiting its future then throws kappa::TaskFailed. The co_await throws
/// as in the file comment.
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

/// spawn(SpawnOptions{}, f, args...): an unnamed task on an ordinary worker.
template <class F, class... Args>
requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto spawn(F f, Args&&... args) {
  return spawn(SpawnOptions{}, f, std::forward<Args>(args)...);
}

/// A pause point: starts f(elem, extra...) for every element of `elems` (any
/// range), in one call to the coordinator, and yields their futures in the
/// range's order. Each task gets its own copy of the extra arguments. The
/// same contract as spawn, with default SpawnOptions.
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

/// A pause point: waits until every future has resolved, then yields their
/// values in order (nothing for Future<void>; an empty vector for none).
/// Throws kappa::TaskFailed for the first failed future in the vector's order
/// (the other values are dropped); kappa::Error for an empty or unknown
/// future, and as in the file comment.
template <class T>
auto wait_all(const std::vector<Future<T>>& futures) {
  std::vector<uint64_t> ids;
  ids.reserve(futures.size());
  for (const Future<T>& f : futures) ids.push_back(f.id());
  return detail::wait_call<T>(std::move(ids));
}

/// A pause point: creates a queue holding at most max_size items (0: every
/// enqueue waits for a dequeue, a rendezvous) and yields its handle. Throws
/// as in the file comment.
template <class T>
auto make_queue(uint64_t max_size) {
  return detail::make_call<Queue<T>>(
      detail::Op::kMakeQueue, encode(max_size),
      [](std::string_view reply) { return Queue<T>(decode<uint64_t>(reply)); });
}

}  // namespace kappa
