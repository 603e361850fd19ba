// Applies a delta on a backup (SPEC 9): streams received files into staging
// inside data_dir/.hubsync/, verifies every digest, then commits the whole
// delta through a redo journal.
//
// Crash atomicity: until the journal is durable, only staging has changed and
// Recover() discards it (old state). Once the journal is durable the delta is
// committed and Recover() replays it to the end (new state); every journal
// step is idempotent. Readers of data_dir never see a partial file: targets
// only ever change by rename().
//
// Barriers per commit: one SyncAll (staged data, their names and the
// journal's content), one directory sync naming the journal, and the
// syncs of what the steps changed. A commit returns once its steps are
// durable; the journal's removal is not waited for (a power cut that
// brings it back replays steps already done, and the next commit's SyncAll
// makes the removal durable before it changes anything).
//
// Refusal: a record with an illegal path, a path whose parent would be a
// symlink or a non-directory after the delta, a digest mismatch, or records
// out of order make the whole delta fail with nothing applied. Paths the
// backup's own filter excludes are never touched (their ops are skipped).
//
// Thread rule: one thread (the backup engine's). Does not own the FileSystem.
#ifndef HUBSYNC_APPLIER_H_
#define HUBSYNC_APPLIER_H_

#include <cstdint>
#include <utility>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/filesystem.h"
#include "hubsync/paths.h"
#include "hubsync/wire.h"

namespace hubsync {

struct ApplyStats {
  uint32_t files = 0;       // files written
  uint32_t deleted = 0;
  uint32_t skipped_excluded = 0;
  uint64_t bytes = 0;       // bytes written to staging
};

class Applier {
 public:
  Applier(FileSystem* fs, const PathFilter* filter);
  ~Applier();

  // What Recover found and did.
  struct Recovery {
    bool finished = false;       // a committed delta's journal was replayed to the end
    uint64_t transfer = 0;       // ... of this transfer
    size_t steps = 0;            // ... with this many steps
    size_t discarded = 0;        // uncommitted transfers whose staging was removed
  };
  // Replays a committed journal if one exists (the tree reaches that delta's
  // new state), then clears staging (an uncommitted delta is dropped: the
  // tree stays old). Corruption naming the journal when it is damaged: then
  // nothing is changed and the caller must not apply anything.
  Status Recover(Recovery* report = nullptr);

  // One transfer: Begin, Record for every record in order, Commit. Any error
  // leaves the transfer failed; call Abort to discard staging. A Commit that
  // fails after its journal is durable (a rename meets ENOSPC, EIO, a local
  // writer) is still committed: Abort keeps the journal and staging, and the
  // next Begin (or Recover) finishes that delta before anything else.
  Status Begin(uint64_t transfer);
  Status Record(const DeltaRecord& r);
  Status Commit();
  void Abort();

  bool active() const { return active_; }
  // A committed delta is not fully renamed yet (see Commit).
  bool journal_pending() const { return journal_pending_; }
  uint64_t transfer() const { return transfer_; }
  const ApplyStats& stats() const { return stats_; }
  // Set when the failure came from reusing local data (local copy or block
  // reuse) so the sender should retry shipping plain bytes.
  bool retry_plain() const { return retry_plain_; }

  // Files the last committed delta wrote, with the digests verified while
  // staging them (so the manifest can be updated without re-reading them).
  struct WrittenFile {
    std::string path;
    Digest digest;
    std::string blocks;
  };
  const std::vector<WrittenFile>& written() const { return written_; }
  // The same, handed over (the applier keeps none: an initial sync's list
  // is as long as the tree).
  std::vector<WrittenFile> TakeWritten() { return std::exchange(written_, {}); }

  // Test hook: stop (as if the process died) after this many journal steps.
  void set_crash_after_steps_for_test(int n) { crash_after_steps_ = n; }

 private:
  struct Step {
    enum class Kind : uint8_t { kDelete = 1, kMkdir, kRename, kSetAttr } kind;
    std::string path;
    std::string staged;  // kRename: name inside the transfer's staging dir
    uint8_t type = 0;
    uint32_t mode = 0;
    int64_t mtime_ns = 0;
  };
  struct OpenFile;

  Status FinishFile();
  Status CheckPostState();
  Status WriteJournal();
  Status ReplayJournal(const std::string& text, size_t* steps_run);
  Status RunSteps(const std::vector<Step>& steps, const std::string& staging_dir);
  std::string StagingDir() const;

  FileSystem* fs_;
  const PathFilter* filter_;
  bool active_ = false;
  bool retry_plain_ = false;
  bool journal_pending_ = false;
  uint64_t transfer_ = 0;
  uint32_t next_staged_ = 0;
  std::vector<Step> steps_;
  std::vector<WrittenFile> written_;
  std::unique_ptr<OpenFile> file_;
  ApplyStats stats_;
  int crash_after_steps_ = -1;
};

}  // namespace hubsync

#endif  // HUBSYNC_APPLIER_H_
