#include <algorithm>
#include <climits>

#include "hubsync/engine.h"

#include <sys/stat.h>
#include <unistd.h>

#include "hubsync/ha_discovery.h"
#include "primary_peer.h"

namespace hubsync {

PrimaryEngine::PrimaryEngine(EngineEnv env)
    : env_(std::move(env)),
      topics_(env_.config),
      filter_(env_.config.exclude),
      keys_(env_.state),
      outbox_(env_.transport),
      policies_(env_.config.policy, env_.clock->NowMs()) {
  scanner_ = std::make_unique<Scanner>(env_.fs, &filter_, env_.state);
  for (const auto& b : env_.config.backups) AddPeer(b);
}

PrimaryEngine::~PrimaryEngine() = default;

PrimaryEngine::Peer& PrimaryEngine::AddPeer(const std::string& id) {
  auto p = std::make_unique<Peer>();
  p->id = id;
  Peer& ref = *p;
  peers_[id] = std::move(p);
  if (connected_) PublishDiscovery(id);
  return ref;
}

PrimaryEngine::Peer* PrimaryEngine::FindPeer(const std::string& id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

Status PrimaryEngine::Start() {
  HUBSYNC_RETURN_IF_ERROR(scanner_->LoadCache());
  int64_t t0 = env_.clock->NowMs();
  auto m = scanner_->Scan(env_.clock->WallNs());
  if (!m.ok()) return m.status();
  Adopt(std::make_shared<const Manifest>(std::move(m).value()));
  // The cache only spares re-hashing at the next start: a full state_dir
  // costs that, never the start itself.
  if (Status saved = scanner_->SaveCache(); !saved.ok()) {
    Log(LogLevel::kWarn, "manifest cache not saved: " + saved.ToString());
  }
  Log(LogLevel::kInfo, "scanned data_dir: " + std::to_string(current_->size()) + " entries, " +
                           std::to_string(current_->bytes()) + " bytes in " +
                           std::to_string(env_.clock->NowMs() - t0) + " ms");
  RevokeRemovedBackups();
  return Status::Ok();
}

// A backup taken out of the config loses its key, unless it was admitted
// through a pairing window (then only `hubsync unpair` removes it).
void PrimaryEngine::RevokeRemovedBackups() {
  for (const std::string& id : keys_.List()) {
    bool listed = std::find(env_.config.backups.begin(), env_.config.backups.end(), id) !=
                  env_.config.backups.end();
    if (listed || IsAdmitted(*env_.state, id)) continue;
    Status s = Revoke(env_.state, id);
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarn,
        "backup " + id + " is no longer in the config: key revoked" +
            (s.ok() ? "" : " (failed: " + s.ToString() + ")"));
  }
}

void PrimaryEngine::OnConnection(bool connected) {
  connected_ = false;  // until our subscriptions are granted: no answer could reach us
  resubscribe_at_ms_ = -1;
  if (!connected) {
    Log(LogLevel::kWarn, "lost the broker; syncs will restart when it is back");
    return;
  }
  Log(LogLevel::kInfo, "connected to the broker");
  outbox_.Clear();
  // Policies first: the broker sends retained messages in subscription
  // order, so every retained policy is applied before any backup is seen
  // (and synced) through its retained status.
  Status subscribed = SubscribeAll(env_.transport, {topics_.Policies(),
                                                   topics_.prefix + "gw/+/status",
                                                   topics_.prefix + "gw/+/manifest/res",
                                                   topics_.prefix + "gw/+/ack"});
  if (!subscribed.ok()) {
    // Without them no backup can be heard: try the whole set again soon.
    Log(LogLevel::kError, "cannot subscribe (" + subscribed.ToString() + "); trying again in " +
                              std::to_string(kResubscribeMs) + " ms");
    resubscribe_at_ms_ = env_.clock->NowMs() + kResubscribeMs;
    return;
  }
  connected_ = true;
  last_status_.clear();
  PublishStatus();
  for (const auto& [id, p] : peers_) PublishDiscovery(id);
  // Whatever was in flight may be lost with the old connection: restart,
  // once each backup's status (retained, or its birth after a broker
  // restart) shows it is there to answer.
  for (auto& [id, p] : peers_) {
    p->online = false;
    p->phase = Peer::Phase::kIdle;
    p->delta.reset();
    p->wanted = true;
    p->retry_at_ms = 0;
  }
}

void PrimaryEngine::Adopt(std::shared_ptr<const Manifest> m) {
  current_ = std::move(m);
  root_ = current_->root();
  current_files_ = static_cast<int64_t>(current_->files());
  current_bytes_ = current_->bytes();
}

bool PrimaryEngine::Rescan(const std::set<std::string>& changed, bool everywhere) {
  auto m = scanner_->Scan(env_.clock->WallNs());
  if (!m.ok()) {
    ScanFault& f = scan_fault_;
    f.changed.insert(changed.begin(), changed.end());
    f.everywhere |= everywhere;
    f.backoff_ms = f.backoff_ms == 0 ? 1000 : std::min(kMaxBackoffMs, f.backoff_ms * 2);
    f.retry_at_ms = env_.clock->NowMs() + f.backoff_ms;
    Log(LogLevel::kError, "cannot read data_dir (" + m.status().ToString() + "); trying again in " +
                              std::to_string(f.backoff_ms) + " ms");
    std::string error = "cannot read data_dir: " + m.status().Reason();
    if (error != f.error) {
      f.error = error;
      Emit(Event{"error", env_.config.gateway_id, {}, {{"error", error}, {"stage", "scan"}}});
    }
    PublishStatus();
    return false;
  }
  if (!scan_fault_.error.empty()) Log(LogLevel::kInfo, "data_dir can be read again");
  scan_fault_ = ScanFault();
  Adopt(std::make_shared<const Manifest>(std::move(m).value()));
  Status s = scanner_->SaveCache();
  if (!s.ok()) Log(LogLevel::kWarn, "manifest cache not saved: " + s.ToString());
  return true;
}

void PrimaryEngine::RetryScan(int64_t now) {
  if (scan_fault_.error.empty() || now < scan_fault_.retry_at_ms) return;
  ScanFault fault = scan_fault_;
  Digest before = root_;
  if (!Rescan(fault.changed, fault.everywhere)) return;
  if (root_ != before) {
    if (fault.everywhere) policies_.OnChangedEverywhere(now);
    else policies_.OnChanged(fault.changed, now);
  }
  PublishStatus();
}

void PrimaryEngine::OnChanges() {
  ChangeBatch batch = env_.changes->Take();
  if (batch.empty()) return;
  if (!scan_fault_.error.empty()) {
    // The whole tree is read again soon (RetryScan): these go with it.
    scan_fault_.changed.insert(batch.paths.begin(), batch.paths.end());
    scan_fault_.everywhere |= batch.overflow;
    return;
  }
  Digest before = root_;
  bool read = true;
  if (batch.overflow) {
    Log(LogLevel::kWarn, "change queue overflowed: rescanning everything");
    read = Rescan({}, true);
  } else {
    auto next = std::make_shared<Manifest>(*current_);
    std::vector<std::string> paths(batch.paths.begin(), batch.paths.end());
    Status s = scanner_->Update(next.get(), paths, env_.clock->WallNs());
    if (!s.ok()) {
      Log(LogLevel::kWarn, "incremental scan failed (" + s.ToString() + "): rescanning");
      read = Rescan(batch.paths, false);
    } else {
      Adopt(std::move(next));
    }
  }
  if (!read || root_ == before) return;
  int64_t now = env_.clock->NowMs();
  if (batch.overflow) {
    policies_.OnChangedEverywhere(now);
  } else {
    policies_.OnChanged(batch.paths, now);
  }
  PublishStatus();
}

void PrimaryEngine::OnMessage(const Message& m) {
  if (m.topic.compare(0, topics_.prefix.size(), topics_.prefix) != 0) return;
  std::string rest = m.topic.substr(topics_.prefix.size());
  if (rest.compare(0, 7, "policy/") == 0) return OnPolicy(rest.substr(7), m.payload);
  if (rest.compare(0, 3, "gw/") != 0) return;
  size_t slash = rest.find('/', 3);
  if (slash == std::string::npos) return;
  std::string gw = rest.substr(3, slash - 3);
  std::string kind = rest.substr(slash + 1);
  if (gw == env_.config.gateway_id) return;

  if (kind == "status") {
    auto st = DecodeStatus(m.payload);
    if (!st.ok()) {
      Log(LogLevel::kWarn, "refused a status on " + m.topic + ": " + st.status().message());
      Emit(RejectedEvent(env_.config.gateway_id, "status", st.status().message(),
                         m.payload.size()));
      return;
    }
    if (st->role != "backup") return;
    Peer* p = FindPeer(gw);
    if (!p) {
      // A backup not in the config is served once it holds a key (paired).
      if (!IsValidId(gw) || !keys_.Load(gw).ok()) return;
      Log(LogLevel::kInfo, "backup " + gw + " announced itself and has a key: serving it");
      p = &AddPeer(gw);
    }
    bool was_online = p->online;
    p->online = st->state != "offline";
    if (!p->online) p->error.clear();  // its failures are no longer ours to report
    if (!p->online && p->phase != Peer::Phase::kIdle) {
      // Its half of the transfer is gone; start over when it is back.
      Log(LogLevel::kInfo, "backup " + gw + " went offline during a sync");
      p->phase = Peer::Phase::kIdle;
      p->delta.reset();
      p->snapshot.reset();
      p->wanted = true;
      p->retry_at_ms = 0;
    }
    bool differs = st->state != "syncing" && p->phase == Peer::Phase::kIdle &&
                   st->root != ToHex(p->known_root);
    if (p->online && (!was_online || differs)) {
      // A backup that (re)appeared or differs: catch it up now.
      if (!was_online) Log(LogLevel::kInfo, "backup " + gw + " is online: syncing it");
      p->wanted = true;
      // At once, unless it is failing: its own "error" status after each
      // failed sync must not turn the growing delay into a tight loop.
      if (p->phase == Peer::Phase::kIdle && (!was_online || p->backoff_ms == 0)) p->retry_at_ms = 0;
    }
    return;
  }
  if (kind == "ack" && TryConfirm(gw, m)) return;
  Peer* p = FindPeer(gw);
  if (!p || !p->channel) return;
  if (kind != "manifest/res" && kind != "ack") return;
  auto opened = p->channel->Open(m.payload);
  if (!opened.ok() && opened.status().code() == Status::Code::kIoError) {
    // Authentic, but our own state_dir could not record its counter (disk
    // full, EIO): not the message's fault. Nothing is acted on; the sync
    // fails now, with the cause, instead of at the timeout.
    Log(LogLevel::kError, "cannot record the counter of a message from " + gw + ": " +
                              opened.status().ToString());
    if (p->phase != Peer::Phase::kIdle) {
      FailSync(*p, "cannot record a message counter: " + opened.status().Reason(), false);
    }
    return;
  }
  if (!opened.ok()) {
    Log(LogLevel::kWarn, "refused a message from " + gw + ": " + opened.status().ToString());
    Event e{"rejected", env_.config.gateway_id, {{"bytes", static_cast<int64_t>(m.payload.size())}},
            {{"backup", gw}, {"reason", opened.status().message()}}};
    Emit(std::move(e));
    return;
  }
  MsgKind expected = kind == "ack" ? MsgKind::kAck : MsgKind::kManifestRes;
  if (opened->header.kind != expected || opened->header.transfer != p->transfer) {
    return;  // a stale answer to a sync that was given up
  }
  p->wire_bytes += m.payload.size();
  if (expected == MsgKind::kManifestRes) OnManifestChunk(*p, *opened);
  else OnAck(*p, *opened);
}

void PrimaryEngine::StartSync(Peer& p, int64_t now) {
  // A key made since (keygen for a new epoch) takes effect at the next sync.
  if (p.channel) {
    auto keys = keys_.Load(p.id);
    if (!keys.ok() || keys->back().epoch != p.channel->epoch()) p.channel.reset();
  }
  if (!p.channel) {
    auto ch = SecureChannel::Create(env_.state, env_.config.home, p.id, true);
    if (!ch.ok()) {
      if (now >= p.next_key_log_ms) {
        Log(LogLevel::kWarn, "no usable key for backup " + p.id + " (" + ch.status().ToString() +
                                 "); it gets one by pairing or hubsync keygen");
        p.next_key_log_ms = now + 60000;
      }
      p.retry_at_ms = now + 2000;
      return;
    }
    p.channel = std::move(ch).value();
    p.channel->set_max_plain(static_cast<size_t>(env_.config.max_message_bytes));
    p.channel->set_compress(env_.config.compress);
  }
  p.wanted = false;
  // Nothing in doubt (the backup's last sync left it at a tree we know, and
  // no check or plain resend is asked for): the difference goes at once,
  // applied only if that tree is still the backup's (one round trip).
  bool direct = p.known && !p.rescan && !p.plain_next && !p.ask_next;
  if (direct && p.known_root == root_) return;  // it holds this tree already
  p.ask_next = false;
  p.direct = direct;
  p.answered = false;
  p.transfer = static_cast<uint64_t>(env_.clock->WallNs() / 1000000) * 1000 + (++transfer_seq_ % 1000);
  p.started_ms = now;
  p.wire_bytes = 0;
  p.snapshot = current_;
  p.snapshot_root = root_;
  if (direct) {
    HoldBack(p, *p.known);
    if (p.snapshot_root == p.known_root) {  // what changed is all held back
      p.snapshot.reset();
      return;
    }
    p.deadline_ms = now + kPhaseTimeoutMs;
    p.repeat_at_ms = now + kRequestRepeatMs;
    Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id +
                              " started against its known tree");
    StartDelta(p, p.known, p.known_root);
    PublishStatus();
    return;
  }
  p.phase = Peer::Phase::kAwaitManifest;
  p.assembler = ManifestAssembler({}, current_);  // a backup's tree is mostly ours
  ManifestRequest req;
  req.primary = env_.config.gateway_id;
  req.root = ToHex(root_);
  req.expect = p.known ? ToHex(p.known_root) : "";
  req.also = p.known && p.sent ? ToHex(p.sent_root) : "";
  req.rescan = p.rescan;
  p.request = EncodeManifestRequest(req);
  if (!SendRequest(p)) return;
  // From the request's departure (sealing may have waited on the disk).
  p.deadline_ms = env_.clock->NowMs() + kPhaseTimeoutMs;
  p.repeat_gap_ms = kRequestRepeatMs;
  p.repeat_at_ms = env_.clock->NowMs() + p.repeat_gap_ms;
  Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id + " started");
  PublishStatus();
}

