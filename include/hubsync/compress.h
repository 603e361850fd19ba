// Compression of what is sealed (issue 10: JSON trees ship compressed).
// The adapter over zstd is src/zstd_codec.cc, the only file that includes
// <zstd.h>. Compression happens before sealing and decompression only after
// a message has authenticated, within a size bound the receiver sets.
#ifndef HUBSYNC_COMPRESS_H_
#define HUBSYNC_COMPRESS_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "hubsync/status.h"

namespace hubsync {

// One zstd frame of `in` (with its size) in *out, when that saves at least
// a sixteenth; false otherwise (*out is then unspecified) and for inputs too
// small to gain anything.
bool Compress(std::string_view in, std::string* out);

// The content of exactly one zstd frame that declares its size, at most
// `max_out` bytes. Corruption for anything else (unknown size, larger,
// malformed, trailing bytes); never allocates more than `max_out`.
Result<std::string> Decompress(std::string_view in, size_t max_out);

}  // namespace hubsync

#endif  // HUBSYNC_COMPRESS_H_
