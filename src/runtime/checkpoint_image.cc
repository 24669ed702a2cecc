#include "runtime/checkpoint_image.h"

#include <lz4frame.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/mman.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "kappa/pause.h"
#include "runtime/dirty_pages.h"
#include "runtime/layout.h"
#include "runtime/parallel.h"

namespace kappa::detail {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the image format is little-endian");

constexpr char kMagic[8] = {'K', 'A', 'P', 'P', 'A', 'C', 'K', 'P'};
constexpr unsigned kSegmentShift = 22;  // 4 MiB segments
constexpr size_t kSegmentBytes = size_t{1} << kSegmentShift;
constexpr size_t kChunkBytes = size_t{256} << 10;  // copy+hash unit, stays in L2
constexpr size_t kChecksumBytes = 8;
constexpr size_t kHmacBytes = 32;
constexpr int kZstdLevel = -1;  // zstd's fast mode: level 1's ratio here, at 1.4x its speed
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // Linux 5.14; older kernels return EINVAL
#endif
// Payloads at least this large are compressed with zstd's worker threads.
constexpr size_t kZstdParallelBytes = size_t{8} << 20;

struct ImageHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint32_t codec;
  uint32_t build_id_len;
  char build_id[64];
  uint64_t layout_fingerprint;
  uint64_t arena_base;
  uint64_t seqno;
  uint64_t suspended_frame;
  uint64_t root_frame;
  uint32_t pending_op;
  uint32_t extent_count;
  uint64_t raw_bytes;
  uint64_t created_unix_ns;
  uint8_t nonce[16];
  uint32_t segment_shift;
  // The number of deltas between this image and its chain's full image, and
  // the image this one is a delta of (all zero for a full image).
  uint32_t chain_depth;
  uint8_t parent_nonce[16];
};
static_assert(std::is_trivially_copyable_v<ImageHeader> && sizeof(ImageHeader) == 192);

// Last in the image: what is known only once the payload has been written.
struct ImageFooter {
  uint64_t payload_bytes;
  uint32_t segment_count;
  uint32_t reserved;
  uint64_t checksum;
  uint8_t hmac[kHmacBytes];
};
static_assert(sizeof(ImageFooter) == 56);
// The footer's fields covered by the checksum (those before it).
constexpr size_t kFooterFields = offsetof(ImageFooter, checksum);

// A payload segment's Poly1305 tag. It detects damage as well as forgery:
// a separate checksum per segment (XXH3, up to format 3) only told the two
// apart in the error message, for a fifth of a full checkpoint's time.
struct SegmentDigest {
  uint8_t tag[16];
};
static_assert(sizeof(SegmentDigest) == 16);

[[noreturn]] void reject(const std::string& why) {
  throw CheckpointRejected("checkpoint rejected: " + why);
}

uint64_t unix_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

// ---- MACs (OpenSSL 3 EVP_MAC; algorithms fetched once) ----

EVP_MAC* fetch_mac(const char* name) {
  static EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  static EVP_MAC* poly = EVP_MAC_fetch(nullptr, "POLY1305", nullptr);
  EVP_MAC* m = std::strcmp(name, "HMAC") == 0 ? hmac : poly;
  if (!m) throw Error(std::string("OpenSSL has no ") + name);
  return m;
}

// HMAC-SHA256(key, a || b) into out[32].
// The keyed context is set up once per thread (and key), then copied for each
// use: setting it up (the digest's parameters, the key schedule) cost more
// than hashing a small image's header and table.
void hmac_sha256(const std::string& key, std::string_view a, std::string_view b,
                 unsigned char* out) {
  struct Keyed {
    std::string key;
    EVP_MAC_CTX* ctx = nullptr;
    ~Keyed() {
      OPENSSL_cleanse(key.data(), key.size());
      EVP_MAC_CTX_free(ctx);
    }
  };
  thread_local Keyed keyed;
  if (!keyed.ctx || keyed.key != key) {
    EVP_MAC_CTX_free(std::exchange(keyed.ctx, EVP_MAC_CTX_new(fetch_mac("HMAC"))));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (!keyed.ctx || !EVP_MAC_init(keyed.ctx, reinterpret_cast<const unsigned char*>(key.data()),
                                    key.size(), params)) {
      EVP_MAC_CTX_free(std::exchange(keyed.ctx, nullptr));
      throw Error("HMAC-SHA256 setup failed");
    }
    OPENSSL_cleanse(keyed.key.data(), keyed.key.size());
    keyed.key = key;
  }
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed.ctx);
  size_t len = 0;
  bool ok = ctx &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(a.data()), a.size()) &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(b.data()), b.size()) &&
            EVP_MAC_final(ctx, out, &len, kHmacBytes) && len == kHmacBytes;
  EVP_MAC_CTX_free(ctx);
  if (!ok) throw Error("HMAC-SHA256 failed");
}

// A new image's nonce. All a nonce must be is unique under the job's key
// (it names the one-time keys of the image's segments): 8 random bytes drawn
// once per process (again in a forked child), then a counter. RAND_bytes for
// each image cost two getpid() system calls (OpenSSL's fork check) and its
// generator's lock, at every call a task makes.
struct NonceSource {
  std::mutex mu;
  std::atomic<bool> seeded{false};
  uint8_t prefix[8]{};
  std::atomic<uint64_t> counter{0};
};
NonceSource& nonce_source() {
  static NonceSource* s = [] {
    auto* n = new NonceSource;  // never destroyed: images may be made during exit
    pthread_atfork(nullptr, nullptr, [] {
      nonce_source().seeded.store(false, std::memory_order_relaxed);  // the child draws anew
    });
    return n;
  }();
  return *s;
}
void new_nonce(uint8_t* out) {
  NonceSource& s = nonce_source();
  if (!s.seeded.load(std::memory_order_acquire)) {
    std::lock_guard lock(s.mu);
    if (!s.seeded.load(std::memory_order_relaxed)) {
      if (RAND_bytes(s.prefix, sizeof s.prefix) != 1) throw Error("RAND_bytes failed");
      s.seeded.store(true, std::memory_order_release);
    }
  }
  std::memcpy(out, s.prefix, sizeof s.prefix);
  uint64_t n = s.counter.fetch_add(1, std::memory_order_relaxed);
  std::memcpy(out + sizeof s.prefix, &n, sizeof n);
}

