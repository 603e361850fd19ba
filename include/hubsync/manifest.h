// Manifests (what a data directory holds) and the per-backup diff: pure
// functions over in-memory values, no I/O.
#ifndef HUBSYNC_MANIFEST_H_
#define HUBSYNC_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/paths.h"

namespace hubsync {

enum class EntryType : uint8_t { kFile = 1, kDir = 2, kSymlink = 3 };

// The mode bits replicated (SPEC 9): permissions only. setuid, setgid and
// sticky are never read into a manifest, sent, or set on a backup.
inline constexpr uint32_t kReplicatedModeBits = 0777;

// Files at least this large carry a chunk list (chunker.h: content-defined
// chunks) so that an edit, insertion or deletion ships only the chunks
// around it.
inline constexpr uint64_t kBlockDigestMinSize = 1u << 20;
inline constexpr size_t kBlockDigestBytes = 16;  // truncated SHA-256; the
                                                 // whole-file digest is checked too
// The most chunks a list may hold: chunks are at least a quarter of an
// average sized for ChunkSizesFor's 2,048 per file, plus a short last one.
inline constexpr uint32_t kMaxBlocks = 4 * 2048 + 1;
// The largest file hubsync replicates; decoders refuse larger sizes.
inline constexpr uint64_t kMaxFileSize = 1ull << 40;

struct Entry {
  std::string path;  // relative, normalised (ValidateRelativePath)
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;      // permission bits only (07777)
  int64_t mtime_ns = 0;   // not compared for directories
  uint64_t size = 0;      // files only
  Digest digest{};        // files: SHA-256 of content; symlinks: of the target
  std::string target;     // symlinks only
  std::string blocks;     // chunk list (chunker.h; files >= kBlockDigestMinSize only)
};

// Sorted by path in byte order; paths unique. Parents sort before children.
using Manifest = std::vector<Entry>;

void SortManifest(Manifest* m);
// Hash over every entry's path, type, mode, size, digest, target and (except
// for directories) mtime. Equal roots mean equal trees.
Digest ManifestRoot(const Manifest& m);
// Drops entries the filter excludes.
Manifest FilterManifest(const Manifest& m, const PathFilter& filter);
uint64_t ManifestBytes(const Manifest& m);  // sum of file sizes

// One step of a delta, in apply order.
struct Op {
  enum class Kind : uint8_t {
    kDelete = 1,   // remove path (file, symlink or empty directory)
    kMkdir,        // create directory (or fix its mode)
    kPutFile,      // new content for a file
    kSymlink,      // create or replace a symlink
    kSetAttr,      // same content, new mode/mtime
  };
  Kind kind;
  const Entry* entry = nullptr;  // the primary's entry (not for kDelete)
  std::string path;
  // kPutFile sources besides shipped bytes:
  std::string local_source;      // a backup path already holding this digest
  const Entry* base = nullptr;   // a backup file sharing chunks with it (its old
                                 // version, or another path): those are copied there
};

struct DiffOptions {
  bool allow_local_source = true;  // copy identical content already on the backup
  bool allow_block_reuse = true;   // ship only the chunks of large files the backup lacks
};

// What `backup` lacks to equal `primary`: deletions first (children before
// parents), then creations and updates (parents before children). Both
// manifests must be sorted; the returned Ops point into them.
std::vector<Op> Diff(const Manifest& primary, const Manifest& backup,
                     const DiffOptions& opts = {});

}  // namespace hubsync

#endif  // HUBSYNC_MANIFEST_H_
