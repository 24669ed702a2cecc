#include "worker/solo_driver.h"

#include <unistd.h>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "kappa/pause.h"
#include "kappa/spawn.h"
#include "runtime/key.h"
#include "runtime/runtime.h"
#include "runtime/task_host.h"

namespace kappa::detail {
namespace {

constexpr const char* kImagePrefix = "ckpt-";

std::string image_key(uint64_t n) {
  char name[40];
  std::snprintf(name, sizeof name, "%s%012" PRIu64 ".kpk", kImagePrefix, n);
  return name;
}

}  // namespace

SoloDriver::SoloDriver(SoloOptions options) : options_(std::move(options)), key_(load_key()) {
  runtime_init();
  progress_ = isatty(STDERR_FILENO);
  started_ = last_progress_ = std::chrono::steady_clock::now();
  CheckpointClock::configure(std::chrono::duration<double>(options_.checkpoint_interval));
}

SoloDriver::~SoloDriver() = default;

SoloOutcome SoloDriver::start(Handler handler, const nlohmann::json& event) {
  store_ = open_store(options_.store_url);
  if (!store_->list(kImagePrefix).empty())
    throw Error(store_->url() +
                " already holds checkpoints of a job: resume it (APP resume) or use an empty "
                "directory");
  Arena* arena = start_task(&trampoline<Handler, nlohmann::json>,
                            reinterpret_cast<uint64_t>(handler), {encode(event)});
  persist(arena);  // the job's initial state is durable before it runs
  return run(arena);
}

SoloOutcome SoloDriver::resume() {
  // A job to resume is in a directory that exists: never create one.
  store_ = open_store(options_.store_url, {.create = false});
  std::vector<std::string> keys = store_->list(kImagePrefix);
  if (keys.empty())
    throw Error("no checkpoint to resume in " + store_->url() + " (has the job finished?)");
  last_key_ = keys.back();
  Arena* arena;
  try {
    // Read by ranges: the header and footer first (the file may be
    // anything, a huge file among them), then the payload into place.
    std::unique_ptr<ValueReader> image = store_->open_value(last_key_);
    if (!image) throw Error("checkpoint " + last_key_ + " vanished from " + store_->url());
    ByteSource* links[] = {image.get()};
    arena = restore_chain(links, key_);
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
  // Streamed to the store: no buffer of the image's size.
  std::string key = image_key(t.images);
  std::unique_ptr<ValueWriter> writer = store_->put_stream(key);
  CountingSink counted(*writer);
  write_image(*arena, options_.codec, key_, counted);
  writer->commit();
  if (!last_key_.empty() && last_key_ != key) store_->remove(last_key_);
  last_key_ = key;
  auto now = std::chrono::steady_clock::now();
  if (progress_ && now - last_progress_ >= std::chrono::seconds(1)) {
    last_progress_ = now;
    std::fprintf(stderr, "\rkappa: %.1f s, %" PRIu64 " checkpoints, last %zu bytes ",
                 std::chrono::duration<double>(now - started_).count(), t.images, counted.bytes());
  }
}

SoloOutcome SoloDriver::run(Arena* arena) {
  SoloOutcome out;
  while (!resume_task(arena)) {
    PendingCall& call = pending_call(arena);
    if (call.op != Op::kCheckpoint) {
      deliver(arena, {}, "this call needs a coordinator: run the job with `run`, not `solo`");
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
  TaskOutcome result = finish_task(arena);
  if (result.failed) {
    out.kind = SoloOutcome::Kind::kFailed;
    out.error = result.error;
  } else {
    out.value = decode<nlohmann::json>(result.value);
  }
  if (!last_key_.empty()) store_->remove(last_key_);
  last_key_.clear();
  if (progress_ && last_progress_ != started_) std::fputc('\n', stderr);
  return out;
}

}  // namespace kappa::detail