bool PrimaryEngine::SendRequest(Peer& p) {
  auto sealed = p.channel->Seal(MsgKind::kRequest, p.transfer, 0, true, p.request);
  if (!sealed.ok()) {
    FailSync(p, "cannot seal the request: " + sealed.status().ToString(), false);
    return false;
  }
  Message msg;
  msg.topic = topics_.ManifestReq(p.id);
  msg.payload = std::move(sealed).value();
  msg.response_topic = topics_.ManifestRes(p.id);
  msg.correlation = std::to_string(p.transfer);
  p.wire_bytes += msg.payload.size();
  outbox_.Send(std::move(msg));
  return true;
}

void PrimaryEngine::OnManifestChunk(Peer& p, const Opened& o) {
  if (p.phase != Peer::Phase::kAwaitManifest) return;
  p.answered = true;
  Status s = p.assembler.Add(o.header.chunk, o.header.last, o.plain);
  if (!s.ok()) return FailSync(p, "bad manifest: " + s.message(), false);
  p.deadline_ms = env_.clock->NowMs() + kPhaseTimeoutMs;
  if (!p.assembler.done()) return;
  std::shared_ptr<const Manifest> theirs;
  std::shared_ptr<const Manifest> sent = std::move(p.sent);
  if (p.assembler.header().same) {
    if (p.known && p.assembler.header().root == p.known_root) {
      theirs = p.known;
    } else if (p.known && sent && p.assembler.header().root == p.sent_root) {
      theirs = sent;  // the unanswered delta was applied after all
    } else {
      return FailSync(p, "backup claims a manifest we do not know", false);
    }
  } else {
    theirs = std::make_shared<const Manifest>(FilterManifest(p.assembler.Take(), filter_));
  }
  p.rescan = false;
  HoldBack(p, *theirs);
  StartDelta(p, theirs, std::nullopt);
}