// Contexts kept for reuse by the calling thread (a few: hashers may nest):
// creating and freeing a Poly1305 context for each image cost about a fifth
// of a small image's capture (measured with an XXH3 state beside it). Never
// while a task's arena is the thread's heap (what is kept must outlive the
// arena).
template <class T, T* (*make)(), void (*destroy)(T*)>
class ThreadPool {
 public:
  static T* take() {
    if (Arena::current()) return make();
    Kept& k = kept();
    if (k.items.empty()) return make();
    T* t = k.items.back();
    k.items.pop_back();
    return t;
  }
  static void give(T* t) {
    if (!t) return;
    if (Arena::current()) return destroy(t);
    Kept& k = kept();
    if (k.items.size() < 4) {
      k.items.push_back(t);
      return;
    }
    destroy(t);
  }

 private:
  struct Kept {
    std::vector<T*> items;
    ~Kept() {
      for (T* t : items) destroy(t);
    }
  };
  static Kept& kept() {
    thread_local Kept k;
    return k;
  }
};
EVP_MAC_CTX* new_poly_ctx() { return EVP_MAC_CTX_new(fetch_mac("POLY1305")); }
using PolyContexts = ThreadPool<EVP_MAC_CTX, new_poly_ctx, EVP_MAC_CTX_free>;

// Digest of one payload segment: Poly1305 under the segment's one-time key
// HMAC-SHA256(key, "kappa-segment" || nonce || index).
class SegmentHasher {
 public:
  SegmentHasher(const std::string& key, const uint8_t* nonce, uint64_t index)
      : poly_(PolyContexts::take()) {
    char info[13 + 16 + 8];
    std::memcpy(info, "kappa-segment", 13);
    std::memcpy(info + 13, nonce, 16);
    std::memcpy(info + 29, &index, 8);
    unsigned char one_time_key[kHmacBytes];
    hmac_sha256(key, std::string_view(info, sizeof info), {}, one_time_key);
    if (!poly_ || !EVP_MAC_init(poly_, one_time_key, sizeof one_time_key, nullptr))
      throw Error("Poly1305 init failed");
    OPENSSL_cleanse(one_time_key, sizeof one_time_key);
  }
  ~SegmentHasher() { PolyContexts::give(poly_); }
  SegmentHasher(const SegmentHasher&) = delete;
  SegmentHasher& operator=(const SegmentHasher&) = delete;

  void update(const void* p, size_t n) {
    EVP_MAC_update(poly_, static_cast<const unsigned char*>(p), n);
  }
  SegmentDigest finish() {
    SegmentDigest d{};
    size_t len = 0;
    if (!EVP_MAC_final(poly_, d.tag, &len, sizeof d.tag) || len != sizeof d.tag)
      throw Error("Poly1305 final failed");
    return d;
  }

 private:
  EVP_MAC_CTX* poly_;
};

// ---- the payload of an uncompressed image is the extents, concatenated ----

// Calls fn(arena_address, payload_offset, bytes) for each piece of payload
// range [from, to), where `starts` holds each extent's payload offset.
template <class Fn>
void for_each_piece(uintptr_t base, const std::vector<Extent>& extents,
                    const std::vector<uint64_t>& starts, uint64_t from, uint64_t to, Fn fn) {
  size_t i = size_t(std::upper_bound(starts.begin(), starts.end(), from) - starts.begin()) - 1;
  for (uint64_t pos = from; pos < to; ++i) {
    uint64_t in_extent = pos - starts[i];
    uint64_t n = std::min(extents[i].bytes - in_extent, to - pos);
    fn(reinterpret_cast<char*>(base + extents[i].offset + in_extent), pos, n);
    pos += n;
  }
}

std::vector<uint64_t> payload_starts(const std::vector<Extent>& extents) {
  std::vector<uint64_t> starts(extents.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < extents.size(); ++i) {
    starts[i] = pos;
    pos += extents[i].bytes;
  }
  return starts;
}

size_t segment_count(uint64_t payload_bytes) {
  return std::max<size_t>(1, size_t((payload_bytes + kSegmentBytes - 1) >> kSegmentShift));
}

// The digest of payload segment `i` of `raw` bytes of `extents`, read where
// they lie in the arena at `base` (`starts`: payload_starts(extents)): how a
// streamed image is sealed, and how a restore verifies what it read into place.
SegmentDigest digest_in_place(const std::string& key, const uint8_t* nonce, size_t i,
                              uintptr_t base, const std::vector<Extent>& extents,
                              const std::vector<uint64_t>& starts, uint64_t raw) {
  uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(raw, from + kSegmentBytes);
  SegmentHasher hasher(key, nonce, i);
  for_each_piece(base, extents, starts, from, to,
                 [&](const char* at, uint64_t, uint64_t n) { hasher.update(at, n); });
  return hasher.finish();
}

// ---- compression straight from the arena ----

// The calling thread's zstd compression context, kept for reuse. Each use
// sets its own parameters (reset, or ZSTD_compressCCtx, which ignores them).
ZSTD_CCtx* zstd_context() {
  static thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  return cctx;
}

LZ4F_preferences_t lz4_prefs() {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.blockSizeID = LZ4F_max256KB;
  return prefs;
}

// Whether the state is worth compressing. A small one is not: its image
// travels inline to the coordinator, and compressing a few KiB took 25-40 us
// in a worker between two calls (cold caches), a sixth of a queue round trip,
// to save a few KiB on a Unix socket. A large one is sampled: a few pieces
// spread over it are compressed with zstd's fastest setting, and if they
// barely shrink (random or already compressed data) the image is stored
// uncompressed. Compressing such data costs ~0.7 ms per MiB here for a few
// percent; copying it, a tenth of that.
constexpr uint64_t kSmallStateBytes = 32 << 10;  // below: never compressed
constexpr uint64_t kProbeMinBytes = 256 << 10;   // below: always compressed
constexpr size_t kProbeSamples = 16, kProbeSampleBytes = 4 << 10;

