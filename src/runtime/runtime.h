// Process-wide runtime state of a process that runs tasks: one-time setup and
// the checkpoint clock behind maybe_checkpoint().
#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace kappa::detail {

/// One-time setup before the first task runs in this process, on the thread
/// that will run tasks. Computes the build id and layout fingerprint, and
/// initializes libc state that is otherwise allocated lazily on first use
/// (stdio buffers, the time zone): allocated inside a task, it would live in
/// the task's arena and dangle once the arena is released.
void runtime_init();

/// Decides when maybe_checkpoint() is due: `interval` after the last
/// checkpoint, or `margin` before the deadline, whichever comes first.
/// A background thread raises g_checkpoint_due at that moment, so the check in
/// the task is a single relaxed load.
class CheckpointClock {
 public:
  using Clock = std::chrono::steady_clock;
  /// The margin before the deadline, asked again while the task runs (every
  /// kMarginPoll) since it grows with the task's state: called on the clock's
  /// thread, and by configure() and checkpoint_taken() on theirs, with the
  /// clock's lock held: it must not call the clock.
  using MarginSource = std::function<std::chrono::duration<double>()>;
  static constexpr std::chrono::milliseconds kMarginPoll{10};
  /// Starts (or reconfigures) the clock. interval <= 0: always due. With a
  /// `margin_source`, it replaces `margin`.
  static void configure(std::chrono::duration<double> interval,
                        std::optional<Clock::time_point> deadline = std::nullopt,
                        std::chrono::duration<double> margin = std::chrono::seconds(2),
                        MarginSource margin_source = {});
  /// Called after each checkpoint: clears the due flag and restarts the interval.
  /// After hand_over_now() the flag stays raised.
  static void checkpoint_taken();
  /// Makes the deadline now, for good: every maybe_checkpoint() from here on
  /// is due, and handover_requested() says so. Async-signal-safe (a platform's
  /// notice that the process is about to end arrives as a signal: Slurm's
  /// SIGUSR1).
  static void hand_over_now();
  static bool handover_requested();
  /// Stops the background thread (tests; process exit does it implicitly).
  static void stop();
};

}  // namespace kappa::detail
