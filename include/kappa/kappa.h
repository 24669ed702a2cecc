// <kappa/kappa.h>: the whole public API of Kappa for C++. An application
// includes this header and no other Kappa header (DESIGN.md section 3).
//
// Kappa runs ordinary C++20 coroutines on time-bounded workers and checkpoints
// them transparently at pause points (DESIGN.md). Start with:
//   - kappa::Task<T>             (kappa/task.h)      a pausable function
//   - kappa::checkpoint() and
//     kappa::maybe_checkpoint()  (kappa/pause.h)     pause points
//   - kappa::spawn, map_spawn,
//     wait_all, Future<T>,
//     make_queue, Queue<T>       (kappa/spawn.h)     concurrency
//   - kappa::put, kappa::get     (kappa/data.h)      output written exactly once
//   - kappa::encode/decode       (kappa/serialize.h) values that cross tasks
//   - kappa::Error, TaskFailed   (kappa/error.h)     what Kappa throws
//   - KAPPA_MAIN(handler)        (kappa/main.h)      the application entry point
#pragma once

#include "kappa/data.h"
#include "kappa/error.h"
#include "kappa/main.h"
#include "kappa/pause.h"
#include "kappa/serialize.h"
#include "kappa/spawn.h"
#include "kappa/task.h"