bool worth_compressing(const Arena& arena, const std::vector<Extent>& extents, uint64_t raw) {
  if (raw < kSmallStateBytes) return false;
  if (raw < kProbeMinBytes) return true;
  std::vector<uint64_t> starts = payload_starts(extents);
  std::vector<char> sample(kProbeSamples * kProbeSampleBytes);
  for (size_t s = 0; s < kProbeSamples; ++s) {
    // The middle of each of kProbeSamples equal parts.
    uint64_t from = raw / kProbeSamples * s + (raw / kProbeSamples - kProbeSampleBytes) / 2;
    for_each_piece(arena.base(), extents, starts, from, from + kProbeSampleBytes,
                   [&](const char* src, uint64_t pos, uint64_t n) {
                     std::memcpy(sample.data() + s * kProbeSampleBytes + (pos - from), src, n);
                   });
  }
  std::vector<char> out(ZSTD_compressBound(sample.size()));
  size_t n =
      ZSTD_compressCCtx(zstd_context(), out.data(), out.size(), sample.data(), sample.size(), -5);
  return !ZSTD_isError(n) && n < sample.size() / 16 * 15;  // saves at least 1/16
}

// The image's identity as the parent of a delta.
ImageLink link_of(const ImageHeader& h) {
  ImageLink l;
  std::memcpy(l.nonce.data(), h.nonce, sizeof h.nonce);
  l.depth = h.chain_depth;
  return l;
}

// ---- writing an image: its head, its payload, its tail ----

// What an image of `arena` will hold, decided before its first byte is
// written: the extents, the codec, the header and the head (header and
// extent table, the image's first bytes).
struct Plan {
  std::vector<Extent> extents;
  uint64_t raw = 0;
  Codec codec = Codec::kNone;
  ImageHeader header{};
  std::string head;
};

Plan plan_image(Arena& arena, Codec codec, const Delta* delta) {
  Plan p;
  p.extents = delta ? delta->extents : arena.snapshot_extents();
  for (const Extent& e : p.extents) p.raw += e.bytes;
  p.codec =
      codec != Codec::kNone && worth_compressing(arena, p.extents, p.raw) ? codec : Codec::kNone;
  ImageHeader& h = p.header;
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kImageVersion;
  h.header_bytes = sizeof h;
  h.codec = uint32_t(p.codec);
  const std::string& id = build_id();
  h.build_id_len = uint32_t(std::min(id.size(), sizeof h.build_id));
  std::memcpy(h.build_id, id.data(), h.build_id_len);
  h.layout_fingerprint = layout_fingerprint();
  h.arena_base = arena.base();
  const TaskState& t = arena.task();
  h.seqno = t.seqno;
  h.suspended_frame = reinterpret_cast<uint64_t>(t.suspended_frame);
  h.root_frame = reinterpret_cast<uint64_t>(t.root_frame);
  h.pending_op = t.pending ? uint32_t(static_cast<const PendingCall*>(t.pending)->op) : 0;
  h.extent_count = uint32_t(p.extents.size());
  h.raw_bytes = p.raw;
  h.created_unix_ns = unix_ns();
  new_nonce(h.nonce);
  h.segment_shift = kSegmentShift;
  if (delta) {
    std::memcpy(h.parent_nonce, delta->parent.nonce.data(), sizeof h.parent_nonce);
    h.chain_depth = delta->parent.depth + 1;
  }
  p.head.resize(sizeof h + p.extents.size() * sizeof(Extent));
  std::memcpy(p.head.data(), &h, sizeof h);
  std::memcpy(p.head.data() + sizeof h, p.extents.data(), p.extents.size() * sizeof(Extent));
  return p;
}

// The image's last bytes: the segment table and the footer, whose checksum
// and HMAC cover the head too.
std::string image_tail(const std::string& key, std::string_view head,
                       const std::vector<SegmentDigest>& table, uint64_t payload_bytes) {
  size_t table_bytes = table.size() * sizeof(SegmentDigest);
  std::string tail(table_bytes + sizeof(ImageFooter), '\0');
  std::memcpy(tail.data(), table.data(), table_bytes);
  ImageFooter f{};
  f.payload_bytes = payload_bytes;
  f.segment_count = uint32_t(table.size());
  std::memcpy(tail.data() + table_bytes, &f, kFooterFields);
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, head.data(), head.size());
  XXH3_64bits_update(st, tail.data(), table_bytes + kFooterFields);
  uint64_t sum = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  char* checksum = tail.data() + table_bytes + kFooterFields;
  std::memcpy(checksum, &sum, sizeof sum);
  hmac_sha256(key, head,
              std::string_view(tail.data(), table_bytes + kFooterFields + kChecksumBytes),
              reinterpret_cast<unsigned char*>(checksum + kChecksumBytes));
  return tail;
}

// Cuts a payload written in pieces into segments, seals each and passes it on.
class SegmentWriter {
 public:
  SegmentWriter(const std::string& key, const uint8_t* nonce, ByteSink& out)
      : key_(key), nonce_(nonce), out_(out) {
    buffer_.reserve(kSegmentBytes);
  }
  void append(const char* p, size_t n) {
    while (n > 0) {
      size_t take = std::min(n, kSegmentBytes - fill_);
      std::memcpy(buffer_.data() + fill_, p, take);
      fill_ += take, p += take, n -= take;
      if (fill_ == kSegmentBytes) emit();
    }
  }
  /// The segment table, once the whole payload has been appended.
  std::vector<SegmentDigest> finish() {
    if (fill_ > 0 || table_.empty()) emit();
    return std::move(table_);
  }
  uint64_t bytes() const { return bytes_; }

 private:
  void emit() {
    SegmentHasher hasher(key_, nonce_, table_.size());
    hasher.update(buffer_.data(), fill_);
    table_.push_back(hasher.finish());
    out_.write(std::string_view(buffer_.data(), fill_));
    bytes_ += fill_;
    fill_ = 0;
  }

