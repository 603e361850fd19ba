#include <climits>

#include "hubsync/engine.h"

namespace hubsync {
namespace {

// Above this many touched paths a full rescan beats patching the manifest.
constexpr size_t kMaxIncrementalPaths = 256;

}  // namespace

BackupEngine::BackupEngine(EngineEnv env)
    : env_(std::move(env)),
      topics_(env_.config),
      filter_(env_.config.exclude),
      keys_(env_.state),
      outbox_(env_.transport),
      link_("the broker", env_.config, env_.clock, env_.log),
      oob_link_("the OOB broker", env_.config, env_.clock, env_.log) {
  scanner_ = std::make_unique<Scanner>(env_.fs, &filter_, env_.state);
  // A standby (SPEC 11): it agrees keys with the hubs it would serve.
  if (!env_.config.backups.empty() && env_.oob) {
    desk_ = std::make_unique<PairingDesk>(env_.state, env_.config.home, env_.config.gateway_id,
                                          true);
  }
  applier_ = std::make_unique<Applier>(env_.fs, &filter_);
}

BackupEngine::~BackupEngine() = default;

Status BackupEngine::Start() {
  // Finish (or discard) whatever a crash interrupted before anything else.
  HUBSYNC_RETURN_IF_ERROR(applier_->Recover());
  auto claim = LoadClaim(*env_.state);
  if (!claim.ok()) return claim.status();
  claim_ = *claim;
  if (claim_.primary == env_.config.gateway_id) {
    // Promoted earlier (the backup unit restarted it): the term is ours.
    Log(LogLevel::kInfo, "this hub is the primary of " + Describe(claim_) + " (promoted)");
    promoted_ = true;
    return Status::Ok();
  }
  HUBSYNC_RETURN_IF_ERROR(scanner_->LoadCache());
  HUBSYNC_RETURN_IF_ERROR(Rescan());
  behind_since_ms_ = env_.clock->NowMs();
  // What our primary last announced, from before a restart (a promotion
  // checks it); a damaged record is named and forgotten, never guessed.
  if (auto saved = env_.state->Get(kAnnouncedRecord); saved.ok()) {
    Digest d;
    if (saved->size() == 2 * d.size() && FromHex(*saved, d.data(), d.size())) {
      announced_root_ = d;
    } else {
      Log(LogLevel::kWarn, std::string("ignored a damaged ") + kAnnouncedRecord + " record");
    }
  }
  if (!EnsureChannel() && !HasStandbyKey() && env_.oob) {
    // No key yet: pair by itself over the out-of-band topic.
    HUBSYNC_RETURN_IF_ERROR(StartPairing());
    Log(LogLevel::kInfo, "no key: pairing with the primary over the out-of-band topic");
  }
  return Status::Ok();
}

Status BackupEngine::Rescan() {
  manifest_ = Manifest();  // not kept alive beside the new one
  manifest_valid_ = false;
  auto m = scanner_->Scan(env_.clock->WallNs());
  if (!m.ok()) {
    manifest_valid_ = false;
    return m.status();
  }
  manifest_ = std::move(m).value();
  Recount();
  manifest_valid_ = true;
  Status s = scanner_->SaveCache();
  if (!s.ok()) Log(LogLevel::kWarn, "manifest cache not saved: " + s.ToString());
  return Status::Ok();
}

void BackupEngine::Recount() {
  root_ = manifest_.root();
  files_ = static_cast<int64_t>(manifest_.files());
  bytes_ = manifest_.bytes();
}

void BackupEngine::NoteAnnounced(const Digest& root) {
  if (announced_root_ == root) return;
  announced_root_ = root;
  // In place, not synced (no fsync per sync): it survives the daemon's
  // restart; a power loss may lose the newest.
  Status s = env_.state->Overwrite(kAnnouncedRecord, ToHex(root));
  if (!s.ok()) Log(LogLevel::kWarn, "cannot record the primary's announced root: " + s.ToString());
}

bool BackupEngine::HasStandbyKey() const {
  std::string prefix = env_.config.gateway_id + ".from-";
  for (const std::string& name : env_.state->List("keys")) {
    if (name.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

bool BackupEngine::EnsureChannel() {
  if (channel_) return true;
  auto ch = SecureChannel::Create(env_.state, env_.config.home, env_.config.gateway_id, false);
  if (!ch.ok()) {
    int64_t now = env_.clock->NowMs();
    bool missing = ch.status().code() == Status::Code::kNotFound;
    // (Keys other hubs made for us speak for themselves: ChannelFor.)
    if (now >= next_key_log_ms_ && !(missing && HasStandbyKey())) {
      Log(LogLevel::kWarn, "no usable key (" + ch.status().ToString() +
                               "); it comes from pairing (oob.uri) or hubsync keyimport");
      next_key_log_ms_ = now + 60000;
    }
    return false;
  }
  channel_ = std::move(ch).value();
  channel_->set_term(claim_.term);
  channel_->set_primary(claim_.primary);
  channel_->set_max_plain(static_cast<size_t>(env_.config.max_message_bytes));
  channel_->set_compress(env_.config.compress);
  // The disk's part of sealing done now: the first answer to a request must
  // not wait on an fsync (seconds on a busy disk, past the primary's patience).
  Status reserved = channel_->ReserveCounters();
  if (!reserved.ok()) Log(LogLevel::kWarn, "cannot reserve message counters: " + reserved.ToString());
  return true;
}

void BackupEngine::OnConnection(const LinkEvent& e) {
  subscribed_ = false;
  confirmations_heard_ = false;
  link_.Report(e);
  if (e.up()) Subscribe();
}

void BackupEngine::Subscribe() {
  resubscribe_at_ms_ = -1;
  outbox_.Clear();
  const std::string& me = env_.config.gateway_id;
  Status subscribed = SubscribeAll(env_.transport, {topics_.ManifestReq(me), topics_.Delta(me)});
  if (!subscribed.ok()) {
    // Announcing ourselves now would start a sync we cannot hear.
    Log(LogLevel::kError, "cannot subscribe (" + subscribed.ToString() + "); trying again in " +
                              std::to_string(kResubscribeMs) + " ms");
    resubscribe_at_ms_ = env_.clock->NowMs() + kResubscribeMs;
    return;
  }
  SubscribeStatusAsk(env_.transport, topics_, env_.log);
  // Best effort: an account the ACL does not let read it is promoted only
  // with `hubsync promote`.
  if (Status s = env_.transport->SubscribeAndWait(topics_.Promote(me), 1); !s.ok()) {
    Log(LogLevel::kDebug, "no promotion requests over the broker: " + s.ToString());
  }
  // Birth, once both subscriptions are granted: the primary sees us and
  // starts a catch-up sync that we are sure to receive.
  subscribed_ = true;
  last_status_.clear();
  PublishStatus();
}

void BackupEngine::OnMessage(const Message& m) {
  const std::string& me = env_.config.gateway_id;
  if (m.topic == topics_.ManifestReq(me)) return OnManifestRequest(m);
  if (m.topic == topics_.Delta(me)) return OnDelta(m);
  if (m.topic == topics_.Promote(me)) return OnPromoteRequest(m);
  if (desk_) {
    for (const std::string& b : env_.config.backups) {
      if (m.topic == topics_.Ack(b)) return OnStandbyConfirm(b, m);
    }
  }
  if (m.topic == topics_.StatusAsk() && asks_.OnAsk(env_.clock->NowMs())) {
    last_status_.clear();  // publish even if unchanged
    PublishStatus();
  }
}

void BackupEngine::OnManifestRequest(const Message& m) {
  // Only what the primary sealed is acted on: a forged request (any account
  // can read our root in the retained status) must not move our state.
  if (!EnsureChannel() && standby_.empty() && !round_ && !HasStandbyKey()) return;
  auto opened = OpenFromPrimary(m, "manifest/req");
  if (!opened) return;
  if (opened->header.kind != MsgKind::kRequest) {
    return Refuse(m, "manifest/req", "not a manifest request");
  }
  auto req = DecodeManifestRequest(opened->plain, opened->header.transfer);
  if (!req.ok()) return Refuse(m, "manifest/req", req.status().message());
  if (Digest announced; FromHex(req->root, announced.data(), announced.size())) {
    NoteAnnounced(announced);
  }
  // Answer only on our own response topic: never act as a reflector.
  if (m.response_topic != topics_.ManifestRes(env_.config.gateway_id)) {
    return Refuse(m, "manifest/req", "foreign response topic");
  }
  std::pair<uint64_t, uint64_t> request_id{opened->header.session, req->transfer};
  if (request_id == answered_) {
    // The primary repeats a request it has no answer to yet; ours is on its
    // way (a big tree takes a while to describe): one answer per transfer.
    Log(LogLevel::kDebug, "manifest request " + std::to_string(req->transfer) + " repeated: "
                          "already answered");
    return;
  }
  Log(LogLevel::kDebug, "manifest request " + std::to_string(req->transfer) +
                            (req->rescan ? " (rescan)" : ""));
  if (applier_->journal_pending()) {
    // The last commit failed after its journal (disk full, EIO): finish it
    // before describing the tree, which is mixed until then.
    Status s = applier_->Recover();
    manifest_valid_ = false;
    if (!s.ok()) {
      Log(LogLevel::kError, "cannot finish the interrupted commit: " + s.ToString());
      SetState("error", "cannot finish the interrupted commit: " + s.Reason());
      return;
    }
  }
  if (req->rescan || req->expect.empty() || !manifest_valid_) {
    Status s = Rescan();
    if (!s.ok()) {
      Log(LogLevel::kError, "scan failed: " + s.ToString());
      SetState("error", "scan failed: " + s.Reason());
      return;
    }
  }
  if (req->root != ToHex(root_)) {
    if (state_ == "in_sync") behind_since_ms_ = env_.clock->NowMs();
    // Held back by a policy: what is due comes in a delta (then "syncing").
    if (req->held_until_ms) {
      due_ = FormatIso8601(static_cast<int64_t>(req->held_until_ms) * 1000000);
      SetState("pending");
    } else {
      SetState("syncing");
    }
  }
  ManifestHeader h;
  h.root = root_;
  h.same = !req->expect.empty() && (req->expect == ToHex(root_) || req->also == ToHex(root_));
  h.count = static_cast<uint32_t>(manifest_.size());
  size_t max_plain = link_.message_bytes() - kEnvelopeOverhead - 1024;
  std::vector<std::string> chunks = EncodeManifestChunks(h, manifest_, max_plain);
  SecureChannel* channel = Following();  // the one that opened the request
  if (!channel) return;
  for (size_t i = 0; i < chunks.size(); ++i) {
    bool last = i + 1 == chunks.size();
    auto sealed = channel->Seal(MsgKind::kManifestRes, req->transfer, static_cast<uint32_t>(i),
                                    last, chunks[i]);
    if (!sealed.ok()) {
      SetState("error", sealed.status().ToString());
      return;
    }
    Message out;
    out.topic = m.response_topic;
    out.payload = std::move(sealed).value();
    out.correlation = m.correlation;
    outbox_.Send(std::move(out));
  }
  answered_ = request_id;
  if (req->root == ToHex(root_) && state_ != "in_sync") {
    primary_root_ = root_;
    last_sync_ns_ = env_.clock->WallNs();
    SetState("in_sync");
  }
}

void BackupEngine::SendAck(const Ack& a, uint64_t transfer, SecureChannel* via,
                           const std::string& to) {
  if (!via) via = ChannelFor(to.empty() ? claim_.primary : to);
  if (!via) return;  // no key with it (nothing could have opened)
  std::string follows = via->primary();
  if (!to.empty()) via->set_primary(to);  // an answer for another primary
  via->set_term(claim_.term);             // the highest term we know, always
  auto sealed = via->Seal(MsgKind::kAck, transfer, 0, a.kind != Ack::Kind::kProgress,
                               EncodeAck(a));
  via->set_primary(follows);
  if (!sealed.ok()) {
    Log(LogLevel::kError, "cannot seal an ack: " + sealed.status().ToString());
    return;
  }
  Message out;
  out.topic = topics_.Ack(env_.config.gateway_id);
  out.payload = std::move(sealed).value();
  outbox_.Send(std::move(out));
}

void BackupEngine::FailTransfer(const std::string& why, bool retry_plain,
                                const std::string& detail) {
  uint64_t transfer = applier_->transfer();
  applier_->Abort();
  touched_.clear();
  if (applier_->journal_pending()) manifest_valid_ = false;  // renamed in part
  Log(LogLevel::kWarn, "delta refused: " + why + (detail.empty() ? "" : " (" + detail + ")"));
  Ack a;
  a.kind = Ack::Kind::kError;
  a.error = why;
  a.retry_plain = retry_plain;
  SendAck(a, transfer);
  Event e{"error", env_.config.gateway_id, {}, {{"error", why}, {"stage", "apply"}}};
  Emit(std::move(e));
  SetState("error", why);
}

void BackupEngine::Refuse(const Message& m, const std::string& source, const std::string& why) {
  ++rejected_;
  Log(LogLevel::kWarn, "refused a message on " + source + ": " + why);
  Event e = RejectedEvent(env_.config.gateway_id, source, why, m.payload.size());
  e.counts["rejected_total"] = static_cast<int64_t>(rejected_);
  Emit(std::move(e));
}

SecureChannel* BackupEngine::ChannelFor(const std::string& primary) {
  if (!primary.empty() && primary != env_.config.gateway_id) {
    auto it = standby_.find(primary);
    if (it != standby_.end()) return it->second.get();
    if (no_standby_.count(primary)) return EnsureChannel() ? channel_.get() : nullptr;
    std::string record = KeyStore::MadeBy(env_.config.gateway_id, primary);
    auto keys = keys_.Load(record);
    if (!keys.ok() && keys.status().code() == Status::Code::kNotFound && no_standby_.size() < 64) {
      no_standby_.insert(primary);  // not looked for again until a message fails to open
    }
    if (!keys.ok() && keys.status().code() != Status::Code::kNotFound) {
      int64_t now = env_.clock->NowMs();
      if (now >= next_key_log_ms_) {
        Log(LogLevel::kWarn, "no usable key made by " + primary + " (" + keys.status().ToString() + ")");
        next_key_log_ms_ = now + 60000;
      }
    }
    if (keys.ok()) {
      auto ch = SecureChannel::Create(env_.state, env_.config.home, env_.config.gateway_id, false,
                                      record);
      if (ch.ok()) {
        (*ch)->set_max_plain(static_cast<size_t>(env_.config.max_message_bytes));
        (*ch)->set_compress(env_.config.compress);
        (*ch)->set_primary(primary);
        (*ch)->set_term(claim_.term);
        return (standby_[primary] = std::move(ch).value()).get();
      }
      Log(LogLevel::kWarn, "key made by " + primary + " unusable: " + ch.status().ToString());
    }
  }
  return EnsureChannel() ? channel_.get() : nullptr;
}

SecureChannel* BackupEngine::Following() {
  return claim_.empty() ? (EnsureChannel() ? channel_.get() : nullptr) : ChannelFor(claim_.primary);
}

std::optional<Opened> BackupEngine::OpenFromPrimary(const Message& m, const std::string& source) {
  auto hdr = DecodeEnvelopeHeader(m.payload);
  if (!hdr.ok()) {
    Refuse(m, source, hdr.status().message());
    return std::nullopt;
  }
  SecureChannel* ch = ChannelFor(hdr->primary);
  Result<Opened> opened = Status::Rejected("unknown key epoch");
  if (ch) opened = ch->Open(m.payload);
  if (!opened.ok() && round_) {
    // Perhaps a key being paired, proven by the hub that made it.
    auto adopted = round_->TryProof(m.payload, env_.clock->NowMs());
    if (!adopted.ok()) {
      Log(LogLevel::kError, "cannot store the new key: " + adopted.status().ToString());
      return std::nullopt;
    }
    if (*adopted) {
      OnAdopted(**adopted);
      if ((*adopted)->standby) return std::nullopt;  // a key proof: nothing to act on
      opened = std::move((*adopted)->opened);
      ch = channel_.get();
    }
  }
  bool by_pairing_key = ch && ch == channel_.get();
  if (!opened.ok() && (opened.status().message() == "unknown key epoch" ||
                       (by_pairing_key && keys_.Load(KeyStore::MadeBy(env_.config.gateway_id,
                                                                       hdr->primary)).ok()))) {
    // A key imported since the channel was built.
    channel_.reset();
    standby_.erase(hdr->primary);
    no_standby_.erase(hdr->primary);
    if ((ch = ChannelFor(hdr->primary))) opened = ch->Open(m.payload);
  }
  if (!opened.ok() && opened.status().code() == Status::Code::kIoError) {
    // Authentic, but our own state_dir could not record its counter (disk
    // full, EIO): not the message's fault, and nothing is acted on. The
    // primary hears why at once instead of waiting for its timeout.
    std::string why = "cannot record a message counter: " + opened.status().Reason();
    auto hdr = DecodeEnvelopeHeader(m.payload);
    if (applier_->active() && hdr.ok() && hdr->transfer == applier_->transfer()) {
      FailTransfer(why, false, opened.status().ToString());
    } else {
      Log(LogLevel::kError, why + " (" + opened.status().ToString() + ")");
      Ack a;
      a.kind = Ack::Kind::kError;
      a.error = why;
      if (hdr.ok()) SendAck(a, hdr->transfer, nullptr, hdr->primary);
      Emit(Event{"error", env_.config.gateway_id, {}, {{"error", why}, {"stage", source}}});
      SetState("error", why);
    }
    return std::nullopt;
  }
  if (!opened.ok()) {
    Refuse(m, source, opened.status().message());
    return std::nullopt;
  }
  if (!FollowTerm(m, source, opened->header)) return std::nullopt;
  return std::move(opened).value();
}

bool BackupEngine::FollowTerm(const Message& m, const std::string& source, const EnvelopeHeader& h) {
  Claim theirs{h.term, h.primary};
  if (theirs.empty()) {
    Refuse(m, source, "no term");
    return false;
  }
  if (Beats(claim_, theirs)) {
    // A primary whose term is over (it came back, or lost a split): refused
    // and told, sealed, which term we follow, so it stops (SPEC 11).
    Refuse(m, source, "from " + Describe(theirs) + ", below " + Describe(claim_));
    Ack a;
    a.kind = Ack::Kind::kFenced;
    a.primary = claim_.primary;
    SendAck(a, h.transfer, nullptr, theirs.primary);
    return false;
  }
  if (!(theirs == claim_)) {
    // Stored before anything from it is acted on: after a crash we still
    // refuse the primaries it superseded.
    Status s = SaveClaim(env_.state, theirs);
    if (!s.ok()) {
      Log(LogLevel::kError, "cannot store the term of " + theirs.primary + ": " + s.ToString());
      return false;
    }
    Log(LogLevel::kInfo, "following " + Describe(theirs) +
                             (claim_.empty() ? "" : " (was " + Describe(claim_) + ")"));
    Emit(Event{"term", env_.config.gateway_id, {{"term", static_cast<int64_t>(theirs.term)}},
               {{"primary", theirs.primary}}});
    claim_ = theirs;
    PublishStatus();
  }
  if (SecureChannel* ch = ChannelFor(claim_.primary)) {
    ch->set_term(claim_.term);
    ch->set_primary(claim_.primary);
  }
  return true;
}

void BackupEngine::OnDelta(const Message& m) {
  if (!EnsureChannel() && standby_.empty() && !round_ && !HasStandbyKey()) return;
  auto opened = OpenFromPrimary(m, "delta");
  if (!opened) return;
  if (opened->header.kind != MsgKind::kDelta) return Refuse(m, "delta", "not a delta");
  const EnvelopeHeader& h = opened->header;
  if (h.chunk == 0) {
    if (applier_->active()) applier_->Abort();
    touched_.clear();
    Status s = applier_->Begin(h.transfer);
    if (!s.ok()) return FailTransfer("cannot stage: " + s.Reason(), false, s.ToString());
    expected_chunk_ = 0;
    transfer_start_ms_ = env_.clock->NowMs();
    transfer_wire_bytes_ = 0;
    SetState("syncing");
  }
  if (!applier_->active() || h.transfer != applier_->transfer()) return;  // stale
  if (h.chunk != expected_chunk_) return FailTransfer("delta chunk missing or out of order", false);
  ++expected_chunk_;
  transfer_wire_bytes_ += m.payload.size();
  std::vector<DeltaRecord> records;
  Status s = DecodeRecords(opened->plain, &records);
  if (!s.ok()) return FailTransfer("malformed delta: " + s.message(), false);
  bool saw_end = false;
  for (const DeltaRecord& r : records) {
    if (r.kind == RecKind::kBase) {
      if (h.chunk != 0 || &r != &records.front()) {
        return FailTransfer("precondition inside a delta", false);
      }
      // Sent at once, without asking for our manifest, against the root
      // the primary last saw us at: applied only onto exactly that tree.
      bool known = manifest_valid_ && !applier_->journal_pending();
      if (known && r.root == root_) continue;
      applier_->Abort();
      touched_.clear();
      Log(LogLevel::kDebug, "delta " + std::to_string(h.transfer) +
                                " was computed against another tree: asking for a full exchange");
      Ack stale;
      stale.kind = Ack::Kind::kStale;
      if (known) stale.root = root_;
      SendAck(stale, h.transfer);
      return;
    }
    if (r.kind == RecKind::kBegin) {
      if (h.chunk != 0) return FailTransfer("begin record inside a delta", false);
      primary_root_ = r.root;
      NoteAnnounced(r.root);
      progress_total_ = r.total;
      progress_files_total_ = r.count;
      progress_files_done_ = 0;
      last_progress_ms_ = env_.clock->NowMs();
      continue;
    }
    if (r.kind == RecKind::kEnd) {
      saw_end = true;
      continue;
    }
    // Beyond kMaxIncrementalPaths the tree is scanned again whole: no need
    // to remember more (an initial sync would list every path).
    if (!r.path.empty() && touched_.size() <= kMaxIncrementalPaths) touched_.insert(r.path);
    if (r.kind != RecKind::kData && r.kind != RecKind::kCopy) ++progress_files_done_;
    s = applier_->Record(r);
    if (!s.ok()) return FailTransfer(s.Reason(), applier_->retry_plain(), s.ToString());
  }
  if (saw_end != h.last) return FailTransfer("delta end does not match the last flag", false);
  if (!h.last) {
    // Transfers of more than one message show their progress in the status:
    // from the first (its total), then about once a second.
    int64_t now = env_.clock->NowMs();
    if (h.chunk == 0 || now - last_progress_ms_ >= 1000) {
      last_progress_ms_ = now;
      PublishStatus();
    }
    Ack a;
    a.kind = Ack::Kind::kProgress;
    a.chunk = h.chunk;
    SendAck(a, h.transfer);
    return;
  }
  // Every message this delta consists of must stay refused after a restart
  // before the delta takes effect.
  SecureChannel* channel = Following();  // the one that opened this delta
  s = channel ? channel->SyncCounters() : Status::NotFound("no key with the primary");
  if (!s.ok()) return FailTransfer("cannot persist counters: " + s.message(), false);
  int64_t commit_start = env_.clock->NowMs();
  s = applier_->Commit();
  if (!s.ok()) return FailTransfer(s.Reason(), applier_->retry_plain(), s.ToString());
  ApplyStats stats = applier_->stats();
  int64_t commit_ms = env_.clock->NowMs() - commit_start;
  for (auto& w : applier_->TakeWritten()) {
    scanner_->Remember(std::move(w.path), w.digest, std::move(w.blocks));
  }
  // Held no longer than needed: after an initial sync these lists are as
  // long as the tree, and the rescan below builds another that long.
  bool rescan = touched_.size() > kMaxIncrementalPaths || !manifest_valid_;
  std::vector<std::string> paths;
  if (!rescan) paths.assign(touched_.begin(), touched_.end());
  touched_.clear();
  if (rescan) {
    s = Rescan();
  } else {
    s = scanner_->Update(&manifest_, paths, env_.clock->WallNs(), /*trust_cache=*/true);
    Recount();
  }
  if (!s.ok()) manifest_valid_ = false;
  Log(LogLevel::kDebug, "commit took " + std::to_string(commit_ms) + " ms, manifest update " +
                            std::to_string(env_.clock->NowMs() - commit_start - commit_ms) +
                            " ms");
  Ack a;
  a.kind = Ack::Kind::kDone;
  a.root = root_;
  a.files = stats.files;
  a.bytes = stats.bytes;
  SendAck(a, h.transfer);
  int64_t now = env_.clock->NowMs();
  last_sync_ns_ = env_.clock->WallNs();
  Log(LogLevel::kInfo, "applied delta " + std::to_string(h.transfer) + ": " +
                           std::to_string(stats.files) + " files, " +
                           std::to_string(stats.deleted) + " deletions in " +
                           std::to_string(now - transfer_start_ms_) + " ms");
  Event e{"applied",
          env_.config.gateway_id,
          {{"files", stats.files},
           {"deleted", stats.deleted},
           {"bytes", static_cast<int64_t>(stats.bytes)},
           {"wire_bytes", static_cast<int64_t>(transfer_wire_bytes_)},
           {"skipped_excluded", stats.skipped_excluded},
           {"duration_ms", now - transfer_start_ms_}},
          {}};
  Emit(std::move(e));
  SetState(root_ == primary_root_ ? "in_sync" : "behind");
}

void BackupEngine::SetState(const std::string& state, const std::string& error) {
  if (state != "in_sync" && state_ == "in_sync") behind_since_ms_ = env_.clock->NowMs();
  if (state != "pending") due_.clear();
  state_ = state;
  error_ = error;
  PublishStatus();
}

void BackupEngine::PublishStatus() {
  // Not before our subscriptions are granted: the primary would start a
  // sync we cannot hear. (The transport may be connected already: Paho's
  // news of it waits in the event loop behind a tick.)
  if (!subscribed_) return;
  GatewayStatus s;
  s.role = "backup";
  s.state = state_;
  s.root = ToHex(root_);
  s.files = files_;
  s.bytes = static_cast<int64_t>(bytes_);
  if (last_sync_ns_) s.last_sync = FormatIso8601(last_sync_ns_);
  int64_t now = env_.clock->NowMs();
  s.lag_ms = state_ == "in_sync" ? 0 : now - behind_since_ms_;
  SecureChannel* following = claim_.empty() ? channel_.get() : ChannelFor(claim_.primary);
  s.key_epoch = following ? following->epoch() : 0;
  s.term = claim_.term;
  s.primary = claim_.primary;
  s.error = error_;
  s.due = due_;
  if (state_ == "syncing" && applier_->active() && progress_files_total_ > 0) {
    s.progress_done = static_cast<int64_t>(applier_->stats().bytes);
    s.progress_total = static_cast<int64_t>(progress_total_);
    s.progress_files_done = static_cast<int64_t>(progress_files_done_);
    s.progress_files_total = static_cast<int64_t>(progress_files_total_);
  }
  std::string payload = EncodeStatus(s);
  if (payload == last_status_) return;
  last_status_ = payload;
  next_status_ms_ = now + kStatusRefreshMs;
  Message m;
  m.topic = topics_.Status(env_.config.gateway_id);
  m.payload = payload;
  m.retained = true;
  outbox_.Send(std::move(m));
}

int64_t BackupEngine::Tick(int64_t now) {
  if (resubscribe_at_ms_ >= 0 && now >= resubscribe_at_ms_) Subscribe();
  outbox_.Flush();
  if (round_ && round_->saying_hello() && oob_up_ && now >= next_hello_ms_) {
    SendHello();  // again until a welcome comes (the bridge may be down)
    next_hello_ms_ = now + 1000;
  }
  if (round_ && round_->Done(now)) FinishRound();
  if (now >= next_status_ms_ || asks_.Due(now)) {
    last_status_.clear();  // refresh (lag grows while behind), or a deferred status/ask
    PublishStatus();
    // Not announced (no subscriptions yet): OnConnection announces it, so
    // nothing is due before the next refresh (else this loop would spin).
    if (next_status_ms_ <= now) next_status_ms_ = now + kStatusRefreshMs;
  }
  int64_t next = std::min(next_status_ms_, asks_.next());
  if (resubscribe_at_ms_ >= 0) next = std::min(next, resubscribe_at_ms_);
  if (outbox_.size() > 0) next = std::min(next, now + 5);
  if (round_) {
    next = std::min(next, !round_->saying_hello() ? now + 250
                          : oob_up_              ? next_hello_ms_
                                                 : now + 500);
  }
  return next;
}

// Only the accounts the ACL lets write it (the hub software's) reach this
// topic; a retained request is refused, so none takes effect long after it
// was made (or again at every reconnect).
void BackupEngine::OnPromoteRequest(const Message& m) {
  if (m.retained) return Refuse(m, "promote", "a retained promotion request");
  auto req = DecodePromoteRequest(m.payload);
  if (!req.ok()) return Refuse(m, "promote", req.status().message());
  Log(LogLevel::kInfo, std::string("promotion asked for over the broker") + (req->force ? " (forced)" : ""));
  auto claim = Promote(req->force);
  if (!claim.ok()) {
    Log(LogLevel::kWarn, "promotion refused: " + claim.status().message());
    Emit(Event{"promoted", env_.config.gateway_id, {}, {{"result", "refused"}, {"reason", claim.status().message()}}});
  }
}

Result<Engine::Promotion> BackupEngine::Promote(bool force) {
  if (promoted_) return Promotion{claim_, ""};
  // An apply in flight is dropped (its primary is gone), and whatever a
  // crash or that drop left is finished or discarded: the tree is exactly
  // old or new before this hub serves it.
  if (applier_->active()) {
    Log(LogLevel::kInfo, "promotion: the delta being applied is discarded");
    applier_->Abort();
    touched_.clear();
  }
  Applier::Recovery recovery;
  HUBSYNC_RETURN_IF_ERROR(applier_->Recover(&recovery));
  if (recovery.finished || recovery.discarded) {
    Status s = Rescan();
    if (!s.ok()) return s;
  }
  std::string behind;
  if (announced_root_ && *announced_root_ != root_) {
    behind = "this hub is behind " + (claim_.primary.empty() ? std::string("its primary") : claim_.primary) +
             " (its last announced root " + ToHex(*announced_root_).substr(0, 12) + ", ours " +
             ToHex(root_).substr(0, 12) + ")";
    if (!force) {
      return Status::Rejected(behind + "; --force promotes it anyway, losing what it lacks");
    }
  }
  Claim next{std::max<uint64_t>(claim_.term, 1) + 1, env_.config.gateway_id};
  HUBSYNC_RETURN_IF_ERROR(SaveClaim(env_.state, next));
  Log(LogLevel::kInfo, "promoted: primary of " + Describe(next) +
                           (behind.empty() ? "" : "; forced although " + behind +
                                                       ": changes it lacked are lost"));
  Emit(Event{"promoted", env_.config.gateway_id, {{"term", static_cast<int64_t>(next.term)}},
             {{"result", "ok"}, {"forced", behind.empty() ? "no" : "yes"}}});
  claim_ = next;
  promoted_ = true;
  return Promotion{next, behind.empty() ? "" : behind + ": the changes it lacked are lost"};
}

Message BackupEngine::FinalStatus() {
  GatewayStatus s;
  s.role = "backup";
  s.state = "offline";
  s.root = ToHex(root_);
  s.term = claim_.term;
  s.primary = claim_.primary;
  Message m;
  m.topic = topics_.Status(env_.config.gateway_id);
  m.payload = EncodeStatus(s);
  m.retained = true;
  return m;
}

void BackupEngine::Emit(Event e) {
  Message m;
  m.topic = topics_.Events();
  m.payload = EncodeEvent(e);
  outbox_.Send(std::move(m));
}

}  // namespace hubsync