void PrimaryEngine::HoldBack(Peer& p, const Manifest& theirs) {
  Manifest due;
  if (!DueTree(*p.snapshot, theirs, policies_, &due)) return;
  p.snapshot_root = due.root();
  p.snapshot = std::make_shared<const Manifest>(std::move(due));
}

void PrimaryEngine::StartDelta(Peer& p, std::shared_ptr<const Manifest> theirs,
                               std::optional<Digest> precondition) {
  p.backup_manifest = theirs;
  p.delta_key = Peer::DeltaKey{p.snapshot_root, theirs->root(), precondition, p.plain_next};
  // Another backup just sent the same delta (same trees): share its chunks.
  for (auto& [id, q] : peers_) {
    if (q.get() == &p || !q->delta || !(q->delta_key == p.delta_key)) continue;
    p.delta = q->delta->Join();
    if (p.delta) break;
  }
  if (!p.delta) {
    std::unique_ptr<DeltaWriter> writer = WriteDelta(p);
    if (!writer) return FinishSync(p, true, nullptr);  // nothing differs
    p.delta = std::make_shared<SharedDelta>(std::move(writer), env_.config.compress)->Join();
  }
  p.phase = Peer::Phase::kSending;
  p.next_chunk = 0;
  p.acked_chunk = -1;
  Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id + ": " +
                            std::to_string(p.delta->writer().op_count()) + " ops, " +
                            std::to_string(p.delta->writer().total_bytes()) + " bytes to ship" +
                            (p.delta->shared() ? " (shared with another backup)" : ""));
  Pump(p);
}

