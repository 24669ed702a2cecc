// Microbenchmarks of the checkpoint path (issue 2's goals):
//   - maybe_checkpoint() when not due;
//   - snapshot (capture into a buffer) and restore (from a buffer) against
//     state size, next to memcpy of the same bytes;
//   - the arena allocator against glibc on an allocation-heavy workload;
//   - the size and cost of a small task's checkpoint.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <kappa/kappa.h>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "alloc_workload.h"
#include "runtime/arena.h"
#include "runtime/checkpoint_image.h"
#include "runtime/dirty_pages.h"
#include "runtime/key.h"
#include "runtime/runtime.h"
#include "stores/checkpoint_store.h"

using namespace kappa::detail;

namespace {

const std::string& key() {
  static const std::string k = [] {
    setenv("KAPPA_KEY", "kappa-bench-key-0123456789abcdef", 0);
    return load_key();
  }();
  return k;
}

// ---------------------------------------------------------------- maybe_checkpoint

void BM_MaybeCheckpointNotDue(benchmark::State& state) {
  CheckpointClock::configure(std::chrono::hours(1));
  auto body = [](benchmark::State& st) -> kappa::Task<void> {
    for (auto _ : st) co_await kappa::maybe_checkpoint();
  };
  auto task = body(state);
  task.handle().resume();
  CheckpointClock::stop();
}
BENCHMARK(BM_MaybeCheckpointNotDue);

void BM_EmptyLoopInACoroutine(benchmark::State& state) {
  auto body = [](benchmark::State& st) -> kappa::Task<void> {
    int64_t n = 0;
    for (auto _ : st) benchmark::DoNotOptimize(++n);
    co_return;
  };
  auto task = body(state);
  task.handle().resume();
}
BENCHMARK(BM_EmptyLoopInACoroutine);

// ---------------------------------------------------------------- snapshot / restore

// An arena holding `bytes` of state: half random, half zero in every 8 bytes,
// compressible about 2:1 like typical numeric state.
Arena* make_state(size_t bytes) {
  Arena* a = Arena::create(unsigned(Arena::free_slot()));
  // (Slots recycled by earlier benchmarks are reused: creation costs no faults.)
  auto* p = static_cast<unsigned char*>(a->allocate(bytes));
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 4);
    std::memset(p + i + 4, 0, 4);
  }
  a->task().root_frame = p;
  return a;
}

uint64_t image_raw_bytes(Arena* a) {
  uint64_t raw = 0;
  for (const Extent& e : a->snapshot_extents()) raw += e.bytes;
  return raw;
}

