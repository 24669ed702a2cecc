#include "runtime/checkpoint_image.h"

#include <lz4frame.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
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
  uint64_t payload_bytes;
  uint64_t created_unix_ns;
  uint8_t nonce[16];
  uint32_t segment_shift;
  uint32_t segment_count;
  // Version 2: the image this one is a delta of (all zero for a full image),
  // and the number of deltas between this image and its chain's full image.
  uint8_t parent_nonce[16];
  uint32_t chain_depth;
  uint32_t reserved;
};
static_assert(std::is_trivially_copyable_v<ImageHeader>);

struct SegmentDigest {
  uint64_t xxh3;
  uint8_t tag[16];
};
static_assert(sizeof(SegmentDigest) == 24);

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

// Digest of one payload segment: XXH3-64 and Poly1305 under the segment's
// one-time key HMAC-SHA256(key, "kappa-segment" || nonce || index).
class SegmentHasher {
 public:
  SegmentHasher(const std::string& key, const uint8_t* nonce, uint64_t index)
      : xxh_(XXH3_createState()), poly_(EVP_MAC_CTX_new(fetch_mac("POLY1305"))) {
    char info[13 + 16 + 8];
    std::memcpy(info, "kappa-segment", 13);
    std::memcpy(info + 13, nonce, 16);
    std::memcpy(info + 29, &index, 8);
    unsigned char one_time_key[kHmacBytes];
    hmac_sha256(key, std::string_view(info, sizeof info), {}, one_time_key);
    XXH3_64bits_reset(xxh_);
    if (!poly_ || !EVP_MAC_init(poly_, one_time_key, sizeof one_time_key, nullptr))
      throw Error("Poly1305 init failed");
    OPENSSL_cleanse(one_time_key, sizeof one_time_key);
  }
  ~SegmentHasher() {
    XXH3_freeState(xxh_);
    EVP_MAC_CTX_free(poly_);
  }
  SegmentHasher(const SegmentHasher&) = delete;
  SegmentHasher& operator=(const SegmentHasher&) = delete;

  void update(const void* p, size_t n) {
    XXH3_64bits_update(xxh_, p, n);
    EVP_MAC_update(poly_, static_cast<const unsigned char*>(p), n);
  }
  SegmentDigest finish() {
    SegmentDigest d{};
    d.xxh3 = XXH3_64bits_digest(xxh_);
    size_t len = 0;
    if (!EVP_MAC_final(poly_, d.tag, &len, sizeof d.tag) || len != sizeof d.tag)
      throw Error("Poly1305 final failed");
    return d;
  }

 private:
  XXH3_state_t* xxh_;
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

// ---- compression straight from the arena ----

// The calling thread's zstd compression context, kept for reuse. Each use
// sets its own parameters (reset, or ZSTD_compressCCtx, which ignores them).
ZSTD_CCtx* zstd_context() {
  static thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  return cctx;
}

size_t compress_zstd(const Arena& arena, const std::vector<Extent>& extents, uint64_t raw,
                     char* out, size_t cap) {
  ZSTD_CCtx* cctx = zstd_context();
  static const bool can_thread = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers).upperBound > 0;
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, kZstdLevel);
  if (can_thread && raw >= kZstdParallelBytes)
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, int(std::thread::hardware_concurrency()));
  ZSTD_CCtx_setPledgedSrcSize(cctx, raw);
  ZSTD_outBuffer ob{out, cap, 0};
  for (size_t i = 0; i < extents.size(); ++i) {
    ZSTD_inBuffer ib{reinterpret_cast<const char*>(arena.base() + extents[i].offset),
                     extents[i].bytes, 0};
    ZSTD_EndDirective mode = i + 1 == extents.size() ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      size_t left = ZSTD_compressStream2(cctx, &ob, &ib, mode);
      if (ZSTD_isError(left)) throw Error(std::string("zstd: ") + ZSTD_getErrorName(left));
      if (mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size) break;
    }
  }
  return ob.pos;
}

