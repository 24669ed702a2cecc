// Hex encoding and random hex strings (build ids, keys, job ids, tokens).
#pragma once

#include <cstddef>
#include <string>

namespace kappa::detail {

/// Lowercase hex of n bytes.
std::string to_hex(const void* data, size_t n);

/// `bytes` random bytes from getrandom(2), as hex. Throws kappa::Error on failure.
std::string random_hex(size_t bytes);

}  // namespace kappa::detail