void BM_Memcpy(benchmark::State& state) {
  size_t n = size_t(state.range(0));
  std::unique_ptr<char[]> src(new char[n]), dst(new char[n]);
  std::memset(src.get(), 1, n);
  std::memset(dst.get(), 2, n);
  for (auto _ : state) {
    benchmark::DoNotOptimize(dst.get());
    std::memcpy(dst.get(), src.get(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

// memcpy into a freshly mapped region: the page faults a restore must take too.
void BM_MemcpyIntoFreshMapping(benchmark::State& state) {
  size_t n = size_t(state.range(0));
  std::unique_ptr<char[]> src(new char[n]);
  std::memset(src.get(), 1, n);
  for (auto _ : state) {
    void* dst = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    benchmark::DoNotOptimize(dst);
    std::memcpy(dst, src.get(), n);
    benchmark::ClobberMemory();
    munmap(dst, n);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_Snapshot(benchmark::State& state, Codec codec) {
  size_t n = size_t(state.range(0));
  Arena* a = make_state(n);
  uint64_t raw = image_raw_bytes(a);
  ImageBuffer buf;
  write_image(*a, codec, key(), buf);  // warm the buffer
  for (auto _ : state) write_image(*a, codec, key(), buf);
  state.SetBytesProcessed(int64_t(state.iterations() * raw));
  state.counters["image_bytes"] = double(buf.size());
  state.counters["ratio"] = double(raw) / double(buf.size());
  Arena::destroy(a);
}

// Restore into a slot whose pages are already mapped (a warm worker: the
// arena of its previous task is recycled), or into a fresh mapping (a new
// process: every page faults in).
void restore_bench(benchmark::State& state, Codec codec, Arena::Release release) {
  size_t n = size_t(state.range(0));
  Arena* a = make_state(n);
  uint64_t raw = image_raw_bytes(a);
  ImageBuffer buf;
  write_image(*a, codec, key(), buf);
  Arena::destroy(a, release);
  for (auto _ : state) Arena::destroy(restore_image(buf.view(), key()), release);
  state.SetBytesProcessed(int64_t(state.iterations() * raw));
}
void BM_Restore(benchmark::State& state, Codec codec) {
  restore_bench(state, codec, Arena::Release::kKeepMapping);
}
void BM_RestoreFreshMapping(benchmark::State& state, Codec codec) {
  restore_bench(state, codec, Arena::Release::kUnmap);
}

// Capture alone (no checksum, HMAC or compression): the arena's used extents
// copied into a buffer.
void BM_CaptureOnly(benchmark::State& state) {
  size_t n = size_t(state.range(0));
  Arena* a = make_state(n);
  std::vector<Extent> extents = a->snapshot_extents();
  uint64_t raw = 0;
  for (auto& e : extents) raw += e.bytes;
  std::unique_ptr<char[]> out(new char[raw]);
  std::memset(out.get(), 0, raw);
  for (auto _ : state) {
    extents = a->snapshot_extents();
    benchmark::DoNotOptimize(out.get());
    size_t pos = 0;
    for (auto& e : extents) {
      std::memcpy(out.get() + pos, reinterpret_cast<void*>(a->base() + e.offset), e.bytes);
      pos += e.bytes;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations() * raw));
  Arena::destroy(a);
}

void BM_HmacSha256(benchmark::State& state) {
  size_t n = size_t(state.range(0));
  std::vector<unsigned char> data(n, 3);
  unsigned char mac[32];
  unsigned len;
  for (auto _ : state)
    HMAC(EVP_sha256(), key().data(), int(key().size()), data.data(), n, mac, &len);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_Xxh3(benchmark::State& state) {
  size_t n = size_t(state.range(0));
  std::vector<unsigned char> data(n, 3);
  for (auto _ : state) benchmark::DoNotOptimize(XXH3_64bits(data.data(), n));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

// A checkpoint of a state of range(0) bytes of which range(1) parts in
// 10,000 changed since the previous one: with range(2) == 0, whole pages
// spread evenly over it (each changed page is one 8-byte write: the worst
// case for page-grained tracking), with 1 one contiguous block: a full image (method < 0), or a
// delta from dirty pages tracked by write protection or by hashes. Only the checkpoint is timed
// (collecting the changes, capturing, sealing; no compression: the fastest full image); the writes,
// which under write protection pay a fault per page, are reported apart as write_us.
void BM_Checkpoint(benchmark::State& state, int method) {
  size_t n = size_t(state.range(0));
  Arena* a = make_state(n);
  auto* p = static_cast<unsigned char*>(a->task().root_frame);
  std::unique_ptr<DirtyPages> dirty;
  if (method >= 0) {
    dirty = DirtyPages::create(*a, DirtyMethod(method));
    dirty->capture_all(a->snapshot_extents());
  }
  ImageBuffer buf;
  ImageLink parent = write_image(*a, Codec::kNone, key(), buf);  // the first, full image
  size_t pages = n / kPageBytes;
  size_t changed = std::max<size_t>(1, size_t(uint64_t(pages) * uint64_t(state.range(1)) / 10000));
  bool block = state.range(2) == 1;
  size_t stride = block ? 1 : pages / changed;
  size_t first = block ? (pages - changed) / 2 : 0;
  using Clock = std::chrono::steady_clock;
  double write_s = 0;
  uint64_t round = 0;
  for (auto _ : state) {
    ++round;
    auto t0 = Clock::now();
    for (size_t i = 0; i < changed; ++i) {
      uint64_t v = round * 0x9E3779B97F4A7C15ull + i;
      std::memcpy(p + (first + i * stride) * kPageBytes + (round % 512) * 8, &v, 8);
    }
    auto t1 = Clock::now();
    if (method < 0) {
      write_image(*a, Codec::kNone, key(), buf);
    } else {
      Delta d{parent, dirty->collect(a->snapshot_extents())};
      parent = write_image(*a, Codec::kNone, key(), buf, &d);
    }
    auto t2 = Clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
    write_s += std::chrono::duration<double>(t1 - t0).count();
  }
  state.counters["image_bytes"] = double(buf.size());
  state.counters["changed_pages"] = double(changed);
  state.counters["write_us"] = write_s * 1e6 / double(std::max<int64_t>(1, state.iterations()));
  dirty.reset();
  Arena::destroy(a, Arena::Release::kUnmap);
}

void checkpoint_grid(benchmark::internal::Benchmark* b) {
  for (int64_t s : {int64_t(16) << 20, int64_t(256) << 20, int64_t(1) << 30})
    for (int64_t per10k : {10, 100, 1000, 10000}) {
      b->Args({s, per10k, 0});
      if (per10k <= 100) b->Args({s, per10k, 1});
    }
  b->Unit(benchmark::kMillisecond)->UseManualTime();
}
BENCHMARK_CAPTURE(BM_Checkpoint, full, -1)->Apply(checkpoint_grid);
BENCHMARK_CAPTURE(BM_Checkpoint, delta_wp, int(DirtyMethod::kWriteProtect))->Apply(checkpoint_grid);
BENCHMARK_CAPTURE(BM_Checkpoint, delta_hash, int(DirtyMethod::kHash))->Apply(checkpoint_grid);

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t s : {int64_t(4) << 10, int64_t(64) << 10, int64_t(1) << 20, int64_t(16) << 20,
                    int64_t(256) << 20, int64_t(1) << 30})
    b->Arg(s);
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_Memcpy)->Apply(sizes);
BENCHMARK(BM_MemcpyIntoFreshMapping)->Apply(sizes);
BENCHMARK(BM_CaptureOnly)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Snapshot, none, Codec::kNone)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Snapshot, lz4, Codec::kLz4)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Snapshot, zstd, Codec::kZstd)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Restore, none, Codec::kNone)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Restore, lz4, Codec::kLz4)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Restore, zstd, Codec::kZstd)->Apply(sizes);
BENCHMARK_CAPTURE(BM_RestoreFreshMapping, none, Codec::kNone)->Apply(sizes);
BENCHMARK(BM_HmacSha256)->Arg(int64_t(256) << 20)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Xxh3)->Arg(int64_t(256) << 20)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------- allocator

