#include "runtime/solo_driver.h"

#include <unistd.h>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "kappa/pause.h"
#include "runtime/key.h"
#include "runtime/runtime.h"

namespace kappa::detail {
namespace {

constexpr const char* kImagePrefix = "ckpt-";

std::string image_key(uint64_t n) {
  char name[40];
  std::snprintf(name, sizeof name, "%s%012" PRIu64 ".kpk", kImagePrefix, n);
  return name;
}

using RootHandle = Task<nlohmann::json>::handle_type;

}  // namespace

SoloDriver::SoloDriver(SoloOptions options)
    : options_(std::move(options)), store_(open_store(options_.store_url)), key_(load_key()) {
  runtime_init();
  progress_ = isatty(STDERR_FILENO);
  started_ = last_progress_ = std::chrono::steady_clock::now();
  CheckpointClock::configure(std::chrono::duration<double>(options_.checkpoint_interval));
}

SoloDriver::~SoloDriver() = default;

SoloOutcome SoloDriver::start(Handler handler, const nlohmann::json& event) {
  if (!store_->list(kImagePrefix).empty())
    throw Error(store_->url() +
                " already holds checkpoints of a job: resume it (APP resume) or use an empty "
                "directory");
  int slot = Arena::free_slot();
  if (slot < 0) throw Error("no free task arena slot in this process");
  Arena* arena = Arena::create(unsigned(slot));
  {
    ArenaScope scope(arena);
    // Copy the event into the arena: the handler's frame keeps it.
    Task<nlohmann::json> task = handler(nlohmann::json(event));
    arena->task().root_frame = task.release().address();
  }
  arena->task().suspended_frame = arena->task().root_frame;
  persist(arena);  // the job's initial state is durable before it runs
  return run(arena);
}

SoloOutcome SoloDriver::resume() {
  std::vector<std::string> keys = store_->list(kImagePrefix);
  if (keys.empty())
    throw Error("no checkpoint to resume in " + store_->url() + " (has the job finished?)");
  last_key_ = keys.back();
  std::optional<std::string> image = store_->get(last_key_);
  if (!image) throw Error("checkpoint " + last_key_ + " vanished from " + store_->url());
  Arena* arena;
  try {
    arena = restore_image(*image, key_);
  } catch (const CheckpointRejected& e) {
    throw CheckpointRejected(store_->url() + "/" + last_key_ + ": " + e.what());
  }
  // The only call a solo task can wait on is a checkpoint, whose result is
  // empty: nothing to deliver before resuming.
  return run(arena);
}

void SoloDriver::persist(Arena* arena) {
  TaskState& t = arena->task();
  ++t.images;
  write_image(*arena, options_.codec, key_, buffer_);
  std::string key = image_key(t.images);
  store_->put(key, buffer_.view());
  if (!last_key_.empty() && last_key_ != key) store_->remove(last_key_);
  last_key_ = key;
  auto now = std::chrono::steady_clock::now();
  if (progress_ && now - last_progress_ >= std::chrono::seconds(1)) {
    last_progress_ = now;
    std::fprintf(stderr, "\rkappa: %.1f s, %" PRIu64 " checkpoints, last %zu bytes ",
                 std::chrono::duration<double>(now - started_).count(), t.images, buffer_.size());
  }
}

SoloOutcome SoloDriver::run(Arena* arena) {
  SoloOutcome out;
  TaskState& t = arena->task();
  auto root = RootHandle::from_address(t.root_frame);
  for (;;) {
    auto next = std::coroutine_handle<>::from_address(t.suspended_frame);
    t.suspended_frame = nullptr;
    t.pending = nullptr;
    {
      ArenaScope scope(arena);
      next.resume();
    }
    if (root.done()) break;
    if (!t.pending)
      throw Error(
          "the task suspended outside a kappa pause point (it awaited something that is "
          "not a kappa awaitable)");
    auto* call = static_cast<PendingCall*>(t.pending);
    if (call->op != Op::kCheckpoint) {
      ArenaScope scope(arena);
      call->error = "this call needs a coordinator: run the job with `run`, not `solo`";
      continue;
    }
    persist(arena);
    CheckpointClock::checkpoint_taken();
    ++out.images;
    if (options_.max_checkpoints >= 0 && int64_t(out.images) >= options_.max_checkpoints) {
      out.kind = SoloOutcome::Kind::kStopped;
      out.last_key = last_key_;
      return out;  // the process exits; the arena goes with it
    }
  }
  // The result lives in the arena; copy it out with no arena current.
  std::optional<nlohmann::json> result;
  try {
    ArenaScope scope(arena);
    result.emplace(root.promise().result());
  } catch (const std::exception& e) {  // handlers run after the scope has ended
    out.kind = SoloOutcome::Kind::kFailed;
    out.error = e.what();
  }
  if (result) out.value = *result;
  {
    ArenaScope scope(arena);
    result.reset();
    root.destroy();
  }
  Arena::destroy(arena);
  if (!last_key_.empty()) store_->remove(last_key_);
  last_key_.clear();
  if (progress_ && last_progress_ != started_) std::fputc('\n', stderr);
  return out;
}

}  // namespace kappa::detail
