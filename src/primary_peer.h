// The primary's view of one backup (private to primary*.cc): presence,
// key channel, retry timing, the sync in progress and what the backup is
// known to hold.
#ifndef HUBSYNC_SRC_PRIMARY_PEER_H_
#define HUBSYNC_SRC_PRIMARY_PEER_H_

#include <memory>
#include <optional>
#include <string>

#include "hubsync/engine.h"

namespace hubsync {

struct PrimaryEngine::Peer {
  enum class Phase { kIdle, kAwaitManifest, kSending, kAwaitAck };
  std::string id;
  std::unique_ptr<SecureChannel> channel;
  Phase phase = Phase::kIdle;
  bool wanted = true;        // a sync should run
  bool rescan = true;        // have the backup re-read its disk (repairs drift)
  bool plain_next = false;   // no local copies / block reuse next time
  // Presence comes from the backup's retained status: a backup is synced
  // once it is known to be up (its birth, or a retained non-offline status).
  bool online = false;
  int64_t retry_at_ms = 0;
  int64_t backoff_ms = 0;
  int64_t deadline_ms = 0;
  int64_t next_key_log_ms = 0;
  // The current sync.
  uint64_t transfer = 0;
  // Its request, repeated (sealed anew) while nothing has come back: a
  // backup that has just (re)connected may miss it, and the phase timeout
  // is far longer.
  std::string request;
  int64_t repeat_at_ms = 0;
  int64_t repeat_gap_ms = 0;
  bool answered = false;
  // The delta was sent at once against `known` (no request): if nothing
  // comes back within kRequestRepeatMs it may have been missed (a backup
  // that has just reconnected), so the exchange follows (`ask_next`).
  bool direct = false;
  bool ask_next = false;
  // The tree such a delta brought the backup to, if it was applied after
  // all: the next request names it as `also`.
  std::shared_ptr<const Manifest> sent;
  Digest sent_root{};
  int64_t started_ms = 0;
  int64_t last_progress_log_ms = 0;
  uint64_t wire_bytes = 0;
  std::shared_ptr<const Manifest> snapshot;
  Digest snapshot_root{};
  ManifestAssembler assembler;
  std::shared_ptr<const Manifest> backup_manifest;
  // The delta being sent: its place in a stream other backups at the same
  // tree may share, and what makes two deltas the same.
  std::unique_ptr<DeltaReader> delta;
  struct DeltaKey {
    Digest target{}, base{};
    std::optional<Digest> precondition;
    bool plain = false;
    bool operator==(const DeltaKey& o) const {
      return target == o.target && base == o.base && precondition == o.precondition &&
             plain == o.plain;
    }
  } delta_key;
  uint32_t next_chunk = 0;
  int64_t acked_chunk = -1;
  // What the backup is known to hold after its last successful sync.
  std::shared_ptr<const Manifest> known;
  Digest known_root{};
  int64_t last_sync_ns = 0;
  // Why the last sync failed, name-free ("" once one succeeds or the backup
  // goes away): the primary's status is "error" with it.
  std::string error;
};

}  // namespace hubsync

#endif  // HUBSYNC_SRC_PRIMARY_PEER_H_
