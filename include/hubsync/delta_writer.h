// Turns a per-backup diff into delta chunks (primary side), reading file
// content through the FileSystem one piece at a time: memory stays at about
// one chunk whatever the file sizes.
//
// Thread rule: one thread. Holds the snapshot its Ops point into.
#ifndef HUBSYNC_DELTA_WRITER_H_
#define HUBSYNC_DELTA_WRITER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hubsync/filesystem.h"
#include "hubsync/manifest.h"
#include "hubsync/wire.h"

namespace hubsync {

class DeltaWriter {
 public:
  // `ops` must point into `target` and `base_manifest`, which are kept alive.
  // With `precondition`, the first chunk starts with a kBase record naming
  // it: the backup applies the delta only if that is its root.
  // `target_root`, when the caller has it, spares hashing `target` again
  // (it must be target->root()).
  DeltaWriter(FileSystem* fs, std::shared_ptr<const Manifest> target,
              std::shared_ptr<const Manifest> base_manifest, std::vector<Op> ops, size_t max_plain,
              std::optional<Digest> precondition = std::nullopt,
              std::optional<Digest> target_root = std::nullopt);
  ~DeltaWriter();

  // The next chunk's plaintext; sets *last on the final one (ending in kEnd).
  // Aborted if a file changed under us (the primary will rescan and retry).
  Result<std::string> Next(bool* last);
  bool done() const { return done_; }
  uint64_t total_bytes() const { return total_; }    // file bytes to ship
  uint64_t shipped_bytes() const { return shipped_; }
  size_t op_count() const { return ops_.size(); }

 private:
  struct Segment {
    bool copy;        // copied on the backup from the op's base file
    uint64_t offset;  // in this file (data) or in the base file (copy)
    uint64_t length;  // bytes
  };
  void PlanSegments(const Op& op);
  DeltaRecord FileRecord(const Op& op) const;

  FileSystem* fs_;
  std::shared_ptr<const Manifest> target_, base_;
  std::vector<Op> ops_;
  size_t max_plain_;
  std::optional<Digest> precondition_;
  std::optional<Digest> target_root_;
  size_t next_op_ = 0;
  bool begun_ = false;
  bool done_ = false;
  uint64_t total_ = 0, shipped_ = 0;
  // The file being shipped.
  std::vector<Segment> segments_;
  std::string copy_source_;  // the base file's path
  size_t seg_ = 0;
  uint64_t seg_done_ = 0;
  std::unique_ptr<ReadableFile> reader_;
  std::string buf_;
};

}  // namespace hubsync

#endif  // HUBSYNC_DELTA_WRITER_H_