  const std::string& key_;
  const uint8_t* nonce_;
  ByteSink& out_;
  // Reused: a fresh 4 MiB would fault in 1024 pages at every image.
  static thread_local ByteBuffer buffer_;
  size_t fill_ = 0;
  uint64_t bytes_ = 0;
  std::vector<SegmentDigest> table_;
};
thread_local ByteBuffer SegmentWriter::buffer_;

// Compresses the extents, straight from the arena, into `out`.
void compress_to(Codec codec, const Arena& arena, const std::vector<Extent>& extents, uint64_t raw,
                 SegmentWriter& out) {
  static thread_local ByteBuffer staging;
  constexpr size_t kStagingBytes = size_t{1} << 20, kLz4InBytes = size_t{256} << 10;
  staging.reserve(kStagingBytes);
  if (codec == Codec::kZstd) {
    ZSTD_CCtx* cctx = zstd_context();
    static const bool can_thread = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers).upperBound > 0;
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, kZstdLevel);
    if (can_thread && raw >= kZstdParallelBytes)
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, int(std::thread::hardware_concurrency()));
    ZSTD_CCtx_setPledgedSrcSize(cctx, raw);
    for (size_t i = 0; i < extents.size(); ++i) {
      ZSTD_inBuffer ib{reinterpret_cast<const char*>(arena.base() + extents[i].offset),
                       extents[i].bytes, 0};
      ZSTD_EndDirective mode = i + 1 == extents.size() ? ZSTD_e_end : ZSTD_e_continue;
      for (;;) {
        ZSTD_outBuffer ob{staging.data(), kStagingBytes, 0};
        size_t left = ZSTD_compressStream2(cctx, &ob, &ib, mode);
        if (ZSTD_isError(left)) throw Error(std::string("zstd: ") + ZSTD_getErrorName(left));
        out.append(staging.data(), ob.pos);
        if (mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size) break;
      }
    }
    return;
  }
  static thread_local LZ4F_cctx* cctx = [] {
    LZ4F_cctx* c = nullptr;
    LZ4F_createCompressionContext(&c, LZ4F_VERSION);
    return c;
  }();
  auto check = [](size_t n) {
    if (LZ4F_isError(n)) throw Error(std::string("lz4: ") + LZ4F_getErrorName(n));
    return n;
  };
  LZ4F_preferences_t prefs = lz4_prefs();
  out.append(staging.data(),
             check(LZ4F_compressBegin(cctx, staging.data(), kStagingBytes, &prefs)));
  for (const Extent& e : extents) {
    for (uint64_t done = 0; done < e.bytes; done += kLz4InBytes) {
      size_t n = size_t(std::min<uint64_t>(kLz4InBytes, e.bytes - done));
      out.append(staging.data(),
                 check(LZ4F_compressUpdate(
                     cctx, staging.data(), kStagingBytes,
                     reinterpret_cast<const void*>(arena.base() + e.offset + done), n, nullptr)));
    }
  }
  out.append(staging.data(), check(LZ4F_compressEnd(cctx, staging.data(), kStagingBytes, nullptr)));
}

// A compressed image, written whole to `out`.
ImageLink write_compressed(const Plan& p, Arena& arena, const std::string& key, ByteSink& out) {
  out.write(p.head);
  SegmentWriter segments(key, p.header.nonce, out);
  compress_to(p.codec, arena, p.extents, p.raw, segments);
  std::vector<SegmentDigest> table = segments.finish();
  out.write(image_tail(key, p.head, table, segments.bytes()));
  return link_of(p.header);
}

// Appends to a buffer.
class AppendTo final : public ByteSink {
 public:
  explicit AppendTo(ImageBuffer& out) : out_(out) {}
  void write(std::string_view bytes) override {
    size_t n = out_.size();
    out_.resize(n + bytes.size());
    std::memcpy(out_.data() + n, bytes.data(), bytes.size());
  }

 private:
  ImageBuffer& out_;
};

// Passes large pieces on as they are and gathers small ones (a delta's
// single pages) into larger writes: a store's write may cost a system call or
// a request.
class Gather final : public ByteSink {
 public:
  explicit Gather(ByteSink& out) : out_(out) { buffer_.reserve(kBytes); }
  ~Gather() override = default;
  void write(std::string_view bytes) override {
    if (bytes.size() >= kBytes / 4) {
      flush();
      out_.write(bytes);
      return;
    }
    if (fill_ + bytes.size() > kBytes) flush();
    std::memcpy(buffer_.data() + fill_, bytes.data(), bytes.size());
    fill_ += bytes.size();
  }
  void flush() {
    if (fill_ > 0) out_.write(std::string_view(buffer_.data(), fill_));
    fill_ = 0;
  }

 private:
  static constexpr size_t kBytes = size_t{1} << 20;
  ByteSink& out_;
  static thread_local ByteBuffer buffer_;
  size_t fill_ = 0;
};
thread_local ByteBuffer Gather::buffer_;

// ---- reading an image: its layout, its header, its payload ----

struct ParsedImage {
  ImageHeader header;
  ImageLayout layout;
  ImageInfo info;
  std::string head;                  // header and extent table
  std::vector<SegmentDigest> table;  // copied: in the image it is not 8-byte aligned
};

// The largest payload `raw` state bytes may take: themselves, or a
// compression of them (zstd's and lz4's bounds are below raw + raw/255 plus
// their frame headers).
uint64_t payload_bound(Codec codec, uint64_t raw) {
  return codec == Codec::kNone ? raw : raw + raw / 128 + (64 << 10);
}