std::unique_ptr<DeltaWriter> PrimaryEngine::WriteDelta(const Peer& p) {
  DiffOptions opts;
  opts.allow_block_reuse = opts.allow_local_source = !p.delta_key.plain;
  std::vector<Op> ops = Diff(*p.snapshot, *p.backup_manifest, opts);
  if (ops.empty()) return nullptr;
  size_t max_plain = static_cast<size_t>(env_.config.max_message_bytes) - kEnvelopeOverhead - 1024;
  return std::make_unique<DeltaWriter>(env_.fs, p.snapshot, p.backup_manifest, std::move(ops),
                                       max_plain, p.delta_key.precondition, p.snapshot_root);
}

void PrimaryEngine::Pump(Peer& p) {
  while (p.phase == Peer::Phase::kSending &&
         static_cast<int64_t>(p.next_chunk) - p.acked_chunk <= kWindow && outbox_.size() < 2) {
    auto chunk = p.delta->Next();
    if (!chunk.ok() && chunk.status().code() == Status::Code::kUnavailable) {
      // Let go by the backups it shared with: the same delta, written again
      // for this one alone from where it is.
      Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id +
                                ": behind the other backups, reading on alone");
      auto alone = DeltaReader::Alone(WriteDelta(p), env_.config.compress, p.next_chunk);
      if (!alone.ok()) return FailSync(p, "cannot read data_dir: " + alone.status().Reason(), false);
      p.delta = std::move(alone).value();
      continue;
    }
    if (!chunk.ok()) {
      Log(LogLevel::kWarn, "reading what to send failed: " + chunk.status().ToString());
      return FailSync(p, "cannot read data_dir: " + chunk.status().Reason(), false);
    }
    auto sealed = p.channel->SealPacked(MsgKind::kDelta, p.transfer, p.next_chunk, **chunk);
    if (!sealed.ok()) return FailSync(p, sealed.status().ToString(), false);
    Message msg;
    msg.topic = topics_.Delta(p.id);
    msg.payload = std::move(sealed).value();
    p.wire_bytes += msg.payload.size();
    outbox_.Send(std::move(msg));
    ++p.next_chunk;
    if ((*chunk)->last) p.phase = Peer::Phase::kAwaitAck;
    int64_t now = env_.clock->NowMs();
    if (now - p.last_progress_log_ms >= 5000) {
      p.last_progress_log_ms = now;
      if (now - p.started_ms >= 5000) {
        Log(LogLevel::kInfo, "sync to " + p.id + ": " +
                                 std::to_string(p.delta->writer().shipped_bytes() >> 20) + " of " +
                                 std::to_string(p.delta->writer().total_bytes() >> 20) +
                                 " MiB sent");
      }
    }
  }
}

