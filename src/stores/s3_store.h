// The s3://BUCKET/PREFIX store's knobs, for tests and benchmarks. Everything
// else opens it through open_store() (checkpoint_store.h); the contract is
// at the top of s3_store.cc.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "stores/checkpoint_store.h"

namespace kappa::detail {

struct S3Tuning {
  /// Values of this size and above go up as multipart uploads...
  size_t multipart_threshold = size_t(16) << 20;
  /// ...in parts of this size (the last one shorter; S3 wants at least 5 MiB).
  size_t part_size = size_t(8) << 20;
  /// Parts in flight at once, each over a connection of its own.
  int parallel_parts = 4;
  /// Attempts per request (the first one included) before a failure that may
  /// pass (5xx, throttling, a reset or timed-out connection) is reported.
  int max_attempts = 8;
  /// Backoff before attempt n+1: base_delay * 2^(n-1), at most max_delay,
  /// half of it fixed and half random (jitter).
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
  /// Keys per ListObjectsV2 page (S3 returns at most 1000).
  int list_page_size = 1000;
  /// open_value fetches a value's first bytes with its size and version, in
  /// one ranged GET: a value up to this size is opened and read with one
  /// request. 0: a HEAD, and nothing fetched before the first read.
  size_t open_bytes = size_t(1) << 20;
  /// A reader (open_value) whose reads follow one another fetches ahead in
  /// ranges of this size (fewer requests)...
  size_t read_ahead_bytes = size_t(8) << 20;
  /// ...this many at once, each over a connection of its own (0: none). A
  /// reader holds up to their product in memory.
  int read_ahead_ranges = 4;
  /// A transfer slower than 1 KiB/s for this long is abandoned (and retried).
  std::chrono::seconds stall_timeout{30};
};

/// Opens s3://`rest` (rest: "BUCKET" or "BUCKET/PREFIX") with `tuning`.
std::unique_ptr<CheckpointStore> open_s3_store(const std::string& rest, const StoreOptions& o,
                                               const S3Tuning& tuning);

}  // namespace kappa::detail
