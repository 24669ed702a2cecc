#include "runtime/checkpoint_image.h"

#include <lz4frame.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <xxhash.h>
#include <zstd.h>

#include <chrono>
#include <cstring>

#include "kappa/pause.h"
#include "runtime/layout.h"

namespace kappa::detail {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the image format is little-endian");

constexpr char kMagic[8] = {'K', 'A', 'P', 'P', 'A', 'C', 'K', 'P'};
constexpr size_t kChecksumBytes = 8;
constexpr size_t kHmacBytes = 32;
constexpr size_t kTrailerBytes = kChecksumBytes + kHmacBytes;
constexpr int kZstdLevel = 1;

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
};
static_assert(std::is_trivially_copyable_v<ImageHeader>);

[[noreturn]] void reject(const std::string& why) {
  throw CheckpointRejected("checkpoint rejected: " + why);
}

uint64_t unix_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

void hmac_sha256(const std::string& key, const void* data, size_t n, unsigned char* out) {
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key.data(), int(key.size()), static_cast<const unsigned char*>(data), n,
            out, &len) ||
      len != kHmacBytes)
    throw Error("HMAC-SHA256 failed");
}

// ---- compression of the extents straight from the arena ----

size_t compress_zstd(const Arena& arena, const std::vector<Extent>& extents, uint64_t raw,
                     char* out, size_t cap) {
  static thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, kZstdLevel);
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