void PrimaryEngine::OnAck(Peer& p, const Opened& o) {
  auto ack = DecodeAck(o.plain);
  if (!ack.ok()) return FailSync(p, "bad ack", false);
  p.answered = true;
  p.deadline_ms = env_.clock->NowMs() + kPhaseTimeoutMs;
  switch (ack->kind) {
    case Ack::Kind::kProgress:
      p.acked_chunk = std::max<int64_t>(p.acked_chunk, ack->chunk);
      Pump(p);
      return;
    case Ack::Kind::kError:
      return FailSync(p, "backup refused the delta: " + ack->error, ack->retry_plain);
    case Ack::Kind::kConfirm:
      return;  // a repeated confirmation of a key already installed
    case Ack::Kind::kStale:
      // The backup is not at the tree the delta was computed against (it
      // restarted after a crash, was checked or edited): nothing was
      // applied. Ask for its manifest now; not a failure.
      Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id +
                                ": it holds another tree than we knew; asking for its manifest");
      AbandonSync(p);
      p.known.reset();
      return;
    case Ack::Kind::kDone:
      if (p.phase != Peer::Phase::kAwaitAck) return FailSync(p, "early final ack", false);
      return FinishSync(p, ack->root == p.snapshot_root, &*ack);
  }
}

void PrimaryEngine::FinishSync(Peer& p, bool in_sync, const Ack* ack) {
  int64_t now = env_.clock->NowMs();
  // Replayed acks or manifests must stay refused after a power loss too.
  Status synced = p.channel->SyncCounters();
  if (!synced.ok()) Log(LogLevel::kWarn, "counters not made durable: " + synced.ToString());
  p.phase = Peer::Phase::kIdle;
  p.plain_next = false;
  p.error.clear();
  p.backoff_ms = 0;
  p.retry_at_ms = 0;
  if (in_sync) {
    p.known = p.snapshot;
    p.known_root = p.snapshot_root;
    p.last_sync_ns = env_.clock->WallNs();
  } else {
    // The backup holds something else (e.g. its own exclusions differ):
    // next time ask for its whole manifest.
    p.known.reset();
    p.rescan = true;
  }
  Event e;
  e.type = "sync";
  e.gw = env_.config.gateway_id;
  e.fields["backup"] = p.id;
  e.fields["result"] = in_sync ? "in_sync" : "differs";
  e.counts["ops"] = p.delta ? static_cast<int64_t>(p.delta->writer().op_count()) : 0;
  e.counts["bytes"] = p.delta ? static_cast<int64_t>(p.delta->writer().total_bytes()) : 0;
  e.counts["wire_bytes"] = static_cast<int64_t>(p.wire_bytes);
  e.counts["duration_ms"] = now - p.started_ms;
  if (ack) e.counts["files"] = ack->files;
  p.delta.reset();
  p.snapshot.reset();
  p.backup_manifest.reset();
  Emit(std::move(e));
  Log(LogLevel::kInfo, "sync to " + p.id + (in_sync ? " done" : " ended with differences") +
                           " in " + std::to_string(now - p.started_ms) + " ms (" +
                           std::to_string(p.wire_bytes) + " bytes on the wire)");
  // A sync that did not leave the backup at its snapshot goes again. Changes
  // made meanwhile are the policy schedule's to time (Tick marks every peer
  // wanted when a module is due, busy or not): forcing a sync here carried a
  // delayed module's change early.
  if (!in_sync) p.wanted = true;
  PublishStatus();
}

