// ScopedStore: one job's view of a store that jobs may share. Every key gets
// the job's scope as its first path element, so two jobs never read, replace
// or remove each other's images.
#include "stores/checkpoint_store.h"

namespace kappa::detail {
namespace {

class ScopedStore final : public CheckpointStore {
 public:
  ScopedStore(std::unique_ptr<CheckpointStore> base, const std::string& scope)
      : base_(std::move(base)), prefix_(scope + "/") {}

  void put(const std::string& key, std::string_view bytes) override {
    base_->put(prefix_ + key, bytes);
  }
  std::optional<std::string> get(const std::string& key) override {
    return base_->get(prefix_ + key);
  }
  std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                         const HeadCheck& check) override {
    return base_->get_checked(prefix_ + key, head_bytes, check);
  }
  std::unique_ptr<ValueWriter> put_stream(const std::string& key) override {
    return base_->put_stream(prefix_ + key);
  }
  std::unique_ptr<ValueReader> open_value(const std::string& key) override {
    return base_->open_value(prefix_ + key);
  }
  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys = base_->list(prefix_ + prefix);
    for (std::string& k : keys) k.erase(0, prefix_.size());
    return keys;
  }
  void remove(const std::string& key) override { base_->remove(prefix_ + key); }
  void move(const std::string& from, const std::string& to) override {
    base_->move(prefix_ + from, prefix_ + to);
  }
  void remove_prefix(const std::string& prefix) override { base_->remove_prefix(prefix_ + prefix); }
  std::string url() const override {
    return base_->url() + "/" + prefix_.substr(0, prefix_.size() - 1);
  }

 private:
  std::unique_ptr<CheckpointStore> base_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<CheckpointStore> scope_store(std::unique_ptr<CheckpointStore> base,
                                             const std::string& scope) {
  return std::make_unique<ScopedStore>(std::move(base), scope);
}

}  // namespace kappa::detail
