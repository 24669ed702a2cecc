// SoloDriver: runs a job's handler as one task in this process, persisting a
// checkpoint at every pause point, and resumes it from the latest checkpoint
// in a later process (`APP solo` / `APP resume`). No coordinator: spawn and
// queues are not available here, only pause points. It is the single-process
// driver for tests and demos: kill the process anywhere, resume, and the task
// continues from its last pause point.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "kappa/main.h"
#include "runtime/checkpoint_image.h"
#include "stores/checkpoint_store.h"

namespace kappa::detail {

struct SoloOptions {
  std::string store_url;           // where images go (file://DIR or DIR)
  Codec codec = Codec::kLz4;       // image compression
  double checkpoint_interval = 1;  // seconds between maybe_checkpoint()s that are due
  int64_t max_checkpoints = -1;    // >= 0: stop after persisting this many
};

struct SoloOutcome {
  enum class Kind { kDone, kFailed, kStopped } kind = Kind::kDone;
  nlohmann::json value;  // kDone: the handler's result
  std::string error;     // kFailed: what escaped the task
  uint64_t images = 0;   // images persisted by this process
  std::string last_key;  // kStopped: the image to resume from
};

class SoloDriver {
 public:
  explicit SoloDriver(SoloOptions options);
  ~SoloDriver();

  /// Runs handler(event) from the start. Throws kappa::Error if the store
  /// already holds a checkpoint (resume it instead) or on I/O failure.
  SoloOutcome start(Handler handler, const nlohmann::json& event);
  /// Continues from the latest checkpoint in the store. Throws kappa::Error
  /// (CheckpointRejected for a bad image) when there is nothing to resume.
  SoloOutcome resume();

 private:
  SoloOutcome run(Arena* arena);
  void persist(Arena* arena);

  SoloOptions options_;
  std::unique_ptr<CheckpointStore> store_;  // opened by start() or resume()
  std::string key_;
  std::string last_key_;
  // Progress line on a terminal: updated at most once a second.
  bool progress_ = false;
  std::chrono::steady_clock::time_point started_, last_progress_;
};

}  // namespace kappa::detail
