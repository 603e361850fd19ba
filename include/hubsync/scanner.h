// Builds a data directory's Manifest through the FileSystem seam, hashing
// file content (SHA-256, plus block digests for large files) while reading
// at most one buffer at a time.
//
// A file whose (size, mtime, ctime, inode) is what it was when last read
// keeps its digest without being read again. The manifest this scanner
// last produced is that cache (its entries carry the stat; it shares its
// leaves with the caller's copy, so it costs no memory of its own); it is
// persisted as the record "manifest.cache" of the StateStore given
// (atomically) by SaveCache and read back by LoadCache for the first scan
// after a restart. Files modified within kRacyWindowNs of a scan are not
// trusted, because a later write in the same timestamp tick could leave
// size and mtime unchanged ("racily clean", as git calls it).
//
// Thread rule: one thread. Owns neither the FileSystem, the filter nor the store.
#ifndef HUBSYNC_SCANNER_H_
#define HUBSYNC_SCANNER_H_

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hubsync/filesystem.h"
#include "hubsync/manifest.h"
#include "hubsync/paths.h"
#include "hubsync/state_store.h"

namespace hubsync {

// Hashes a whole file: SHA-256 and, for files >= kBlockDigestMinSize, the
// chunk list (chunker.h). Fails with Aborted if the file changed size while read.
Status HashFile(FileSystem* fs, const std::string& path, uint64_t size, Digest* digest,
                std::string* blocks);

class Scanner {
 public:
  static constexpr int64_t kRacyWindowNs = 2'000'000'000;

  // `cache` null: the digest cache lives in memory only.
  Scanner(FileSystem* fs, const PathFilter* filter, StateStore* cache = nullptr);

  // Scans everything. `now_ns` is the wall clock (for the racy window).
  Result<Manifest> Scan(int64_t now_ns);
  // Re-reads only `paths` (and whole subtrees for directories) and patches
  // `m`, which must be this scanner's last result (patched since by Update
  // only). Explicitly changed files are re-hashed unless `trust_cache`.
  Status Update(Manifest* m, const std::vector<std::string>& paths, int64_t now_ns,
                bool trust_cache = false);
  // Records the digest of a file this process has just written and verified
  // (the backup after a commit), keyed by its current stat, so the next scan
  // does not re-read it.
  Status Remember(std::string path, const Digest& digest, std::string blocks);

  Status LoadCache();
  Status SaveCache();  // no-op when nothing changed
  uint64_t hashed_bytes() const { return hashed_bytes_; }

 private:
  struct CacheEntry {
    uint64_t size;
    int64_t mtime_ns, ctime_ns;
    uint64_t inode;
    Digest digest;
    std::string blocks;
  };
  using EntrySink = std::function<Status(Entry&&)>;
  // Adds what is under `dir` in path order.
  Status ScanDir(const std::string& dir, const EntrySink& add, int64_t now_ns);
  Status MakeEntry(const std::string& path, const FileInfo& fi, bool force_hash, int64_t now_ns,
                   Entry* e);
  // A digest that may be used for `fi` without reading the file, or null.
  bool Cached(const std::string& path, const FileInfo& fi, Entry* e);
  void Known(const Manifest& m);  // the result of a scan or update

  FileSystem* fs_;
  const PathFilter* filter_;
  StateStore* cache_store_;
  Manifest known_;  // the last result
  // From LoadCache, until the first scan; and files Remember()ed since the
  // last scan or update.
  std::unordered_map<std::string, CacheEntry> loaded_, remembered_;
  bool cache_dirty_ = false;
  uint64_t hashed_bytes_ = 0;
};

}  // namespace hubsync

#endif  // HUBSYNC_SCANNER_H_
