// Strings that are written whole as soon as they are made: values read from a
// file or a socket straight into the string a store returns.
#pragma once

#include <cstddef>
#include <string>

namespace kappa::detail {

/// A string of `size` bytes whose contents are indeterminate until the
/// caller writes them, as std::make_unique_for_overwrite's: the caller must
/// write every byte before any is read. Unlike std::string(size, '\0'), its
/// memory is not zero-filled first: a pass over the whole value that costs
/// about a third of what reading it from the page cache does (1 MiB,
/// bench/store_bench.py). From 8 MiB up, it asks for huge pages
/// (prefer_huge_pages).
std::string string_for_overwrite(size_t size);

}  // namespace kappa::detail
