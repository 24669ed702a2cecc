// Process address-layout identity, which decides whether a checkpoint can be
// restored in this process (DESIGN.md section 2).
//
// A checkpoint holds raw pointers into the executable, libstdc++ and libc
// (vtables, coroutine resume functions, std::function thunks). It can only be
// resumed by the same binary with every shared object at the same address.
// Kappa makes that so by running tasks with ASLR disabled for the process
// (personality ADDR_NO_RANDOMIZE: set by re-executing itself, or inherited from
// the local backend's spawning thread, see app_main.cc), and
// checks it: every checkpoint records the binary's build id and a fingerprint
// of the layout, and restore refuses a mismatch.
#pragma once

#include <cstdint>
#include <string>

namespace kappa::detail {

/// Re-executes the process once with ADDR_NO_RANDOMIZE unless it already runs
/// that way. Call first thing in main(). If the personality cannot be changed
/// (seccomp, containers) it warns once and returns: checkpoints then restore
/// only into processes that happen to share the layout, and restore says so.
/// KAPPA_ALLOW_ASLR=1 skips the re-exec.
void ensure_fixed_layout(char** argv);

/// True when the kernel started the dynamic loader, which then loaded the
/// program (`ld-linux-x86-64.so.2 --library-path DIR APP`, as a Lambda
/// package's bootstrap does): /proc/self/exe is then the loader, not the app.
bool started_through_loader();

/// True when this process runs with ADDR_NO_RANDOMIZE.
bool layout_is_fixed();

/// The program's GNU build id as lowercase hex (falls back to a hash of the
/// program's file when it has no build-id note), the app's also when it was
/// started through the loader. Computed once.
const std::string& build_id();

/// Hash of the load address and name of every shared object loaded at startup,
/// and of the calling thread's TLS block. Computed once, on first call, which
/// must happen on the thread that runs tasks (the runtime calls it at start).
uint64_t layout_fingerprint();

}  // namespace kappa::detail
