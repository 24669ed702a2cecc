// Transparent huge pages for large buffers that are about to be filled.
#pragma once

#include <cstddef>
#include <string>

namespace kappa::detail {

/// Asks the kernel to back the 2 MiB-aligned part of `s`'s capacity with
/// transparent huge pages (Debian's default "madvise" mode grants them on
/// request), when that capacity is 8 MiB or more: a large value received or
/// read into fresh memory otherwise takes a page fault per 4 KiB, which here
/// (a VM) costs more than the copy itself (~540 ms for 100 MiB, against
/// ~25 ms with one fault per 2 MiB). Call it after reserve() and before the
/// bytes are written.
void prefer_huge_pages(std::string& s);
/// The same for `bytes` of fresh memory at `p`.
void prefer_huge_pages(void* p, size_t bytes);

}  // namespace kappa::detail