void PrimaryEngine::AbandonSync(Peer& p) {
  p.phase = Peer::Phase::kIdle;
  p.transfer = 0;  // its late answers are stale now
  p.delta.reset();
  p.snapshot.reset();
  p.wanted = true;
  p.retry_at_ms = 0;
}

void PrimaryEngine::FailSync(Peer& p, const std::string& why, bool retry_plain) {
  int64_t now = env_.clock->NowMs();
  Log(LogLevel::kWarn, "sync to " + p.id + " failed: " + why);
  Event e{"error", env_.config.gateway_id, {{"duration_ms", now - p.started_ms}},
          {{"backup", p.id}, {"error", why}}};
  Emit(std::move(e));
  p.phase = Peer::Phase::kIdle;
  p.transfer = 0;  // its late answers are stale now
  p.error = why;
  p.delta.reset();
  p.snapshot.reset();
  p.known.reset();
  p.rescan = true;
  p.plain_next = retry_plain;
  p.wanted = true;
  p.backoff_ms = p.backoff_ms == 0 ? 200 : std::min(kMaxBackoffMs, p.backoff_ms * 2);
  p.retry_at_ms = now + p.backoff_ms;
  PublishStatus();
}

int64_t PrimaryEngine::Tick(int64_t now) {
  if (resubscribe_at_ms_ >= 0 && now >= resubscribe_at_ms_) OnConnection(true);
  outbox_.Flush();
  int64_t next = resubscribe_at_ms_ >= 0 ? resubscribe_at_ms_ : INT64_MAX;
  RetryScan(now);
  if (!scan_fault_.error.empty()) next = scan_fault_.retry_at_ms;
  PolicySchedule::Due due = policies_.Poll(now, &next);
  if (due.check) {
    Log(LogLevel::kInfo, "periodic check of every backup");
    CheckAll();
  } else if (due.sync) {
    for (auto& [id, p] : peers_) p->wanted = true;
  }
  for (auto& [id, pp] : peers_) {
    Peer& p = *pp;
    if (p.phase != Peer::Phase::kIdle && now >= p.deadline_ms) {
      FailSync(p, "timed out waiting for the backup", false);
    }
    if (p.phase == Peer::Phase::kAwaitManifest && !p.answered && now >= p.repeat_at_ms) {
      Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id +
                                ": no answer yet, request repeated");
      if (SendRequest(p)) {
        p.repeat_gap_ms = std::min(p.repeat_gap_ms * 2, kPhaseTimeoutMs);
        p.repeat_at_ms = now + p.repeat_gap_ms;
      }
    }
    bool delta_unanswered = p.direct && !p.answered && (p.phase == Peer::Phase::kSending ||
                                                         p.phase == Peer::Phase::kAwaitAck);
    if (delta_unanswered && now >= p.repeat_at_ms) {
      // Missed, or still being applied (a slow disk): either way the
      // exchange tells. If it was applied, the backup's root says so and
      // nothing is sent again.
      Log(LogLevel::kDebug, "sync " + std::to_string(p.transfer) + " to " + p.id +
                                ": no answer to the delta yet, asking for its manifest");
      p.sent = p.snapshot;
      p.sent_root = p.snapshot_root;
      AbandonSync(p);
      p.ask_next = true;
    }
    if ((p.phase == Peer::Phase::kAwaitManifest && !p.answered) || delta_unanswered) {
      next = std::min(next, p.repeat_at_ms);
    }
    bool due = p.phase == Peer::Phase::kIdle && p.wanted && p.online && connected_;
    if (due && now >= p.retry_at_ms) StartSync(p, now);
    if (p.phase == Peer::Phase::kSending) Pump(p);
    if (p.phase != Peer::Phase::kIdle) next = std::min(next, p.deadline_ms);
    else if (p.wanted && p.online && connected_) next = std::min(next, p.retry_at_ms);
  }
  if (outbox_.size() > 0 || std::any_of(peers_.begin(), peers_.end(), [](const auto& kv) {
        return kv.second->phase == Peer::Phase::kSending;
      })) {
    next = std::min(next, now + 5);  // waiting for in-flight room
  }
  if (now >= next_status_ms_) PublishStatus();
  next = std::min(next, next_status_ms_);
  return next;
}

