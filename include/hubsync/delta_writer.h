// Turns a per-backup diff into delta chunks (primary side), reading file
// content through the FileSystem one piece at a time: memory stays at about
// one chunk whatever the file sizes.
//
// Thread rule: one thread. Holds the snapshot its Ops point into.
#ifndef HUBSYNC_DELTA_WRITER_H_
#define HUBSYNC_DELTA_WRITER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hubsync/envelope.h"
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

class DeltaReader;

// A delta read, cut and compressed once for every backup it goes to: the
// backups a change finds at the same tree get the same chunks, and each
// seals them under its own key. Chunks are held from the first until
// kMaxHeld (or kMaxHeldBytes) are, so backups whose syncs start meanwhile
// can join; after that a chunk is dropped once every reader has taken it.
// When the held chunks reach the limit again, the readers still needing the
// oldest are let go (their Next says so) and go on alone
// (DeltaReader::Alone): a slow backup never holds up the rest, and memory
// stays within the limit.
//
// Thread rule: one thread.
class SharedDelta : public std::enable_shared_from_this<SharedDelta> {
 public:
  static constexpr size_t kMaxHeld = 16;
  static constexpr size_t kMaxHeldBytes = 4 << 20;

  SharedDelta(std::unique_ptr<DeltaWriter> writer, bool compress);
  // A reader at the first chunk; null once that chunk is gone.
  std::unique_ptr<DeltaReader> Join();
  const DeltaWriter& writer() const { return *writer_; }

 private:
  friend class DeltaReader;
  static constexpr size_t kGone = SIZE_MAX;
  // Reader r's next chunk; Unavailable if r was let go; the writer's error
  // (to every reader from then on) if it failed.
  Result<std::shared_ptr<const PackedChunk>> Next(size_t r);
  void Leave(size_t r);
  bool Full() const;
  // Drops the chunks every reader has taken, unless others may still join
  // and `closing` is false.
  void Trim(bool closing);

  std::unique_ptr<DeltaWriter> writer_;
  bool compress_;
  std::deque<std::shared_ptr<const PackedChunk>> held_;
  size_t held_bytes_ = 0;
  Status failed_;  // the writer's first error, which every reader then gets
  size_t first_ = 0;             // the index of held_.front()
  std::vector<size_t> cursors_;  // per reader: the next index it takes, or kGone
};

// One backup's place in a SharedDelta; leaves it when destroyed.
class DeltaReader {
 public:
  ~DeltaReader();
  // The next chunk (DeltaWriter::Next's errors); Unavailable once this
  // reader has been let go for falling kMaxHeld chunks behind.
  Result<std::shared_ptr<const PackedChunk>> Next() { return stream_->Next(slot_); }
  // A reader on a stream of its own over `writer` (the same delta written
  // again), at chunk `at`: the chunks before are cut and dropped unpacked.
  static Result<std::unique_ptr<DeltaReader>> Alone(std::unique_ptr<DeltaWriter> writer,
                                                    bool compress, size_t at);
  // Another reader of the same stream at its first chunk; null once that
  // chunk is gone.
  std::unique_ptr<DeltaReader> Join() { return stream_->Join(); }
  const DeltaWriter& writer() const { return stream_->writer(); }
  bool shared() const { return stream_.use_count() > 1; }

 private:
  friend class SharedDelta;
  DeltaReader(std::shared_ptr<SharedDelta> s, size_t slot) : stream_(std::move(s)), slot_(slot) {}
  std::shared_ptr<SharedDelta> stream_;
  size_t slot_;
};

}  // namespace hubsync

#endif  // HUBSYNC_DELTA_WRITER_H_
