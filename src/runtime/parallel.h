// parallel_for: spreads independent pieces of one big job (sealing or
// verifying a large checkpoint image) over the machine's cores.
//
// A small pool of helper threads is created on first use and lives for the
// process. Helpers never run with a task arena current, so callers must not
// either (the checkpoint path runs with no arena current).
#pragma once

#include <cstddef>
#include <functional>

namespace kappa::detail {

/// Calls fn(0) .. fn(n-1), on the calling thread and the helpers, and returns
/// when all calls have returned. The first exception thrown is rethrown.
void parallel_for(size_t n, const std::function<void(size_t)>& fn);

}  // namespace kappa::detail
