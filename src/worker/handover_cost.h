// HandoverCost: how long before its invocation's deadline a worker must start
// handing its task over, from the measured cost of doing so (issue 10,
// DESIGN.md sections 4 and 9).
//
// A hand-over is the pause point at which the task is due (maybe_checkpoint()
// or any call) followed by:
//   1. draining the uplink: images of earlier asynchronous checkpoints still
//      being written, and their calls;
//   2. capturing the task's next image: a full image of the state when the
//      next capture will be full (no chain kept yet, or the pages changed
//      since the chain's full image are near half the state), else a delta;
//   3. putting that image in the store (when it does not travel inline);
//   4. the call's round trip to the coordinator (kYield).
//
// The model, in seconds:
//   drain   = pending_bytes / store_rate + pending_puts * store_latency
//             + pending_calls * call_rtt
//   capture = full:  state_bytes / capture_rate
//             delta: the slowest of this task's recent delta captures, or,
//                    before its first, half the state / capture_rate (a
//                    larger delta would be a full image); a cumulative delta
//                    adds the bytes changed since the full image
//   put     = image_bytes / store_rate + store_latency
//             (image_bytes: the state, this task's largest recent delta, or
//              half the state, as for capture)
// The next capture counts as full when no chain is kept, or when the bytes
// changed since the chain's full image plus one more delta like the recent
// ones reach half the state.
//   margin  = floor + safety * (drain + capture + put + call_rtt)
// (store_latency: from puts below 256 KiB; before one, at most the fastest
// put of any size.)
// capped at max_fraction of the invocation, so that a task whose estimate is
// larger than its invocation still makes progress (it then risks the time
// limit, and restarts from its last checkpoint).
//
// The floor covers what the model leaves out: the time until the task
// reaches its next pause point, the checkpoint clock's own lag, and
// scheduling noise on a loaded machine. The safety factor covers the
// variance of the measured figures.
//
// Rates are per process, kept across invocations (a warm worker knows its
// store before its next task's first hand-over); each is an exponentially
// weighted average that moves at once to a slower sample and slowly to a
// faster one. Before anything is measured, conservative defaults apply
// (Params). Delta sizes are per task: they depend on how the task writes.
//
// Thread-safe: the worker thread reports captures and synchronous calls, the
// uplink thread stores and asynchronous calls, and the checkpoint clock's
// thread asks for the margin while the task runs.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace kappa::detail {

class HandoverCost {
 public:
  struct Params {
    double floor_s = 0.05;
    double safety = 1.5;
    double max_fraction = 0.75;
    // Defaults before a first measurement (this machine kind measures a few
    // GB/s for both on a memory-backed store; S3 is far slower, and is then
    // measured from the first put on).
    double capture_rate = 300e6;  // state bytes per second
    double store_rate = 100e6;    // bytes per second
    double store_latency_s = 0.02;
    double call_rtt_s = 0.02;
  };

  /// What the next hand-over will have to do, as the worker knows it.
  struct Next {
    uint64_t state_bytes = 0;  // what a full image would carry
    // ImageChain's state: whether a chain is kept (else the next capture is
    // full), the bytes changed since its full image (at half the state, the
    // next capture is full), and whether the next delta is cumulative (it
    // then carries every page changed since the full image).
    bool chained = false;
    uint64_t since_full_bytes = 0;
    bool cumulative = false;
    bool inline_image = false;   // a small state: the image travels in the call
    uint64_t pending_bytes = 0;  // images queued on the uplink, not yet stored
    uint64_t pending_puts = 0;
    uint64_t pending_calls = 0;
  };

  HandoverCost() : HandoverCost(Params{}) {}
  explicit HandoverCost(const Params& p) : p_(p) {}

  // ---- measurements ----
  /// A task starts or is resumed: forget the previous task's delta figures.
  void task_started();
  /// The task was restored from stored images: `stored_bytes` read in
  /// `read_s`, `state_bytes` restored from them in `restore_s`. A first
  /// estimate of the store's and the capture's rates, where none was measured.
  void restored(uint64_t state_bytes, uint64_t stored_bytes, double read_s, double restore_s);
  /// The resumed chain's last delta had `image_bytes`: a first estimate of
  /// this task's deltas, until one is captured.
  void seed_delta(uint64_t image_bytes);
  /// A capture of `raw_bytes` of state (the extents it carried) into
  /// `image_bytes` took `seconds`.
  void captured(bool full, uint64_t raw_bytes, uint64_t image_bytes, double seconds);
  /// A put of `bytes` to the checkpoint store took `seconds`.
  void stored(uint64_t bytes, double seconds);
  /// A call's round trip (the coordinator's answer included) took `seconds`.
  void called(double seconds);

  // ---- the estimate ----
  /// Whether the next capture is expected to be a full image: no chain, or
  /// the changes since its full image plus a delta like the recent ones
  /// reach half the state (ImageChain's policy).
  bool expects_full(const Next& next) const;
  /// Seconds of cost before the safety factor and floor (for logs and tests).
  double cost_s(const Next& next) const;
  /// Seconds before the deadline at which to start the hand-over, for an
  /// invocation of `invocation_s` seconds.
  double margin_s(const Next& next, double invocation_s) const;
  /// The figures in use, for a log line.
  std::string describe() const;

 private:
  double cost_locked(const Next& next) const;
  bool full_locked(const Next& next) const;

  const Params p_;
  mutable std::mutex mu_;
  double capture_rate_ = 0;  // 0: not measured yet
  double store_rate_ = 0;
  double store_latency_ = 0;  // from small puts
  double latency_bound_ = 0;  // the fastest put of any size
  double call_rtt_ = 0;
  // This task's recent deltas (decaying maxima).
  double delta_capture_s_ = 0;
  double delta_bytes_ = 0;
  bool delta_seen_ = false;
};

}  // namespace kappa::detail