// Checks what an image's first bytes (`head`: at least the header, or the
// whole image if it is shorter) say of it against its whole size, and copies
// the header into `h`. Nothing is authenticated yet.
void check_head(std::string_view head, uint64_t size, ImageHeader& h) {
  if (head.size() < sizeof(kMagic) || std::memcmp(head.data(), kMagic, sizeof kMagic) != 0)
    reject("not a Kappa checkpoint (bad magic)");
  if (head.size() < 16) reject("truncated: only " + std::to_string(size) + " bytes");
  uint32_t version;
  std::memcpy(&version, head.data() + 8, sizeof version);
  if (version != kImageVersion)
    reject("unsupported format version " + std::to_string(version) + " (this binary reads " +
           std::to_string(kImageVersion) + ")");
  if (head.size() < sizeof h)
    reject("truncated: " + std::to_string(size) + " bytes, the header alone needs " +
           std::to_string(sizeof h));
  std::memcpy(&h, head.data(), sizeof h);
  if (h.header_bytes != sizeof h) reject("bad header size " + std::to_string(h.header_bytes));
  if (h.extent_count > kMaxPages || h.segment_shift != kSegmentShift ||
      h.raw_bytes > (uint64_t{1} << 46) || h.codec > uint32_t(Codec::kZstd))
    reject("implausible header (extents, segments, codec or state size)");
  uint64_t payload_offset = sizeof h + uint64_t(h.extent_count) * sizeof(Extent);
  auto image_bytes = [&](uint64_t payload) {
    return payload_offset + payload + segment_count(payload) * sizeof(SegmentDigest) +
           sizeof(ImageFooter);
  };
  uint64_t least = image_bytes(Codec(h.codec) == Codec::kNone ? h.raw_bytes : 0);
  uint64_t most = image_bytes(payload_bound(Codec(h.codec), h.raw_bytes));
  std::string expected = least == most
                             ? std::to_string(least)
                             : "between " + std::to_string(least) + " and " + std::to_string(most);
  if (size < least) reject("truncated: " + std::to_string(size) + " bytes, expected " + expected);
  if (size > most)
    reject("trailing garbage: " + std::to_string(size) + " bytes, expected " + expected);
}

// Where the parts of the image in `src` lie, from its head and footer; fills
// `h` and `head` (header and extent table). Nothing is authenticated yet.
ImageLayout read_layout(ByteSource& src, ImageHeader& h, std::string& head) {
  uint64_t size = src.size();
  head.resize(size_t(std::min<uint64_t>(size, sizeof h)));
  src.read(0, head.data(), head.size());
  check_head(head, size, h);
  ImageLayout l;
  l.header_bytes = sizeof h;
  l.payload_offset = sizeof h + size_t(h.extent_count) * sizeof(Extent);
  head.resize(l.payload_offset);
  src.read(sizeof h, head.data() + sizeof h, l.payload_offset - sizeof h);
  ImageFooter f;
  src.read(size - sizeof f, reinterpret_cast<char*>(&f), sizeof f);
  if (f.payload_bytes > size || f.segment_count != segment_count(f.payload_bytes) ||
      l.payload_offset + f.payload_bytes + f.segment_count * sizeof(SegmentDigest) + sizeof f !=
          size)
    reject("truncated or corrupted: the footer does not describe a " + std::to_string(size) +
           "-byte image");
  l.payload_bytes = size_t(f.payload_bytes);
  l.table_offset = l.payload_offset + l.payload_bytes;
  l.segment_count = f.segment_count;
  l.segment_bytes = kSegmentBytes;
  l.checksum_offset = size_t(size) - kChecksumBytes - kHmacBytes;
  return l;
}

// Everything but the payload segments: lengths, checksum, HMAC, identity.
ParsedImage check_header(ByteSource& src, const std::string& key) {
  ParsedImage p;
  ImageHeader& h = p.header;
  ImageLayout& l = p.layout = read_layout(src, h, p.head);
  uint64_t size = src.size();
  std::string tail(size_t(size - l.table_offset), '\0');  // segment table and footer
  src.read(l.table_offset, tail.data(), tail.size());
  size_t signed_bytes = l.checksum_offset - l.table_offset;  // table and footer fields
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, p.head.data(), p.head.size());
  XXH3_64bits_update(st, tail.data(), signed_bytes);
  uint64_t sum = XXH3_64bits_digest(st), stored;
  XXH3_freeState(st);
  std::memcpy(&stored, tail.data() + signed_bytes, sizeof stored);
  if (sum != stored) reject("corrupted (checksum mismatch in the header or segment table)");
  unsigned char mac[kHmacBytes];
  hmac_sha256(key, p.head, std::string_view(tail.data(), signed_bytes + kChecksumBytes), mac);
  if (CRYPTO_memcmp(mac, tail.data() + signed_bytes + kChecksumBytes, kHmacBytes) != 0)
    reject("HMAC mismatch: signed with another key, or forged");

  ImageInfo& info = p.info;
  info.version = h.version;
  info.codec = Codec(h.codec);
  info.build_id.assign(h.build_id, std::min<size_t>(h.build_id_len, sizeof h.build_id));
  if (info.build_id != build_id())
    reject("written by another binary (build id " + info.build_id + ", this binary " + build_id() +
           ")");
  info.layout_fingerprint = h.layout_fingerprint;
  if (h.layout_fingerprint != layout_fingerprint())
    reject(std::string("written under another address layout (shared libraries or TLS at other "
                       "addresses") +
           (layout_is_fixed() ? ")"
                              : "; ASLR is on in this process: run it through its KAPPA_MAIN "
                                "entry point, which disables it)"));
  info.arena_base = h.arena_base;
  info.seqno = h.seqno;
  info.suspended_frame = h.suspended_frame;
  info.root_frame = h.root_frame;
  info.pending_op = h.pending_op;
  info.raw_bytes = h.raw_bytes;
  info.payload_bytes = l.payload_bytes;
  info.image_bytes = size;
  info.created_unix_ns = h.created_unix_ns;
  info.chain_depth = h.chain_depth;
  info.extents.resize(h.extent_count);
  std::memcpy(info.extents.data(), p.head.data() + sizeof h, h.extent_count * sizeof(Extent));
  p.table.resize(l.segment_count);
  std::memcpy(p.table.data(), tail.data(), l.segment_count * sizeof(SegmentDigest));
  return p;
}

