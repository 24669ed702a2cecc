// Checkpoint images: the bytes of a suspended task, as stored.
//
// Format (version 3, little-endian, x86-64):
//
//   ImageHeader          fixed size (see checkpoint_image.cc), with a random nonce
//   Extent[n]            (offset in the arena slot, bytes) of every captured range
//   payload              the extents' bytes, concatenated, then compressed
//   Segment[m]           per 4 MiB segment of the payload: XXH3-64 of its bytes
//                        and a Poly1305 tag under a one-time key derived from
//                        the deployment key, the nonce and the segment number
//   footer               payload size and segment count (known only once the
//                        payload is written), then:
//     uint64 checksum    XXH3-64 of header, extents, segment table and footer
//     uint8  hmac[32]    HMAC-SHA256 (deployment key) of all that and the checksum
//
// Streamed: every part is known before the next is written (version 3 moved
// the payload size from the header to the footer), so an image goes to a
// store in bounded pieces (write_image to a ByteSink), with no buffer of its
// size; a reader takes the header and the footer, then the payload by ranges
// (restore_chain from ByteSources), each segment verified before it is used.
//
// Incremental checkpoints: a delta image has the same format, carries only
// the extents that changed since its parent image, and names that parent by
// its nonce in its (signed) header, with its depth in the chain. A chain is a
// full image followed by deltas, each the child of the one before; restoring
// loads them in that order (restore_chain).
//
// Why segments: HMAC-SHA256 runs at ~1.8 GB/s here, Poly1305 at ~12 GB/s, and
// segments let the cores seal and verify a large image in parallel, fused with
// the copy. The HMAC-SHA256 binds the segment tags; each Poly1305 key is used
// once (the construction of NaCl's secretbox and of ChaCha20-Poly1305).
//
// Verification order, each step with its own error: magic, format version,
// length against the header (truncated?), the footer against the length,
// checksum (corrupted?), HMAC (wrong key or forged?),
// build id (another binary?), layout fingerprint (another address layout?),
// then every segment's checksum (corrupted?) and tag (tampered?). No header
// field is trusted before the HMAC has been checked, except the lengths
// needed to find it; no restored byte is used before its segment verified.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kappa/error.h"
#include "runtime/arena.h"
#include "util/byte_buffer.h"
#include "util/byte_stream.h"