LZ4F_preferences_t lz4_prefs() {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.blockSizeID = LZ4F_max256KB;
  return prefs;
}

size_t compress_lz4(const Arena& arena, const std::vector<Extent>& extents, char* out, size_t cap) {
  static thread_local LZ4F_cctx* cctx = [] {
    LZ4F_cctx* c = nullptr;
    LZ4F_createCompressionContext(&c, LZ4F_VERSION);
    return c;
  }();
  LZ4F_preferences_t prefs = lz4_prefs();
  size_t pos = LZ4F_compressBegin(cctx, out, cap, &prefs);
  if (LZ4F_isError(pos)) throw Error(std::string("lz4: ") + LZ4F_getErrorName(pos));
  for (const Extent& e : extents) {
    size_t n = LZ4F_compressUpdate(cctx, out + pos, cap - pos,
                                   reinterpret_cast<const void*>(arena.base() + e.offset), e.bytes,
                                   nullptr);
    if (LZ4F_isError(n)) throw Error(std::string("lz4: ") + LZ4F_getErrorName(n));
    pos += n;
  }
  size_t n = LZ4F_compressEnd(cctx, out + pos, cap - pos, nullptr);
  if (LZ4F_isError(n)) throw Error(std::string("lz4: ") + LZ4F_getErrorName(n));
  return pos + n;
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

size_t compress_bound(Codec codec, const std::vector<Extent>& extents, uint64_t raw) {
  switch (codec) {
    case Codec::kNone:
      return raw;
    case Codec::kZstd:
      return ZSTD_compressBound(raw);
    case Codec::kLz4: {
      LZ4F_preferences_t prefs = lz4_prefs();
      size_t bound = LZ4F_HEADER_SIZE_MAX + LZ4F_compressBound(0, &prefs);
      for (const Extent& e : extents) bound += LZ4F_compressBound(e.bytes, &prefs);
      return bound;
    }
  }
  return raw;
}

// ---- decompression straight into the mapped arena ----

void decompress_into(Codec codec, std::string_view payload, uintptr_t base,
                     const std::vector<Extent>& extents) {
  bool ok = true;
  if (codec == Codec::kZstd) {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    ZSTD_inBuffer ib{payload.data(), payload.size(), 0};
    for (const Extent& e : extents) {
      ZSTD_outBuffer ob{reinterpret_cast<void*>(base + e.offset), e.bytes, 0};
      while (ok && ob.pos < ob.size) {
        size_t before_in = ib.pos, before_out = ob.pos;
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(r) || (ib.pos == before_in && ob.pos == before_out)) ok = false;
      }
    }
    ZSTD_freeDCtx(dctx);
  } else {
    LZ4F_dctx* dctx = nullptr;
    LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION);
    size_t in = 0;
    for (const Extent& e : extents) {
      size_t out = 0;
      while (ok && out < e.bytes) {
        size_t dst = e.bytes - out, src = payload.size() - in;
        size_t r = LZ4F_decompress(dctx, reinterpret_cast<char*>(base + e.offset) + out, &dst,
                                   payload.data() + in, &src, nullptr);
        if (LZ4F_isError(r) || (dst == 0 && src == 0)) ok = false;
        in += src;
        out += dst;
      }
    }
    LZ4F_freeDecompressionContext(dctx);
  }
  if (!ok)
    reject(std::string("the ") + codec_name(codec) +
           " payload does not decode to the recorded extents");
}

// The image's identity as the parent of a delta.
ImageLink link_of(const ImageHeader& h) {
  ImageLink l;
  std::memcpy(l.nonce.data(), h.nonce, sizeof h.nonce);
  l.depth = h.chain_depth;
  return l;
}

// ---- reading and checking the header ----

struct ParsedImage {
  ImageHeader header;
  ImageLayout layout;
  ImageInfo info;
  std::vector<SegmentDigest> table;  // copied: in the image it is not 8-byte aligned
};