void BM_MapWorkload_Glibc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(kappa::bench::build_and_tear_down_map(1'000'000));
}

void BM_MapWorkload_Arena(benchmark::State& state) {
  Arena* a = Arena::create(unsigned(Arena::free_slot()));
  for (auto _ : state) {
    ArenaScope scope(a);
    benchmark::DoNotOptimize(kappa::bench::build_and_tear_down_map(1'000'000));
  }
  Arena::destroy(a);
}
BENCHMARK(BM_MapWorkload_Glibc)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_MapWorkload_Arena)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

// ---------------------------------------------------------------- small task checkpoint

// A task with a few live locals, suspended at checkpoint(); each iteration
// writes its image to a file store, as the solo driver does at a pause point.
void BM_SmallTaskCheckpoint(benchmark::State& state, Codec codec) {
  Arena* a = Arena::create(unsigned(Arena::free_slot()));
  kappa::Task<int>::handle_type h;
  {
    ArenaScope scope(a);
    auto task = []() -> kappa::Task<int> {
      int counter = 41;
      double weight = 0.5;
      std::string name = "small task";
      co_await kappa::checkpoint();
      co_return counter + int(weight) + int(name.size());
    }();
    h = task.release();
    a->task().root_frame = h.address();
    h.resume();
  }
  char dir[] = "/tmp/kappa-bench-XXXXXX";
  auto store = open_store(mkdtemp(dir));
  ImageBuffer buf;
  const bool to_store = state.range(0) != 0;
  uint64_t n = 0;
  for (auto _ : state) {
    write_image(*a, codec, key(), buf);
    if (to_store) {  // a new key each time, the previous one removed: as the driver does
      store->put("ckpt-" + std::to_string(++n), buf.view());
      store->remove("ckpt-" + std::to_string(n - 1));
    }
  }
  store->remove("ckpt-" + std::to_string(n));
  state.counters["image_bytes"] = double(buf.size());
  rmdir(dir);
  Arena::destroy(a);
}
// Arg 0: image only; 1: image written to a file store.
BENCHMARK_CAPTURE(BM_SmallTaskCheckpoint, none, Codec::kNone)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("store")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SmallTaskCheckpoint, lz4, Codec::kLz4)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("store")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SmallTaskCheckpoint, zstd, Codec::kZstd)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("store")
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  runtime_init();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
