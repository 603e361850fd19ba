// One backup as the primary serves it (private to the primary): whether it
// is there, its key channel, the sync in progress and the tree it is known
// to hold.
//
// A sync brings the backup to the primary's current tree, narrowed to what
// the policies let go (DueTree):
//   - nothing in doubt (the last sync left it at a tree we know, no check
//     asked for): the delta goes at once with that tree's root as a
//     precondition; the backup applies it only onto that root, else answers
//     kStale and the exchange below follows (one round trip when all is well);
//   - otherwise a sealed request, the backup's manifest (or "same" when its
//     root is one we know), then the delta.
// A delta goes in chunks, at most kWindow ahead of the backup's last ack; a
// delta other sessions send too (same trees) is read and compressed once
// (SharedDelta). Each phase has a deadline; an unanswered request is
// repeated, an unanswered direct delta is followed by the exchange. Failures
// back off (200 ms doubling to kMaxBackoffMs) and are reported in the status.
//
// Thread rule: the engine's thread only.
#ifndef HUBSYNC_SRC_SYNC_SESSION_H_
#define HUBSYNC_SRC_SYNC_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hubsync/delta_writer.h"
#include "hubsync/engine.h"
#include "hubsync/term.h"
#include "hubsync/wire.h"

namespace hubsync {

class SyncSession {
 public:
  // Its timing: PrimaryEngine's kWindow, kPhaseTimeoutMs, kMaxBackoffMs,
  // kRequestRepeatMs.

  // What makes two deltas the same: sessions with equal keys share one.
  struct DeltaKey {
    Digest target{}, base{};
    std::optional<Digest> precondition;
    bool plain = false;
    bool operator==(const DeltaKey& o) const {
      return target == o.target && base == o.base && precondition == o.precondition &&
             plain == o.plain;
    }
  };

  // What a session uses of its engine, which outlives it.
  struct Context {
    const EngineEnv* env = nullptr;
    const Topics* topics = nullptr;
    Outbox* outbox = nullptr;
    const PathFilter* filter = nullptr;
    const PolicySchedule* policies = nullptr;
    const std::shared_ptr<const Manifest>* current = nullptr;  // the primary's tree
    const BrokerLink* link = nullptr;  // sizes messages; null: max_message_bytes
    std::function<void()> status_changed;
    std::function<void(Event)> emit;
    // The primary's own claim (term, id), sealed into everything it sends.
    const Claim* claim = nullptr;
    // An authentic answer says the backup follows a claim that beats ours
    // (SPEC 11): the engine stops serving. The claim's primary is "" when
    // the answer did not name it.
    std::function<void(const Claim&)> fenced;
    // Joins a delta another session is sending under `key`; null if none.
    std::function<std::unique_ptr<DeltaReader>(const DeltaKey& key)> join;
  };

  SyncSession(std::string id, Context ctx) : id_(std::move(id)), ctx_(std::move(ctx)) {}

  // The backup's status said it is there (or not) at `root`.
  void OnPresence(bool online, const std::string& state, const std::string& root);
  // A sealed message on its manifest/res or ack topic.
  void OnSealed(bool is_ack, const Message& m);
  // A new connection at `now`: whatever was in flight is gone. Once its
  // status shows the backup, it is synced at once; if none has by
  // kProbeDelayMs (a clustered broker may keep that retained status on
  // another node), it is asked directly (a sealed request). The delay lets
  // the retained policies, which come first, take effect before any sync.
  // An answer makes it online; silence until the phase timeout is no error,
  // and it then waits to be seen.
  static constexpr int64_t kProbeDelayMs = 1000;
  void Reconnected(int64_t now);
  // Sync soon; with `check`, have the backup re-read its disk first.
  void Want(bool check = false);
  // Paired (a new key): sync at once, with a check.
  void Paired();
  // What it holds was seen through filters no longer in force.
  void Forget() { known_.reset(); }
  // Starts, repeats or times out what is due; the time it wants to be
  // called again (at most `next`).
  int64_t Tick(int64_t now, bool connected, int64_t next);
  // If this session is sending the delta `key` and others may join: a reader.
  std::unique_ptr<DeltaReader> Join(const DeltaKey& key) const;