// Compares a recomputed segment digest with the stored one; "" when equal.
std::string segment_problem(size_t i, const SegmentDigest& got, const SegmentDigest& want) {
  if (CRYPTO_memcmp(got.tag, want.tag, sizeof got.tag) != 0)
    return "payload segment " + std::to_string(i) +
           " does not match its tag: damaged in storage or transit, or modified after signing";
  return "";
}

void reject_first(const std::vector<std::string>& problems) {
  for (const std::string& why : problems)
    if (!why.empty()) reject(why);
}

// Hands the payload's segments, each verified, to fn(index, bytes), in order:
// in place when `src` holds the image in memory, else read into a reused
// buffer one segment at a time.
template <class Fn>
void for_each_verified_segment(ByteSource& src, const std::string& key, const ParsedImage& p,
                               Fn fn) {
  static thread_local ByteBuffer buffer;
  for (size_t i = 0; i < p.layout.segment_count; ++i) {
    size_t from = i * kSegmentBytes, n = std::min(p.layout.payload_bytes - from, kSegmentBytes);
    std::string_view bytes = src.peek(p.layout.payload_offset + from, n);
    if (bytes.size() != n) {
      buffer.reserve(kSegmentBytes);
      src.read(p.layout.payload_offset + from, buffer.data(), n);
      bytes = std::string_view(buffer.data(), n);
    }
    SegmentHasher hasher(key, p.header.nonce, i);
    hasher.update(bytes.data(), bytes.size());
    std::string why = segment_problem(i, hasher.finish(), p.table[i]);
    if (!why.empty()) reject(why);
    fn(i, bytes);
  }
}

// Verifies every payload segment; in parallel when the image is in memory.
void verify_segments(ByteSource& src, const std::string& key, const ParsedImage& p) {
  std::string_view payload = src.peek(p.layout.payload_offset, p.layout.payload_bytes);
  if (payload.size() != p.layout.payload_bytes) {
    for_each_verified_segment(src, key, p, [](size_t, std::string_view) {});
    return;
  }
  std::vector<std::string> problems(p.layout.segment_count);
  parallel_for(p.layout.segment_count, [&](size_t i) {
    size_t from = i * kSegmentBytes, to = std::min(p.layout.payload_bytes, from + kSegmentBytes);
    SegmentHasher h(key, p.header.nonce, i);
    h.update(payload.data() + from, to - from);
    problems[i] = segment_problem(i, h.finish(), p.table[i]);
  });
  reject_first(problems);
}

// Decompresses a payload given in pieces straight into its extents.
class Decoder {
 public:
  Decoder(Codec codec, uintptr_t base, const std::vector<Extent>& extents)
      : codec_(codec), base_(base), extents_(extents) {
    if (codec_ == Codec::kZstd) {
      zstd_ = ZSTD_createDCtx();
    } else {
      LZ4F_createDecompressionContext(&lz4_, LZ4F_VERSION);
    }
    if (!zstd_ && !lz4_) throw Error("cannot create a decompression context");
  }
  ~Decoder() {
    ZSTD_freeDCtx(zstd_);
    LZ4F_freeDecompressionContext(lz4_);
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  void feed(std::string_view in) {
    size_t used = 0;
    // Until the input is used up and a call makes no progress (a decoder may
    // hold output back until it is given room).
    while (next_ < extents_.size()) {
      const Extent& e = extents_[next_];
      char* dst = reinterpret_cast<char*>(base_ + e.offset) + filled_;
      size_t room = size_t(e.bytes - filled_), produced = 0, taken = 0;
      if (zstd_) {
        ZSTD_outBuffer ob{dst, room, 0};
        ZSTD_inBuffer ib{in.data() + used, in.size() - used, 0};
        size_t r = ZSTD_decompressStream(zstd_, &ob, &ib);
        if (ZSTD_isError(r)) fail();
        produced = ob.pos, taken = ib.pos;
      } else {
        produced = room, taken = in.size() - used;
        size_t r = LZ4F_decompress(lz4_, dst, &produced, in.data() + used, &taken, nullptr);
        if (LZ4F_isError(r)) fail();
      }
      used += taken;
      filled_ += produced;
      if (filled_ == e.bytes) ++next_, filled_ = 0;
      if (produced == 0 && taken == 0) break;
    }
  }
  /// Checks that the payload filled every extent.
  void finish() {
    feed({});
    if (next_ < extents_.size()) fail();
  }

 private:
  [[noreturn]] void fail() {
    reject(std::string("the ") + codec_name(codec_) +
           " payload does not decode to the recorded extents");
  }
  Codec codec_;
  uintptr_t base_;
  const std::vector<Extent>& extents_;
  size_t next_ = 0;      // the extent being filled
  uint64_t filled_ = 0;  // its bytes filled so far
  ZSTD_DCtx* zstd_ = nullptr;
  LZ4F_dctx* lz4_ = nullptr;
};

// Reads ranges of an image's payload into their places in the arena: large
// ones straight there, runs of small ones (a delta's single pages) with one
// read into a buffer, so that a store answering a read per request is asked
// for a few large ranges.
class Scatter {
 public:
  Scatter(ByteSource& src, uint64_t payload_offset) : src_(src), offset_(payload_offset) {}
  void add(char* dst, uint64_t pos, uint64_t n) {
    if (n >= kSmallBytes) {
      src_.read(offset_ + pos, dst, size_t(n));
      return;
    }
    if (!run_.empty() && (pos != run_end_ || run_end_ - run_.front().pos + n > kRunBytes)) flush();
    run_.push_back(Piece{dst, pos, n});
    run_end_ = pos + n;
  }
  void flush() {
    if (run_.empty()) return;
    uint64_t from = run_.front().pos;
    buffer_.reserve(kRunBytes);
    src_.read(offset_ + from, buffer_.data(), size_t(run_end_ - from));
    for (const Piece& p : run_) std::memcpy(p.dst, buffer_.data() + (p.pos - from), p.n);
    run_.clear();
  }

