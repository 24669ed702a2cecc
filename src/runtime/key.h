// The per-deployment secret that authenticates checkpoints (HMAC-SHA256,
// DESIGN.md section 8). A forged checkpoint is code execution, so a worker
// only restores images signed with this key.
#pragma once

#include <string>

namespace kappa::detail {

/// Loads the key, in order of precedence, from:
///   KAPPA_KEY       the secret itself (at least 16 characters);
///   KAPPA_KEY_FILE  a file holding it;
///   $XDG_CONFIG_HOME/kappa/key or ~/.config/kappa/key, created on first use
///                   with 32 random bytes (hex) and mode 0600.
/// Throws kappa::Error when a configured source is unusable.
std::string load_key();

}  // namespace kappa::detail