size_t compress_lz4(const Arena& arena, const std::vector<Extent>& extents, char* out,
                    size_t cap) {
  static thread_local LZ4F_cctx* cctx = [] {
    LZ4F_cctx* c = nullptr;
    LZ4F_createCompressionContext(&c, LZ4F_VERSION);
    return c;
  }();
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.blockSizeID = LZ4F_max4MB;
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

size_t compress_bound(Codec codec, const std::vector<Extent>& extents, uint64_t raw) {
  switch (codec) {
    case Codec::kNone:
      return raw;
    case Codec::kZstd:
      return ZSTD_compressBound(raw);
    case Codec::kLz4: {
      LZ4F_preferences_t prefs{};
      prefs.frameInfo.blockSizeID = LZ4F_max4MB;
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
  if (codec == Codec::kNone) {
    size_t pos = 0;
    for (const Extent& e : extents) {
      std::memcpy(reinterpret_cast<void*>(base + e.offset), payload.data() + pos, e.bytes);
      pos += e.bytes;
    }
    return;
  }
  if (codec == Codec::kZstd) {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    ZSTD_inBuffer ib{payload.data(), payload.size(), 0};
    bool ok = true;
    for (const Extent& e : extents) {
      ZSTD_outBuffer ob{reinterpret_cast<void*>(base + e.offset), e.bytes, 0};
      while (ok && ob.pos < ob.size) {
        size_t before_in = ib.pos, before_out = ob.pos;
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(r) || (ib.pos == before_in && ob.pos == before_out)) ok = false;
      }
    }
    ZSTD_freeDCtx(dctx);
    if (!ok) reject("the zstd payload does not decode to the recorded extents");
    return;
  }
  LZ4F_dctx* dctx = nullptr;
  LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION);
  size_t in = 0;
  bool ok = true;
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
  if (!ok) reject("the lz4 payload does not decode to the recorded extents");
}

ImageHeader read_header(std::string_view image) {
  if (image.size() < sizeof(kMagic) || std::memcmp(image.data(), kMagic, sizeof kMagic) != 0)
    reject("not a Kappa checkpoint (bad magic)");
  if (image.size() < 16) reject("truncated: only " + std::to_string(image.size()) + " bytes");
  uint32_t version;
  std::memcpy(&version, image.data() + 8, sizeof version);
  if (version != kImageVersion)
    reject("unsupported format version " + std::to_string(version) + " (this binary reads " +
           std::to_string(kImageVersion) + ")");
  ImageHeader h;
  if (image.size() < sizeof h)
    reject("truncated: " + std::to_string(image.size()) + " bytes, header alone needs " +
           std::to_string(sizeof h));
  std::memcpy(&h, image.data(), sizeof h);
  if (h.header_bytes != sizeof h) reject("bad header size " + std::to_string(h.header_bytes));
  return h;
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

void ImageBuffer::reserve(size_t n) {
  if (n <= capacity_) return;
  size_t cap = capacity_ ? capacity_ : 4096;
  while (cap < n) cap *= 2;
  std::unique_ptr<char[]> fresh(new char[cap]);
  if (size_) std::memcpy(fresh.get(), data_.get(), size_);
  data_ = std::move(fresh);
  capacity_ = cap;
}

void write_image(Arena& arena, Codec codec, const std::string& key, ImageBuffer& out) {
  std::vector<Extent> extents = arena.snapshot_extents();
  uint64_t raw = 0;
  for (const Extent& e : extents) raw += e.bytes;

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

  size_t prefix = sizeof h + extents.size() * sizeof(Extent);
  out.resize(0);
  out.reserve(prefix + compress_bound(codec, extents, raw) + kTrailerBytes);
  char* payload = out.data() + prefix;
  size_t payload_bytes = 0;
  switch (codec) {
    case Codec::kNone:
      for (const Extent& e : extents) {
        std::memcpy(payload + payload_bytes, reinterpret_cast<const void*>(arena.base() + e.offset),
                    e.bytes);
        payload_bytes += e.bytes;
      }
      break;
    case Codec::kZstd:
      payload_bytes = compress_zstd(arena, extents, raw, payload, compress_bound(codec, extents, raw));
      break;
    case Codec::kLz4:
      payload_bytes = compress_lz4(arena, extents, payload, compress_bound(codec, extents, raw));
      break;
  }
  h.payload_bytes = payload_bytes;
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, extents.data(), extents.size() * sizeof(Extent));
  size_t body = prefix + payload_bytes;
  uint64_t sum = XXH3_64bits(out.data(), body);
  std::memcpy(out.data() + body, &sum, sizeof sum);
  hmac_sha256(key, out.data(), body + kChecksumBytes,
              reinterpret_cast<unsigned char*>(out.data() + body + kChecksumBytes));
  out.resize(body + kTrailerBytes);
}

ImageInfo verify_image(std::string_view image, const std::string& key) {
  ImageHeader h = read_header(image);
  if (h.extent_count > kMaxPages) reject("implausible extent count " + std::to_string(h.extent_count));
  uint64_t prefix = sizeof h + uint64_t(h.extent_count) * sizeof(Extent);
  uint64_t expected = prefix + h.payload_bytes + kTrailerBytes;
  if (h.payload_bytes > image.size() || image.size() < expected)
    reject("truncated: " + std::to_string(image.size()) + " bytes, expected " +
           std::to_string(expected));
  if (image.size() > expected)
    reject("trailing garbage: " + std::to_string(image.size()) + " bytes, expected " +
           std::to_string(expected));
  size_t body = size_t(expected - kTrailerBytes);
  uint64_t sum;
  std::memcpy(&sum, image.data() + body, sizeof sum);
  if (XXH3_64bits(image.data(), body) != sum) reject("corrupted (checksum mismatch)");
  unsigned char mac[kHmacBytes];
  hmac_sha256(key, image.data(), body + kChecksumBytes, mac);
  if (CRYPTO_memcmp(mac, image.data() + body + kChecksumBytes, kHmacBytes) != 0)
    reject("HMAC mismatch: signed with another key, or forged");

  ImageInfo info;
  info.version = h.version;
  info.codec = Codec(h.codec);
  info.build_id.assign(h.build_id, std::min<size_t>(h.build_id_len, sizeof h.build_id));
  if (info.build_id != build_id())
    reject("written by another binary (build id " + info.build_id + ", this binary " +
           build_id() + ")");
  info.layout_fingerprint = h.layout_fingerprint;
  if (h.layout_fingerprint != layout_fingerprint())
    reject(std::string("written under another address layout (shared libraries or TLS at other "
                       "addresses") +
           (layout_is_fixed() ? ")" : "; ASLR is on in this process: run it through its "
                                      "KAPPA_MAIN entry point or with setarch -R)"));
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
  info.extents.resize(h.extent_count);
  std::memcpy(info.extents.data(), image.data() + sizeof h, h.extent_count * sizeof(Extent));
  return info;
}

Arena* restore_image(std::string_view image, const std::string& key) {
  ImageInfo info = verify_image(image, key);
  // Authenticated from here on; still check the geometry, defensively.
  uint64_t base = info.arena_base;
  if (base < kRegionBase || base >= kRegionEnd || (base - kRegionBase) % kSlotBytes != 0)
    reject("arena base outside the arena region");
  uint64_t raw = 0, end = 0;
  for (const Extent& e : info.extents) {
    if (e.offset < end || e.bytes > kSlotBytes || e.offset > kSlotBytes - e.bytes)
      reject("extents out of order or outside the arena");
    end = e.offset + e.bytes;
    raw += e.bytes;
  }
  if (raw != info.raw_bytes) reject("extent sizes do not add up to the recorded size");
  if (info.extents.empty() || info.extents[0].offset != 0 || info.extents[0].bytes < kPageBytes)
    reject("the arena header is missing");
  unsigned slot = unsigned((base - kRegionBase) >> kSlotShift);
  Arena::map_raw(slot);
  try {
    size_t prefix = image.size() - kTrailerBytes - info.payload_bytes;
    decompress_into(info.codec, image.substr(prefix, info.payload_bytes), base, info.extents);
    return Arena::adopt(slot);
  } catch (...) {
    Arena::destroy(reinterpret_cast<Arena*>(base));
    throw;
  }
}

}  // namespace kappa::detail