 private:
  static constexpr uint64_t kSmallBytes = 256 << 10, kRunBytes = 4 << 20;
  struct Piece {
    char* dst;
    uint64_t pos, n;
  };
  ByteSource& src_;
  uint64_t offset_;
  std::vector<Piece> run_;
  uint64_t run_end_ = 0;
  static thread_local ByteBuffer buffer_;
};
thread_local ByteBuffer Scatter::buffer_;

// How many segments of an uncompressed payload a restore reads into place
// before it verifies them (in parallel).
constexpr size_t kSegmentsPerRead = 8;

// Writes an image's extents into its (mapped) arena slot, each segment
// verified before anything is used. `fresh`: the slot's pages were never
// touched.
void load(ByteSource& src, const std::string& key, const ParsedImage& p, bool fresh) {
  const ImageInfo& info = p.info;
  uint64_t base = info.arena_base;
  // Fault large extents in with one call: page faults, not copying,
  // dominate a restore into a fresh process (measured here: memcpy into a
  // fresh mapping 1.5-2 GB/s against 10 GB/s hot; a recycled slot is faulted
  // in already). Transparent huge pages were faster when the kernel had free
  // huge pages and far slower when it had to compact memory first, so they
  // are not requested. A hint only: kernels before 5.14 answer EINVAL and the
  // copy faults pages in itself.
  for (const Extent& e : info.extents) {
    if (!fresh || e.bytes < (size_t{4} << 20)) continue;
    uintptr_t from = (base + e.offset) & ~(kPageBytes - 1);
    uintptr_t to = (base + e.offset + e.bytes + kPageBytes - 1) & ~(kPageBytes - 1);
    madvise(reinterpret_cast<void*>(from), to - from, kMadvPopulateWrite);
  }
  if (info.codec != Codec::kNone) {
    // Each segment verified before the decoder sees it.
    Decoder decoder(info.codec, base, info.extents);
    for_each_verified_segment(src, key, p,
                              [&](size_t, std::string_view bytes) { decoder.feed(bytes); });
    decoder.finish();
    return;
  }
  uint64_t raw = info.raw_bytes;
  std::vector<uint64_t> starts = payload_starts(info.extents);
  std::string_view payload = src.peek(p.layout.payload_offset, p.layout.payload_bytes);
  std::vector<std::string> problems(p.layout.segment_count);
  if (payload.size() == raw) {
    // In memory: copy and verify in one pass, segment by segment, on every core.
    parallel_for(p.layout.segment_count, [&](size_t i) {
      uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(raw, from + kSegmentBytes);
      SegmentHasher hasher(key, p.header.nonce, i);
      for (uint64_t c = from; c < to; c += kChunkBytes) {
        uint64_t stop = std::min(to, c + kChunkBytes);
        hasher.update(payload.data() + c, stop - c);
        for_each_piece(base, info.extents, starts, c, stop,
                       [&](char* dst, uint64_t pos, uint64_t n) {
                         std::memcpy(dst, payload.data() + pos, n);
                       });
      }
      problems[i] = segment_problem(i, hasher.finish(), p.table[i]);
    });
    reject_first(problems);
    return;
  }
  // From a store: read a few segments into place, then verify them there,
  // and so on: no buffer of the image's size.
  for (size_t first = 0; first < p.layout.segment_count; first += kSegmentsPerRead) {
    size_t last = std::min(p.layout.segment_count, first + kSegmentsPerRead);
    uint64_t from = uint64_t(first) << kSegmentShift;
    uint64_t to = std::min(raw, uint64_t(last) << kSegmentShift);
    Scatter scatter(src, p.layout.payload_offset);
    for_each_piece(base, info.extents, starts, from, to,
                   [&](char* dst, uint64_t pos, uint64_t n) { scatter.add(dst, pos, n); });
    scatter.flush();
    parallel_for(last - first, [&](size_t k) {
      size_t i = first + k;
      SegmentDigest got = digest_in_place(key, p.header.nonce, i, base, info.extents, starts, raw);
      problems[i] = segment_problem(i, got, p.table[i]);
    });
    reject_first(problems);
  }
}

}  // namespace

Codec parse_codec(std::string_view name) {
  if (name == "none") return Codec::kNone;
  if (name == "lz4") return Codec::kLz4;
  if (name == "zstd") return Codec::kZstd;
  throw Error("unknown compression '" + std::string(name) + "' (expected none, lz4 or zstd)");
}

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return "none";
    case Codec::kLz4:
      return "lz4";
    case Codec::kZstd:
      return "zstd";
  }
  return "?";
}

ImageLayout image_layout(std::string_view image) {
  MemorySource src(image);
  ImageHeader h;
  std::string head;
  return read_layout(src, h, head);
}

size_t image_header_bytes() { return sizeof(ImageHeader); }

void check_image_head(std::string_view head, uint64_t image_bytes) {
  ImageHeader h;
  check_head(head.substr(0, sizeof h), image_bytes, h);
}

ImageLink write_image(Arena& arena, Codec codec, const std::string& key, ImageBuffer& out,
                      const Delta* delta) {
  Plan p = plan_image(arena, codec, delta);
  out.resize(0);
  if (p.codec != Codec::kNone) {
    AppendTo sink(out);
    return write_compressed(p, arena, key, sink);
  }
  // Copy and seal in one pass, segment by segment, on every core.
  uint64_t raw = p.raw;
  std::vector<SegmentDigest> table(segment_count(raw));
  size_t payload_offset = p.head.size();
  out.reserve(payload_offset + raw + table.size() * sizeof(SegmentDigest) + sizeof(ImageFooter));
  std::memcpy(out.data(), p.head.data(), payload_offset);
  char* payload = out.data() + payload_offset;
  std::vector<uint64_t> starts = payload_starts(p.extents);
  parallel_for(table.size(), [&](size_t i) {
    uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(raw, from + kSegmentBytes);
    SegmentHasher hasher(key, p.header.nonce, i);
    for (uint64_t c = from; c < to; c += kChunkBytes) {
      uint64_t end = std::min(to, c + kChunkBytes);
      for_each_piece(
          arena.base(), p.extents, starts, c, end,
          [&](const char* src, uint64_t pos, uint64_t n) { std::memcpy(payload + pos, src, n); });
      hasher.update(payload + c, end - c);
    }
    table[i] = hasher.finish();
  });
  std::string tail = image_tail(key, p.head, table, raw);
  std::memcpy(payload + raw, tail.data(), tail.size());
  out.resize(payload_offset + raw + tail.size());
  return link_of(p.header);
}