  const std::string& id() const { return id_; }
  bool busy() const { return phase_ != Phase::kIdle && online_; }
  bool sending() const { return phase_ == Phase::kSending; }
  // Holds `root` (its last sync ended there).
  bool Holds(const Digest& root) const { return known_ && known_root_ == root; }
  // Why the last sync failed ("" once one succeeds or the backup goes away).
  const std::string& error() const { return error_; }
  int64_t last_sync_ns() const { return last_sync_ns_; }

 private:
  enum class Phase { kIdle, kAwaitManifest, kSending, kAwaitAck };
  void Start(int64_t now);
  bool EnsureChannel(int64_t now);
  bool SendRequest();  // seals request_ anew; false: the sync failed
  // Narrows snapshot_ to what is due: a module still holding its changes
  // back (policy) keeps the backup's version in it (DueTree).
  void HoldBack(const Manifest& theirs);
  // Diffs the snapshot against `theirs` and starts sending; with a
  // precondition the backup applies it only onto that root.
  void StartDelta(std::shared_ptr<const Manifest> theirs, std::optional<Digest> precondition);
  // The delta delta_key_ names; null if the trees do not differ.
  std::unique_ptr<DeltaWriter> WriteDelta() const;
  void Pump();
  void OnManifestChunk(const Opened& o);
  void OnAck(const Opened& o);
  void Finish(bool in_sync, const Ack* ack);
  // Drops the sync in progress without blaming anyone (its late answers are
  // ignored) and asks for another at once.
  void Abandon();
  void Fail(const std::string& why, bool retry_plain);
  void Log(LogLevel l, const std::string& s) const {
    if (ctx_.env->log) ctx_.env->log(l, s);
  }
  int64_t Now() const { return ctx_.env->clock->NowMs(); }
  std::string Name() const { return "sync " + std::to_string(transfer_) + " to " + id_; }

  std::string id_;
  Context ctx_;
  std::unique_ptr<SecureChannel> channel_;
  Phase phase_ = Phase::kIdle;
  bool wanted_ = true;       // a sync should run
  bool rescan_ = true;       // have the backup re-read its disk (repairs drift)
  bool plain_next_ = false;  // no local copies / block reuse next time
  // Presence comes from the backup's status (its birth, or a retained
  // non-offline one) or from its answer to a request: a backup is synced
  // once it is known to be up.
  bool online_ = false;
  bool probing_ = false;  // asking it directly after a (re)connect
  int64_t retry_at_ms_ = 0;
  int64_t backoff_ms_ = 0;
  int64_t deadline_ms_ = 0;
  int64_t next_key_log_ms_ = 0;
  uint64_t transfer_seq_ = 0;
  // The current sync.
  uint64_t transfer_ = 0;
  // Its request, repeated (sealed anew) while nothing has come back: a
  // backup that has just (re)connected may miss it, and the phase timeout
  // is far longer.
  std::string request_;
  int64_t repeat_at_ms_ = 0;
  int64_t repeat_gap_ms_ = 0;
  bool answered_ = false;
  // The delta was sent at once against `known_` (no request): if nothing
  // comes back within kRequestRepeatMs it may have been missed (a backup
  // that has just reconnected), so the exchange follows (`ask_next_`).
  bool direct_ = false;
  bool ask_next_ = false;
  // The backup was told (a request carrying held_until_ms) that it lacks
  // changes a policy holds back, so it says "pending": no need to tell it
  // again until a delta reaches it.
  bool told_held_ = false;
  // The tree such a delta brought the backup to, if it was applied after
  // all: the next request names it as `also`.
  std::shared_ptr<const Manifest> sent_;
  Digest sent_root_{};
  int64_t started_ms_ = 0;
  int64_t last_progress_log_ms_ = 0;
  uint64_t wire_bytes_ = 0;
  std::shared_ptr<const Manifest> snapshot_;
  Digest snapshot_root_{};
  ManifestAssembler assembler_;
  std::shared_ptr<const Manifest> backup_manifest_;
  std::unique_ptr<DeltaReader> delta_;
  DeltaKey delta_key_;
  uint32_t next_chunk_ = 0;
  int64_t acked_chunk_ = -1;
  // What the backup is known to hold after its last successful sync.
  std::shared_ptr<const Manifest> known_;
  Digest known_root_{};
  int64_t last_sync_ns_ = 0;
  std::string error_;
};

}  // namespace hubsync

#endif  // HUBSYNC_SRC_SYNC_SESSION_H_