// A retained policy arrived, changed or was removed (empty payload). An
// invalid one is refused with an event and the previous one stays.
void PrimaryEngine::OnPolicy(const std::string& module, const std::string& payload) {
  int64_t now = env_.clock->NowMs();
  Event e;
  e.type = "policy";
  e.gw = env_.config.gateway_id;
  e.fields["module"] = module;
  std::vector<std::string> excludes_before = policies_.Exclusions(env_.config.exclude);
  if (!IsValidId(module) || module == PolicySchedule::kDefault) {
    e.type = "rejected";
    e.fields["error"] = "policy module name must be 1-64 of [A-Za-z0-9_-] and not \"default\"";
  } else if (payload.empty()) {
    if (!policies_.Remove(module)) return;  // nothing was applied
    e.fields["action"] = "removed";
  } else {
    auto parsed = ParseModulePolicy(payload);
    if (!parsed.ok()) {
      e.type = "rejected";
      e.fields["error"] = "policy " + module + ": " + parsed.status().message();
    } else {
      std::string hash = PolicyHash(*parsed);
      if (policies_.Has(module) && policies_.HashOf(module) == hash) return;  // redelivered
      e.fields["action"] = policies_.Has(module) ? "changed" : "applied";
      e.fields["hash"] = hash;
      policies_.Set(module, std::move(parsed).value(), now);
    }
  }
  if (e.type == "rejected") {
    Log(LogLevel::kWarn, "refused " + e.fields["error"] +
                             (policies_.Has(module) ? " (the previous policy stays)" : ""));
  } else {
    Log(LogLevel::kInfo, "policy " + module + " " + e.fields["action"] +
                             (e.fields.count("hash") ? " (" + e.fields["hash"] + ")" : ""));
  }
  Emit(std::move(e));
  std::vector<std::string> excludes = policies_.Exclusions(env_.config.exclude);
  if (excludes != excludes_before) {
    // What is replicated changed: re-read the tree under the new exclusions
    // and bring every backup to it (newly excluded files stay untouched on
    // the backups; newly included ones are sent).
    filter_ = PathFilter(excludes);
    // What each backup was known to hold was seen through the old filter:
    // ask for full manifests, read through the new one.
    for (auto& [id, p] : peers_) p->known.reset();
    CheckAll();
  }
  PublishStatus();
}