ImageLink write_image(Arena& arena, Codec codec, const std::string& key, ByteSink& out,
                      const Delta* delta) {
  Plan p = plan_image(arena, codec, delta);
  if (p.codec != Codec::kNone) return write_compressed(p, arena, key, out);
  // The payload is the arena's bytes: sealed in place (on every core), then
  // written from where they lie.
  std::vector<SegmentDigest> table(segment_count(p.raw));
  std::vector<uint64_t> starts = payload_starts(p.extents);
  parallel_for(table.size(), [&](size_t i) {
    table[i] = digest_in_place(key, p.header.nonce, i, arena.base(), p.extents, starts, p.raw);
  });
  out.write(p.head);
  // A segment at a time at most: a store's writer may copy what one write
  // gives it (a Redis command is built whole).
  Gather gather(out);
  for (size_t i = 0; i < table.size(); ++i) {
    uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(p.raw, from + kSegmentBytes);
    for_each_piece(arena.base(), p.extents, starts, from, to,
                   [&](const char* at, uint64_t, uint64_t n) {
                     gather.write({at, n});
                   });
  }
  gather.flush();
  out.write(image_tail(key, p.head, table, p.raw));
  return link_of(p.header);
}

ImageInfo verify_image(std::string_view image, const std::string& key) {
  MemorySource src(image);
  return verify_image(src, key);
}

ImageInfo verify_image(ByteSource& image, const std::string& key) {
  ParsedImage p = check_header(image, key);
  verify_segments(image, key, p);
  return p.info;
}

Arena* restore_image(std::string_view image, const std::string& key) {
  return restore_chain(std::span<const std::string_view>(&image, 1), key);
}

Arena* restore_chain(std::span<const std::string_view> images, const std::string& key,
                     ChainInfo* chain) {
  std::vector<MemorySource> sources(images.begin(), images.end());
  std::vector<ByteSource*> links;
  for (MemorySource& s : sources) links.push_back(&s);
  return restore_chain(std::span<ByteSource* const>(links), key, chain);
}

Arena* restore_chain(std::span<ByteSource* const> images, const std::string& key,
                     ChainInfo* chain) {
  if (images.empty()) reject("an empty chain");
  // Every link's header is authenticated, and the links checked against each
  // other, before anything is mapped.
  std::vector<ParsedImage> parsed;
  parsed.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    parsed.push_back(check_header(*images[i], key));
    const ImageHeader& h = parsed.back().header;
    if (i == 0) {
      if (h.chain_depth != 0)
        reject("the chain starts with a delta (link " + std::to_string(h.chain_depth) +
               " of its chain), not a full image: its full image is missing");
      continue;
    }
    const ImageHeader& prev = parsed[i - 1].header;
    if (h.chain_depth == 0)
      reject("link " + std::to_string(i) + " of the chain is a full image, not a delta");
    if (std::memcmp(h.parent_nonce, prev.nonce, sizeof h.nonce) != 0 || h.chain_depth != i)
      reject("link " + std::to_string(i) + " of the chain is not a delta of link " +
             std::to_string(i - 1) + " (a link missing, out of order, or from another chain)");
    if (h.arena_base != prev.arena_base) reject("the chain's links are of different arenas");
  }
  // Authenticated from here on; still check the geometry, defensively.
  uint64_t base = parsed[0].info.arena_base;
  if (base < kRegionBase || base >= kRegionEnd || (base - kRegionBase) % kSlotBytes != 0)
    reject("arena base outside the arena region");
  for (const ParsedImage& p : parsed) {
    const ImageInfo& info = p.info;
    uint64_t raw = 0, end = 0;
    for (const Extent& e : info.extents) {
      if (e.offset < end || e.bytes > kSlotBytes || e.offset > kSlotBytes - e.bytes)
        reject("extents out of order or outside the arena");
      end = e.offset + e.bytes;
      raw += e.bytes;
    }
    if (raw != info.raw_bytes) reject("extent sizes do not add up to the recorded size");
    if (info.codec == Codec::kNone && raw != info.payload_bytes)
      reject("payload size does not match the extents");
  }
  const std::vector<Extent>& first = parsed[0].info.extents;
  if (first.empty() || first[0].offset != 0 || first[0].bytes < sizeof(Arena))
    reject("the arena header is missing");

  // Payloads are verified segment by segment as they are loaded; on any
  // failure the slot is released without reading what landed in it.
  unsigned slot = unsigned((base - kRegionBase) >> kSlotShift);
  bool fresh = Arena::map_raw(slot);
  try {
    for (size_t i = 0; i < parsed.size(); ++i) load(*images[i], key, parsed[i], fresh && i == 0);
    if (chain) {
      chain->first = link_of(parsed.front().header);
      chain->last = link_of(parsed.back().header);
      chain->below_last = link_of(parsed[parsed.size() > 1 ? parsed.size() - 2 : 0].header);
      chain->first_raw_bytes = parsed.front().info.raw_bytes;
      std::vector<Extent> pages;
      for (size_t i = 1; i < parsed.size(); ++i)
        for (const Extent& e : parsed[i].info.extents) pages.push_back(e);
      std::sort(pages.begin(), pages.end(),
                [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
      chain->since_first = page_cover(pages);
      chain->last_pages.clear();
      if (parsed.size() > 1) chain->last_pages = page_cover(parsed.back().info.extents);
    }
    return Arena::adopt(slot);
  } catch (...) {
    // The slot holds unverified bytes, the arena header among them: release
    // it without reading any (Arena::destroy would trust the header).
    Arena::unmap_raw(slot);
    throw;
  }
}

}  // namespace kappa::detail
