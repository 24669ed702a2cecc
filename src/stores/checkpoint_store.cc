#include "stores/checkpoint_store.h"

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
  // The value, and a view of it, in one object.
  struct Held final : ValueReader {
    explicit Held(std::string v) : value(std::move(v)), source(value) {}
    uint64_t size() const override { return source.size(); }
    void read(uint64_t offset, char* dst, size_t bytes) override {
      source.read(offset, dst, bytes);
    }
    std::string_view peek(uint64_t offset, size_t bytes) override {
      return source.peek(offset, bytes);
    }
    std::string value;
    MemorySource source;
  };
  return std::make_unique<Held>(std::move(*value));
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