// Where the parts of an image lie, from its first bytes (`head`: at least the
// header, or the whole image if it is shorter) and its whole size.
ImageLayout layout_of(std::string_view head, uint64_t size, ImageHeader& h) {
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
      h.payload_bytes > (uint64_t{1} << 46) || h.segment_count != segment_count(h.payload_bytes))
    reject("implausible header (extents, segments or payload size)");
  ImageLayout l;
  l.header_bytes = sizeof h;
  l.payload_offset = sizeof h + size_t(h.extent_count) * sizeof(Extent);
  l.payload_bytes = size_t(h.payload_bytes);
  l.table_offset = l.payload_offset + l.payload_bytes;
  l.segment_count = h.segment_count;
  l.segment_bytes = kSegmentBytes;
  l.checksum_offset = l.table_offset + l.segment_count * sizeof(SegmentDigest);
  size_t expected = l.checksum_offset + kChecksumBytes + kHmacBytes;
  if (size < expected)
    reject("truncated: " + std::to_string(size) + " bytes, expected " + std::to_string(expected));
  if (size > expected)
    reject("trailing garbage: " + std::to_string(size) + " bytes, expected " +
           std::to_string(expected));
  return l;
}

ImageLayout layout_of(std::string_view image, ImageHeader& h) {
  return layout_of(image, image.size(), h);
}

// Everything but the payload segments: lengths, checksum, HMAC, identity.
ParsedImage check_header(std::string_view image, const std::string& key) {
  ParsedImage p;
  ImageHeader& h = p.header;
  ImageLayout& l = p.layout = layout_of(image, h);
  std::string_view head = image.substr(0, l.payload_offset);
  std::string_view tail = image.substr(l.table_offset, l.checksum_offset - l.table_offset);
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, head.data(), head.size());
  XXH3_64bits_update(st, tail.data(), tail.size());
  uint64_t sum = XXH3_64bits_digest(st), stored;
  XXH3_freeState(st);
  std::memcpy(&stored, image.data() + l.checksum_offset, sizeof stored);
  if (sum != stored) reject("corrupted (checksum mismatch in the header or segment table)");
  unsigned char mac[kHmacBytes];
  hmac_sha256(key, head,
              image.substr(l.table_offset, l.checksum_offset + kChecksumBytes - l.table_offset),
              mac);
  if (CRYPTO_memcmp(mac, image.data() + l.checksum_offset + kChecksumBytes, kHmacBytes) != 0)
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
  if (h.codec > uint32_t(Codec::kZstd)) reject("unknown codec " + std::to_string(h.codec));
  info.arena_base = h.arena_base;
  info.seqno = h.seqno;
  info.suspended_frame = h.suspended_frame;
  info.root_frame = h.root_frame;
  info.pending_op = h.pending_op;
  info.raw_bytes = h.raw_bytes;
  info.payload_bytes = h.payload_bytes;
  info.image_bytes = image.size();
  info.created_unix_ns = h.created_unix_ns;
  info.chain_depth = h.chain_depth;
  info.extents.resize(h.extent_count);
  std::memcpy(info.extents.data(), image.data() + sizeof h, h.extent_count * sizeof(Extent));
  p.table.resize(l.segment_count);
  std::memcpy(p.table.data(), image.data() + l.table_offset,
              l.segment_count * sizeof(SegmentDigest));
  return p;
}

// Compares a recomputed segment digest with the stored one; "" when equal.
std::string segment_problem(size_t i, const SegmentDigest& got, const SegmentDigest& want) {
  if (got.xxh3 != want.xxh3)
    return "corrupted (checksum mismatch in payload segment " + std::to_string(i) + ")";
  if (CRYPTO_memcmp(got.tag, want.tag, sizeof got.tag) != 0)
    return "HMAC mismatch: payload segment " + std::to_string(i) +
           " was modified after signing (forged?)";
  return "";
}

