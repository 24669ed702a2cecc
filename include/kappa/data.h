// Output that must be written exactly once: objects in the job's data store
// (DESIGN.md section 3). `APP run --data URL` names the store (default
// file://./kappa-data); a key is a plain object there (file://DIR: the file
// DIR/KEY), so other tools can read a job's output.
//
//   co_await kappa::put("counts/part-3.tsv", text);   // applied exactly once
//   std::string v = co_await kappa::get("counts/part-3.tsv");
//
// put is applied exactly once even when its task restarts: the worker stages
// the bytes under a key of the job's own, and the coordinator makes them
// visible under `key` when it records the call, once; a task restarted from
// an earlier checkpoint repeats the call and is given the recorded result.
// A put whose task died before the call was recorded leaves nothing
// visible. put is a pause point; get suspends without a checkpoint. A get
// after a put in the same task sees that put, also after a restart.
//
// Keys: non-empty, relative ('/' separates folders), no "..", not starting
// with ".kappa". Puts and gets need a coordinator (`run`), not `solo`.
//
// Threads: call put and get from the task's own thread only, as every pause
// point; at the co_await they throw kappa::Error outside a task, while threads
// the task started still run, and under `solo`.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "kappa/detail/calls.h"
#include "kappa/error.h"

namespace kappa {

/// A pause point: writes `bytes` under `key` in the job's data store, exactly
/// once, replacing any object there. The bytes are copied by this call (the
/// view need not outlive it): kappa::Error if that throws. At the co_await,
/// kappa::Error for a key that breaks the rules above or a store that refuses
/// the object. If the data store cannot take the staged bytes, the task fails
/// (an error it cannot catch) and nothing becomes visible under `key`.
inline auto put(std::string key, std::string_view bytes) {
  return detail::make_call<void>(
      detail::Op::kPut, detail::request_outside_arena([&] {
        return encode(std::make_pair(std::move(key), std::string(bytes)));
      }),
      [](std::string_view) {});
}

/// Yields the bytes under `key` in the job's data store. It suspends the task
/// as a pause point does but takes no checkpoint: the worker reads the object
/// itself, so a task restarted from an earlier checkpoint reads it again.
/// Throws kappa::Error naming the key if there is no such object or the store
/// cannot read it.
inline auto get(std::string key) {
  return detail::make_call<std::string>(detail::Op::kGet, encode(key),
                                        [](std::string_view reply) { return std::string(reply); });
}

}  // namespace kappa
