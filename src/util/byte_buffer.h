// A growable byte buffer that does not zero what it allocates: for buffers
// that are written whole before they are read (checkpoint images, message
// frames) and reused, so that large ones neither fault in fresh pages nor
// get cleared every time.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

#include "util/huge_pages.h"

namespace kappa::detail {

class ByteBuffer {
 public:
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  std::string_view view() const { return {data_.get(), size_}; }
  /// Ensures capacity for n bytes, keeping the first size() bytes.
  void reserve(size_t n) {
    if (n <= capacity_) return;
    size_t cap = capacity_ ? capacity_ : 4096;
    while (cap < n) cap *= 2;
    std::unique_ptr<char[]> fresh(new char[cap]);
    // A large image written into fresh memory would otherwise fault in every
    // 4 KiB: 1.6 s for a 256 MiB image in a new worker here, against ~0.1 s.
    prefer_huge_pages(fresh.get(), cap);
    if (size_) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    capacity_ = cap;
  }
  /// Sets the size to n; bytes beyond the old size are left unset.
  void resize(size_t n) {
    reserve(n);
    size_ = n;
  }
  /// Frees the memory.
  void release() {
    data_.reset();
    size_ = capacity_ = 0;
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace kappa::detail