// Verifies every payload segment in place (no copy).
void verify_segments(std::string_view image, const std::string& key, const ParsedImage& p) {
  std::vector<std::string> problems(p.layout.segment_count);
  parallel_for(p.layout.segment_count, [&](size_t i) {
    size_t from = i * kSegmentBytes, to = std::min(p.layout.payload_bytes, from + kSegmentBytes);
    SegmentHasher h(key, p.header.nonce, i);
    h.update(image.data() + p.layout.payload_offset + from, to - from);
    problems[i] = segment_problem(i, h.finish(), p.table[i]);
  });
  for (const std::string& why : problems)
    if (!why.empty()) reject(why);
}

// Writes an image's extents into its (mapped) arena slot; an uncompressed
// payload is verified as it is copied, a compressed one must be verified
// already. `fresh`: the slot's pages were never touched.
void load(std::string_view image, const std::string& key, const ParsedImage& p, bool fresh) {
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
  std::string_view payload = image.substr(p.layout.payload_offset, p.layout.payload_bytes);
  if (info.codec != Codec::kNone) {
    decompress_into(info.codec, payload, base, info.extents);
    return;
  }
  uint64_t raw = info.raw_bytes;
  std::vector<uint64_t> starts = payload_starts(info.extents);
  std::vector<std::string> problems(p.layout.segment_count);
  parallel_for(p.layout.segment_count, [&](size_t i) {
    uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(raw, from + kSegmentBytes);
    SegmentHasher hasher(key, p.header.nonce, i);
    for (uint64_t c = from; c < to; c += kChunkBytes) {
      uint64_t stop = std::min(to, c + kChunkBytes);
      hasher.update(payload.data() + c, stop - c);
      for_each_piece(base, info.extents, starts, c, stop, [&](char* dst, uint64_t pos, uint64_t n) {
        std::memcpy(dst, payload.data() + pos, n);
      });
    }
    problems[i] = segment_problem(i, hasher.finish(), p.table[i]);
  });
  for (const std::string& why : problems)
    if (!why.empty()) reject(why);
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
  ImageHeader h;
  return layout_of(image, h);
}

size_t image_header_bytes() { return sizeof(ImageHeader); }

void check_image_head(std::string_view head, uint64_t image_bytes) {
  ImageHeader h;
  layout_of(head.substr(0, sizeof h), image_bytes, h);
}

