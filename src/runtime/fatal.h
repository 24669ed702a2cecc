// fatal(): report an unrecoverable runtime invariant violation and abort.
//
// Used where throwing is impossible (inside free(), operator delete, signal
// context). Formats into a stack buffer and writes to stderr directly: it
// never allocates.
#pragma once

namespace kappa::detail {

[[noreturn]] void fatal(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace kappa::detail
