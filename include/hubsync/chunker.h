// Content-defined chunks of large files (issue 10): where a file is cut
// depends only on the bytes around the cut (a gear hash over the last 64
// bytes, FastCDC's normalised chunking), so inserting or deleting bytes
// moves only the chunks around the edit and every other chunk keeps its
// digest. Pure: no I/O.
//
// A file's chunk list (Entry::blocks) is a run of records, each a 4-byte
// little-endian length and the first kBlockDigestBytes of the chunk's
// SHA-256, in file order; the lengths add up to the file's size.
#ifndef HUBSYNC_CHUNKER_H_
#define HUBSYNC_CHUNKER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/manifest.h"
#include "hubsync/status.h"

namespace hubsync {

inline constexpr size_t kChunkRecordBytes = 4 + kBlockDigestBytes;

// Chunk sizes for a file of `size` bytes: the average is the smallest power
// of two >= 16 KiB that gives about kTargetChunks chunks; chunks are cut no
// shorter than a quarter of it (except the last) and no longer than four
// times it, so a list never exceeds kMaxBlocks records.
struct ChunkSizes {
  uint32_t min = 0, avg = 0, max = 0;
};
inline constexpr uint64_t kTargetChunks = 2048;
ChunkSizes ChunkSizesFor(uint64_t size);

// Cuts a stream of `size` bytes (fed in any pieces) into chunks and hashes
// each. The cuts do not depend on how the stream is split into Update calls.
class Chunker {
 public:
  explicit Chunker(uint64_t size);
  void Update(std::string_view data);
  // The chunk list of everything fed (the last chunk may be short); resets.
  std::string Finish();

 private:
  void Cut();
  ChunkSizes sizes_;
  uint64_t mask_small_, mask_large_;  // before / after the average length
  uint64_t fp_ = 0;
  uint64_t len_ = 0;  // bytes in the chunk being cut
  Sha256 hash_;
  std::string list_;
};

// The chunk list of `data` in one go (tests, small inputs).
std::string ChunkList(std::string_view data);

struct ChunkView {
  uint64_t offset = 0;  // in the file
  uint32_t length = 0;
  std::string_view digest;  // kBlockDigestBytes
};
// The records of a list that CheckChunkList accepted.
std::vector<ChunkView> ChunkViews(std::string_view list);
// A list for a file of `size` bytes: whole records, each length > 0, at
// most kMaxBlocks of them, lengths adding up to `size`. Corruption if not.
Status CheckChunkList(std::string_view list, uint64_t size);

}  // namespace hubsync

#endif  // HUBSYNC_CHUNKER_H_