ImageLink write_image(Arena& arena, Codec codec, const std::string& key, ImageBuffer& out,
                      const Delta* delta) {
  std::vector<Extent> extents = delta ? delta->extents : arena.snapshot_extents();
  uint64_t raw = 0;
  for (const Extent& e : extents) raw += e.bytes;
  if (codec != Codec::kNone && !worth_compressing(arena, extents, raw)) codec = Codec::kNone;

  ImageHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kImageVersion;
  h.header_bytes = sizeof h;
  h.codec = uint32_t(codec);
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
  h.extent_count = uint32_t(extents.size());
  h.raw_bytes = raw;
  h.created_unix_ns = unix_ns();
  if (RAND_bytes(h.nonce, sizeof h.nonce) != 1) throw Error("RAND_bytes failed");
  h.segment_shift = kSegmentShift;
  if (delta) {
    std::memcpy(h.parent_nonce, delta->parent.nonce.data(), sizeof h.parent_nonce);
    h.chain_depth = delta->parent.depth + 1;
  }

  size_t payload_offset = sizeof h + extents.size() * sizeof(Extent);
  size_t bound = compress_bound(codec, extents, raw);
  size_t max_table = segment_count(bound) * sizeof(SegmentDigest);
  out.resize(0);
  out.reserve(payload_offset + bound + max_table + kChecksumBytes + kHmacBytes);
  char* payload = out.data() + payload_offset;
  std::vector<SegmentDigest> table;

  if (codec == Codec::kNone) {
    // Copy and seal in one pass, segment by segment, on every core.
    h.payload_bytes = raw;
    table.resize(segment_count(raw));
    std::vector<uint64_t> starts = payload_starts(extents);
    parallel_for(table.size(), [&](size_t i) {
      uint64_t from = uint64_t(i) << kSegmentShift, to = std::min(raw, from + kSegmentBytes);
      SegmentHasher hasher(key, h.nonce, i);
      for (uint64_t c = from; c < to; c += kChunkBytes) {
        uint64_t end = std::min(to, c + kChunkBytes);
        for_each_piece(
            arena.base(), extents, starts, c, end,
            [&](const char* src, uint64_t pos, uint64_t n) { std::memcpy(payload + pos, src, n); });
        hasher.update(payload + c, end - c);
      }
      table[i] = hasher.finish();
    });
  } else {
    h.payload_bytes = codec == Codec::kZstd ? compress_zstd(arena, extents, raw, payload, bound)
                                            : compress_lz4(arena, extents, payload, bound);
    table.resize(segment_count(h.payload_bytes));
    parallel_for(table.size(), [&](size_t i) {
      uint64_t from = uint64_t(i) << kSegmentShift;
      uint64_t to = std::min<uint64_t>(h.payload_bytes, from + kSegmentBytes);
      SegmentHasher hasher(key, h.nonce, i);
      hasher.update(payload + from, to - from);
      table[i] = hasher.finish();
    });
  }
  h.segment_count = uint32_t(table.size());
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, extents.data(), extents.size() * sizeof(Extent));
  size_t table_offset = payload_offset + h.payload_bytes;
  size_t table_bytes = table.size() * sizeof(SegmentDigest);
  std::memcpy(out.data() + table_offset, table.data(), table_bytes);
  size_t checksum_offset = table_offset + table_bytes;
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, out.data(), payload_offset);
  XXH3_64bits_update(st, out.data() + table_offset, table_bytes);
  uint64_t sum = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  std::memcpy(out.data() + checksum_offset, &sum, sizeof sum);
  hmac_sha256(key, std::string_view(out.data(), payload_offset),
              std::string_view(out.data() + table_offset, table_bytes + kChecksumBytes),
              reinterpret_cast<unsigned char*>(out.data() + checksum_offset + kChecksumBytes));
  out.resize(checksum_offset + kChecksumBytes + kHmacBytes);
  return link_of(h);
}

ImageInfo verify_image(std::string_view image, const std::string& key) {
  ParsedImage p = check_header(image, key);
  verify_segments(image, key, p);
  return p.info;
}

Arena* restore_image(std::string_view image, const std::string& key) {
  return restore_chain(std::span<const std::string_view>(&image, 1), key);
}

Arena* restore_chain(std::span<const std::string_view> images, const std::string& key,
                     ChainInfo* chain) {
  if (images.empty()) reject("an empty chain");
  // Every link's header is authenticated, and the links checked against each
  // other, before anything is mapped.
  std::vector<ParsedImage> parsed;
  parsed.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    parsed.push_back(check_header(images[i], key));
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
  // Compressed payloads are verified before anything is mapped; uncompressed
  // ones are verified while they are copied into place (one pass).
  for (size_t i = 0; i < parsed.size(); ++i)
    if (parsed[i].info.codec != Codec::kNone) verify_segments(images[i], key, parsed[i]);

  unsigned slot = unsigned((base - kRegionBase) >> kSlotShift);
  bool fresh = Arena::map_raw(slot);
  try {
    for (size_t i = 0; i < parsed.size(); ++i) load(images[i], key, parsed[i], fresh && i == 0);
    if (chain) {
      chain->first = link_of(parsed.front().header);
      chain->last = link_of(parsed.back().header);
      chain->first_raw_bytes = parsed.front().info.raw_bytes;
      std::vector<Extent> pages;
      for (size_t i = 1; i < parsed.size(); ++i)
        for (const Extent& e : parsed[i].info.extents) pages.push_back(e);
      std::sort(pages.begin(), pages.end(),
                [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
      chain->since_first = page_cover(pages);
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