void PrimaryEngine::CheckAll() {
  Rescan();
  for (auto& [id, p] : peers_) {
    p->wanted = true;
    p->rescan = true;
  }
}

bool PrimaryEngine::AllInSync() const {
  for (const auto& [id, p] : peers_) {
    if (!p->known || p->known_root != root_) return false;
  }
  return true;
}

void PrimaryEngine::PublishStatus() {
  GatewayStatus s;
  s.role = "primary";
  bool syncing = false;
  int64_t last_ns = 0;
  for (const auto& [id, p] : peers_) {
    syncing |= p->phase != Peer::Phase::kIdle;
    last_ns = std::max(last_ns, p->last_sync_ns);
  }
  // The first cause found: the tree cannot be read, or a backup's last
  // sync failed.
  s.error = scan_fault_.error;
  for (const auto& [id, p] : peers_) {
    if (s.error.empty() && !p->error.empty()) s.error = "backup " + id + ": " + p->error;
  }
  s.state = !s.error.empty() ? "error" : AllInSync() ? "in_sync" : (syncing ? "syncing" : "behind");
  s.root = ToHex(root_);
  s.files = current_files_;
  s.bytes = static_cast<int64_t>(current_bytes_);
  if (last_ns) s.last_sync = FormatIso8601(last_ns);
  s.policies = policies_.Hashes();
  std::string payload = EncodeStatus(s);
  int64_t now = env_.clock->NowMs();
  if (payload == last_status_ && now < next_status_ms_) return;
  next_status_ms_ = now + kStatusRefreshMs;
  last_status_ = payload;
  if (!connected_) return;
  Message m;
  m.topic = topics_.Status(env_.config.gateway_id);
  m.payload = payload;
  m.retained = true;
  outbox_.Send(std::move(m));
}

Message PrimaryEngine::FinalStatus() {
  GatewayStatus s;
  s.role = "primary";
  s.state = "offline";
  s.root = ToHex(root_);
  Message m;
  m.topic = topics_.Status(env_.config.gateway_id);
  m.payload = EncodeStatus(s);
  m.retained = true;
  return m;
}

void PrimaryEngine::PublishDiscovery(const std::string& backup) {
  if (!env_.config.homeassistant.discovery) return;
  for (Message& m : HomeAssistantDiscovery(env_.config, backup)) outbox_.Send(std::move(m));
}

void PrimaryEngine::Emit(Event e) {
  Message m;
  m.topic = topics_.Events();
  m.payload = EncodeEvent(e);
  outbox_.Send(std::move(m));
}

}  // namespace hubsync