namespace kappa::detail {

enum class Codec : uint32_t { kNone = 0, kLz4 = 1, kZstd = 2 };

/// Parses "none", "lz4" or "zstd"; throws kappa::Error otherwise.
Codec parse_codec(std::string_view name);
const char* codec_name(Codec codec);

/// A checkpoint was rejected; what() names the reason.
class CheckpointRejected : public Error {
 public:
  using Error::Error;
};

inline constexpr uint32_t kImageVersion = 4;  // 4: segment tags without XXH3 checksums

/// What a verified image says about itself (for `inspect` and the runtime).
struct ImageInfo {
  uint32_t version = 0;
  Codec codec = Codec::kNone;
  std::string build_id;
  uint64_t layout_fingerprint = 0;
  uint64_t arena_base = 0;
  uint64_t seqno = 0;
  uint64_t suspended_frame = 0;
  uint64_t root_frame = 0;
  uint32_t pending_op = 0;  // 0: none (a task that has not started yet)
  uint64_t raw_bytes = 0;
  uint64_t payload_bytes = 0;
  uint64_t image_bytes = 0;
  uint64_t created_unix_ns = 0;
  uint32_t chain_depth = 0;  // 0: a full image; n: the n-th delta after one
  std::vector<Extent> extents;
};

/// Identifies an image as the parent of the next delta: its random nonce
/// (bound into its HMAC) and its depth in its chain.
struct ImageLink {
  std::array<uint8_t, 16> nonce{};
  uint32_t depth = 0;
};

/// What a delta image carries: `extents` (the parts of the arena that changed
/// since `parent` was written, from DirtyPages::collect), and which image it
/// applies on top of.
struct Delta {
  ImageLink parent;
  std::vector<Extent> extents;
};

/// An image's bytes; reused across checkpoints so that large images do not
/// fault in fresh pages every time.
using ImageBuffer = ByteBuffer;

/// Where the parts of an image lie (from its header, unverified). For tools
/// and tests; throws CheckpointRejected if the image is too short to say.
struct ImageLayout {
  size_t header_bytes = 0;  // the extent table follows the header
  size_t payload_offset = 0;
  size_t payload_bytes = 0;
  size_t table_offset = 0;  // segment table: segment_count x uint8 tag[16] (Poly1305)
  size_t segment_count = 0;
  size_t segment_bytes = 0;
  // After the table: the footer's fields (uint64 payload bytes, uint32
  // segment count, uint32 zero), then at checksum_offset the uint64
  // checksum, then the 32-byte HMAC.
  size_t checksum_offset = 0;
};
ImageLayout image_layout(std::string_view image);

/// How many first bytes of an image check_image_head() needs: its header.
size_t image_header_bytes();
/// Checks an image before the bulk of it is read, from its first
/// image_header_bytes() bytes (`head`; all of it if it is shorter) and its
/// whole size: magic, format version, a plausible header, and the size the
/// header implies (exactly for an uncompressed image, within the codec's
/// bounds for a compressed one). Nothing is authenticated yet (verify_image does that): this
/// spares reading in whole what cannot be an image, such as a huge file.
/// Throws CheckpointRejected.
void check_image_head(std::string_view head, uint64_t image_bytes);

/// Captures `arena` (its task must be suspended, with no task threads alive)
/// into `out` as a signed image: a full one, or with `delta` only its
/// extents, as a link after `delta->parent`. Returns the new image's link.
/// Call with no arena current.
ImageLink write_image(Arena& arena, Codec codec, const std::string& key, ImageBuffer& out,
                      const Delta* delta = nullptr);
/// The same image, written to `out` in pieces of at most 4 MiB as it is
/// made: an uncompressed payload straight from the arena (its segments sealed
/// in place first), a compressed one a segment at a time. Memory: a few MiB whatever the
/// state's size. The task must stay suspended until it returns.
ImageLink write_image(Arena& arena, Codec codec, const std::string& key, ByteSink& out,
                      const Delta* delta = nullptr);

/// Verifies an image completely (see the order above) and returns its header.
/// Throws CheckpointRejected.
ImageInfo verify_image(std::string_view image, const std::string& key);
ImageInfo verify_image(ByteSource& image, const std::string& key);

/// Verifies `image`, maps its arena at the recorded address and loads it.
/// Throws CheckpointRejected (nothing is mapped then) or kappa::Error when the
/// arena's address range is in use in this process.
Arena* restore_image(std::string_view image, const std::string& key);

/// Restores a chain: a full image, then each delta in order (images[i] must
/// be the delta written with images[i-1] as its parent). Every link is
/// verified, and the links against each other, as restore_image does for one
/// image; a missing, reordered or foreign link is refused before anything is
/// mapped.
/// With `chain`, also says what the chain holds: the links of its first and
/// last images (and of the one before the last), and the pages its deltas
/// carry (the state's pages changed since its full image, and those of the
/// last delta alone).
struct ChainInfo {
  ImageLink first, last;
  ImageLink below_last;             // the link `last` is a delta of (a chain of one: `first`)
  uint64_t first_raw_bytes = 0;     // the full image's state bytes
  std::vector<Extent> since_first;  // pages of the deltas' extents, merged
  std::vector<Extent> last_pages;   // pages of the last delta's extents (a chain of one: none)
};
Arena* restore_chain(std::span<const std::string_view> images, const std::string& key,
                     ChainInfo* chain = nullptr);
/// The same, reading each image by ranges from its source: the header and
/// footer first, then the payload into place a few segments at a time (an
/// uncompressed one straight into the arena), each segment verified before
/// anything uses it. Memory: a few MiB beyond the state.
Arena* restore_chain(std::span<ByteSource* const> images, const std::string& key,
                     ChainInfo* chain = nullptr);

}  // namespace kappa::detail
