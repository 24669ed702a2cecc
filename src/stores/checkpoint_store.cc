#include "stores/checkpoint_store.h"

#include <cstring>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

class BufferedWriter final : public ValueWriter {
 public:
  BufferedWriter(CheckpointStore& store, const std::string& key) : store_(store), key_(key) {}
  void write(std::string_view bytes) override { value_.append(bytes); }
  void commit() override { store_.put(key_, value_); }

 private:
  CheckpointStore& store_;
  std::string key_, value_;
};

class MemoryReader final : public ValueReader {
 public:
  explicit MemoryReader(std::string value) : value_(std::move(value)) {}
  uint64_t size() const override { return value_.size(); }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    check_read_range(offset, bytes, value_.size(), "a value read whole");
    std::memcpy(dst, value_.data() + offset, bytes);
  }

 private:
  std::string value_;
};

}  // namespace

void check_read_range(uint64_t offset, size_t bytes, uint64_t size, const std::string& what) {
  if (offset <= size && bytes <= size - offset) return;
  throw Error("cannot read " + std::to_string(bytes) + " bytes at offset " +
              std::to_string(offset) + " of " + what + ": past the end of its " +
              std::to_string(size) + " bytes");
}

std::unique_ptr<ValueWriter> CheckpointStore::put_stream(const std::string& key) {
  return std::make_unique<BufferedWriter>(*this, key);
}

std::unique_ptr<ValueReader> CheckpointStore::open_value(const std::string& key) {
  std::optional<std::string> value = get(key);
  if (!value) return nullptr;
  return std::make_unique<MemoryReader>(std::move(*value));
}

void CheckpointStore::move(const std::string& from, const std::string& to) {
  std::optional<std::string> value = get(from);
  if (!value) {
    if (get(to)) return;  // moved already
    throw Error("cannot move " + from + " to " + to + " in " + url() + ": neither exists");
  }
  put(to, *value);
  remove(from);
}

}  // namespace kappa::detail
