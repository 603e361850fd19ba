// Manifests (what a data directory holds) and the per-backup diff: pure
// functions over in-memory values, no I/O.
#ifndef HUBSYNC_MANIFEST_H_
#define HUBSYNC_MANIFEST_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
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
  // Local only (never sent, not in the root): the stat the digest was read
  // under, so that the next scan may trust it (scanner.h). inode 0: not to
  // be trusted (written within the racy window, or not read from this disk).
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
};

// A data directory's entries, sorted by path in byte order (parents before
// children), paths unique.
//
// The entries are cut into leaves after every path whose hash says so
// (content-defined: on average every kLeafAverage entries, at most
// kMaxLeaf), so two manifests holding the same entries are cut the same
// way however they were built, and an edit changes only the leaves around
// it. A leaf is immutable and shared by every copy holding it: copying a
// manifest copies pointers to its leaves, never entries. Each leaf carries
// the hash of its entries (path, type, mode, size, digest, target and,
// except for directories, mtime; not chunk lists); the root is the hash of
// the leaves' hashes, so equal roots mean equal trees, and Diff skips equal
// leaves without looking inside. An edit costs O(leaves) pointer moves plus
// re-cutting and re-hashing the few leaves it touches.
//
// Thread rule: leaves are never modified once built, so copies may be read
// on different threads; a manifest edited since its last root() call fills
// its root cache on the next one (call root() before sharing it).
class Manifest {
 public:
  static constexpr size_t kLeafAverage = 64;
  static constexpr size_t kMaxLeaf = 256;
  struct Leaf {
    std::vector<Entry> entries;  // at least one
    Digest hash{};
    uint64_t files = 0, bytes = 0;
    // Bits set by the digests of its non-empty files: FindContent skips a
    // leaf whose bits do not match.
    uint64_t content_bits[16] = {};
  };
  using LeafPtr = std::shared_ptr<const Leaf>;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Entry;
    using difference_type = std::ptrdiff_t;
    using pointer = const Entry*;
    using reference = const Entry&;
    const_iterator() = default;
    reference operator*() const { return (*leaves_)[leaf_]->entries[at_]; }
    pointer operator->() const { return &**this; }
    const_iterator& operator++();
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return leaf_ == o.leaf_ && at_ == o.at_; }
    bool operator!=(const const_iterator& o) const { return !(*this == o); }

   private:
    friend class Manifest;
    const_iterator(const std::vector<LeafPtr>* leaves, size_t leaf, size_t at)
        : leaves_(leaves), leaf_(leaf), at_(at) {}
    const std::vector<LeafPtr>* leaves_ = nullptr;
    size_t leaf_ = 0, at_ = 0;
  };

  Manifest();
  // Sorts `entries` by path; of entries with the same path the first is kept.
  explicit Manifest(std::vector<Entry> entries);
  Manifest(std::initializer_list<Entry> entries) : Manifest(std::vector<Entry>(entries)) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const_iterator begin() const { return const_iterator(&leaves_, 0, 0); }
  const_iterator end() const { return const_iterator(&leaves_, leaves_.size(), 0); }
  const Entry& operator[](size_t i) const;  // O(leaves): for tests and small lists
  const std::vector<LeafPtr>& leaves() const { return leaves_; }

  // The entry at `path`, or null. O(log size).
  const Entry* Find(std::string_view path) const;
  // Whether any entry lies under directory `path` ("path/..."). O(log size).
  bool HasChildren(std::string_view path) const;
  // The first file in path order holding `size` (> 0) bytes with `digest`,
  // or null. Reads only the leaves whose content bits match.
  const Entry* FindContent(uint64_t size, const Digest& digest) const;

  // Removes `path` and everything under it, then adds `fresh`: entries at
  // or under `path` (others are ignored), in any order.
  void ReplaceSubtree(const std::string& path, std::vector<Entry> fresh);
  // Adds or replaces the one entry at e.path (nothing under it changes).
  void Put(Entry e);
  // Removes the one entry at `path`, if any (nothing under it changes).
  void Erase(const std::string& path);

  // Computed on first use after an edit (O(leaves)), then cached.
  const Digest& root() const;
  uint64_t files() const { return files_; }  // regular files
  uint64_t bytes() const { return bytes_; }  // sum of file sizes

 private:
  // Rebuilds the leaves holding paths in [lo, hi) from what they hold,
  // minus what `drop` says, plus `add` (sorted, unique, all in [lo, hi)).
  template <typename Drop>
  void Splice(std::string_view lo, std::string_view hi, Drop drop, std::vector<Entry> add);

  friend class ManifestBuilder;

  std::vector<LeafPtr> leaves_;
  size_t size_ = 0;
  uint64_t files_ = 0, bytes_ = 0;
  mutable Digest root_{};
  mutable bool root_stale_ = true;
};

// Builds a manifest from entries given in path order, cutting leaves as
// they come: no list of every entry is held beside the leaves (at 100,000
// files that list is as big as the manifest). A leaf equal to one of
// `like`'s (`like` must outlive the builder) is taken from there, so a
// rescan that finds little changed, or a backup's manifest much like ours,
// shares leaves instead of holding a second copy. Equal means in every
// field that is sent (chunk lists too), and with `local` in the local
// ones as well (a scan: the stat a digest was read under must be kept).
class ManifestBuilder {
 public:
  explicit ManifestBuilder(const Manifest* like = nullptr, bool local = true)
      : like_(like), local_(local) {}
  // False, and `e` dropped, unless e.path sorts after the last path added.
  bool Add(Entry e);
  Manifest Finish();  // the builder is empty afterwards

 private:
  void CutLeaf();
  const Manifest* like_;
  bool local_;
  Manifest m_;
  std::vector<Entry> leaf_;
};

// Drops entries the filter excludes.
Manifest FilterManifest(const Manifest& m, const PathFilter& filter);

// Calls visit(a, b) in path order for every path where `a` and `b` differ
// (either pointer null when only the other holds the path; both set when
// the entries differ in what the root covers), skipping equal leaves.
void VisitDifferences(const Manifest& a, const Manifest& b,
                      const std::function<void(const Entry* a, const Entry* b)>& visit);

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
  // Views of the manifests' paths (an initial sync has an Op per file):
  // valid while the manifests Diff was given are.
  std::string_view path;
  // kPutFile sources besides shipped bytes:
  std::string_view local_source;  // a backup path already holding this digest
  const Entry* base = nullptr;   // a backup file sharing chunks with it (its old
                                 // version, or another path): those are copied there
};

struct DiffOptions {
  bool allow_local_source = true;  // copy identical content already on the backup
  bool allow_block_reuse = true;   // ship only the chunks of large files the backup lacks
};

// What `backup` lacks to equal `primary`: deletions first (children before
// parents), then creations and updates (parents before children). The
// Ops point into the manifests' leaves (keep them alive). Equal leaves are
// skipped, so a small change to a big tree costs O(leaves + change).
std::vector<Op> Diff(const Manifest& primary, const Manifest& backup,
                     const DiffOptions& opts = {});

}  // namespace hubsync

#endif  // HUBSYNC_MANIFEST_H_
