// Byte streams: where a large value is written in pieces, and where one is
// read from by ranges, so that neither side needs a buffer of its whole size.
// Checkpoint images are written to a ByteSink and restored from a
// ByteSource (runtime/checkpoint_image.h); a store's ValueWriter and
// ValueReader are these (stores/checkpoint_store.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "kappa/error.h"

namespace kappa::detail {

/// Takes bytes in order. Used by one thread at a time.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  /// Appends `bytes`. Throws kappa::Error.
  virtual void write(std::string_view bytes) = 0;
};

/// Passes bytes on to another sink and counts them.
class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(ByteSink& to) : to_(to) {}
  void write(std::string_view bytes) override {
    to_.write(bytes);
    bytes_ += bytes.size();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& to_;
  uint64_t bytes_ = 0;
};

/// Gives the bytes of a value of a known size by ranges. Used by one thread
/// at a time.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  /// The value's size in bytes.
  virtual uint64_t size() const = 0;
  /// Reads `bytes` bytes at `offset` into `dst`; throws kappa::Error if the
  /// range is not inside the value or cannot be read whole.
  virtual void read(uint64_t offset, char* dst, size_t bytes) = 0;
  /// The range's bytes in place, if the source holds them in memory (then
  /// valid as long as the source); empty otherwise. Spares readers a copy.
  virtual std::string_view peek(uint64_t offset, size_t bytes) {
    (void)offset, (void)bytes;
    return {};
  }
};

/// A source over bytes in memory (which must outlive it).
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    std::memcpy(dst, range(offset, bytes).data(), bytes);
  }
  std::string_view peek(uint64_t offset, size_t bytes) override { return range(offset, bytes); }

 private:
  std::string_view range(uint64_t offset, size_t bytes) const {
    if (offset > bytes_.size() || bytes > bytes_.size() - offset)
      throw Error("read of " + std::to_string(bytes) + " bytes at " + std::to_string(offset) +
                  " past the end of a " + std::to_string(bytes_.size()) + "-byte value");
    return bytes_.substr(size_t(offset), bytes);
  }
  std::string_view bytes_;
};

}  // namespace kappa::detail
