#include "sync_session.h"

#include <algorithm>

namespace hubsync {

void SyncSession::OnPresence(bool online, const std::string& state, const std::string& root) {
  bool was_online = online_;
  online_ = online;
  probing_ = false;  // its status reaches us: no need to ask blindly
  if (online_ && !was_online && phase_ != Phase::kIdle) {
    // Asked while it was away (a probe): that request is lost; ask again now
    // rather than at the next repeat.
    Abandon();
  }
  if (!online_) error_.clear();  // its failures are no longer ours to report
  if (!online_ && was_online && phase_ != Phase::kIdle) {
    // Its half of the transfer is gone; start over when it is back.
    Log(LogLevel::kInfo, "backup " + id_ + " went offline during a sync");
    phase_ = Phase::kIdle;
    delta_.reset();
    snapshot_.reset();
    wanted_ = true;
    retry_at_ms_ = 0;
  }
  bool differs = state != "syncing" && phase_ == Phase::kIdle && root != ToHex(known_root_);
  if (online_ && (!was_online || differs)) {
    // A backup that (re)appeared or differs: catch it up now.
    wanted_ = true;
    if (!was_online) {
      Log(LogLevel::kInfo, "backup " + id_ + " is online: syncing it");
      // It may have restarted: even holding the tree we know, it cannot tell
      // it is in sync until we say so, which a request does.
      ask_next_ = true;
    }
    // At once, unless it is failing: its own "error" status after each
    // failed sync must not turn the growing delay into a tight loop.
    if (phase_ == Phase::kIdle && (!was_online || backoff_ms_ == 0)) retry_at_ms_ = 0;
  }
}

void SyncSession::Reconnected(int64_t now) {
  online_ = false;
  probing_ = true;
  told_held_ = false;
  phase_ = Phase::kIdle;
  delta_.reset();
  wanted_ = true;
  retry_at_ms_ = now + kProbeDelayMs;
}

void SyncSession::Want(bool check) {
  wanted_ = true;
  rescan_ |= check;
}

void SyncSession::Paired() {
  wanted_ = rescan_ = online_ = true;
  retry_at_ms_ = 0;
}

std::unique_ptr<DeltaReader> SyncSession::Join(const DeltaKey& key) const {
  if (!delta_ || !(delta_key_ == key)) return nullptr;
  return delta_->Join();
}

void SyncSession::OnSealed(bool is_ack, const Message& m) {
  if (!channel_) return;
  auto opened = channel_->Open(m.payload);
  if (!opened.ok() && opened.status().code() == Status::Code::kIoError) {
    // Authentic, but our own state_dir could not record its counter (disk
    // full, EIO): not the message's fault. Nothing is acted on; the sync
    // fails now, with the cause, instead of at the timeout.
    Log(LogLevel::kError, "cannot record the counter of a message from " + id_ + ": " +
                              opened.status().ToString());
    if (phase_ != Phase::kIdle) {
      Fail("cannot record a message counter: " + opened.status().Reason(), false);
    }
    return;
  }
  if (!opened.ok() && opened.status().message() == "for another primary") {
    // The backup answers another primary of this home (one that took over,
    // or one we are about to learn has): not ours, and no attack.
    Log(LogLevel::kDebug, "a message from " + id_ + " for another primary ignored");
    return;
  }
  if (!opened.ok()) {
    Log(LogLevel::kWarn, "refused a message from " + id_ + ": " + opened.status().ToString());
    ctx_.emit(Event{"rejected",
                    ctx_.env->config.gateway_id,
                    {{"bytes", static_cast<int64_t>(m.payload.size())}},
                    {{"backup", id_}, {"reason", opened.status().message()}}});
    return;
  }
  // A backup that follows a higher term refuses us with kFenced (whatever
  // sync it answers); any authentic answer under a higher term fences too.
  if (opened->header.kind == MsgKind::kAck) {
    auto ack = DecodeAck(opened->plain);
    if (ack.ok() && ack->kind == Ack::Kind::kFenced) {
      ctx_.fenced(Claim{opened->header.term, ack->primary});
      return;
    }
  }
  if (opened->header.term > ctx_.claim->term) {
    ctx_.fenced(Claim{opened->header.term, ""});
    return;
  }
  MsgKind expected = is_ack ? MsgKind::kAck : MsgKind::kManifestRes;
  if (opened->header.kind != expected || opened->header.transfer != transfer_) {
    return;  // a stale answer to a sync that was given up
  }
  wire_bytes_ += m.payload.size();
  if (is_ack) OnAck(*opened);
  else OnManifestChunk(*opened);
}

bool SyncSession::EnsureChannel(int64_t now) {
  // A key made since (keygen for a new epoch) takes effect at the next sync.
  if (channel_) {
    auto keys = KeyStore(ctx_.env->state).Load(id_);
    if (!keys.ok() || keys->back().epoch != channel_->epoch()) channel_.reset();
  }
  if (channel_) return true;
  const Config& c = ctx_.env->config;
  auto ch = SecureChannel::Create(ctx_.env->state, c.home, id_, true);
  if (!ch.ok()) {
    if (now >= next_key_log_ms_) {
      Log(LogLevel::kWarn, "no usable key for backup " + id_ + " (" + ch.status().ToString() +
                               "); it gets one by pairing or hubsync keygen");
      next_key_log_ms_ = now + 60000;
    }
    retry_at_ms_ = now + 2000;
    return false;
  }
  channel_ = std::move(ch).value();
  channel_->set_primary(c.gateway_id);
  channel_->set_term(ctx_.claim->term);
  channel_->set_max_plain(static_cast<size_t>(c.max_message_bytes));
  channel_->set_compress(c.compress);
  return true;
}

void SyncSession::Start(int64_t now) {
  if (!EnsureChannel(now)) return;
  wanted_ = false;
  const std::shared_ptr<const Manifest>& current = *ctx_.current;
  const Digest& root = current->root();
  // Nothing in doubt (the backup's last sync left it at a tree we know, and
  // no check or plain resend is asked for): the difference goes at once,
  // applied only if that tree is still the backup's (one round trip).
  bool direct = known_ && !rescan_ && !plain_next_ && !ask_next_ && online_;
  if (direct && known_root_ == root) return;  // it holds this tree already
  ask_next_ = false;
  direct_ = direct;
  answered_ = false;
  transfer_ = static_cast<uint64_t>(ctx_.env->clock->WallNs() / 1000000) * 1000 +
              (++transfer_seq_ % 1000);
  started_ms_ = now;
  wire_bytes_ = 0;
  snapshot_ = current;
  snapshot_root_ = root;
  if (direct) {
    HoldBack(*known_);
    if (snapshot_root_ == known_root_) {  // what changed is all held back
      snapshot_.reset();
      return;
    }
    deadline_ms_ = now + PrimaryEngine::kPhaseTimeoutMs;
    repeat_at_ms_ = now + PrimaryEngine::kRequestRepeatMs;
    Log(LogLevel::kDebug, Name() + " started against its known tree");
    StartDelta(known_, known_root_);
    ctx_.status_changed();
    return;
  }
  if (!online_) {
    Log(LogLevel::kInfo, "no status seen from backup " + id_ + " since connecting: asking it directly");
  }
  phase_ = Phase::kAwaitManifest;
  assembler_ = ManifestAssembler({}, current);  // a backup's tree is mostly ours
  ManifestRequest req;
  req.primary = ctx_.env->config.gateway_id;
  req.root = ToHex(root);
  req.expect = known_ ? ToHex(known_root_) : "";
  req.also = known_ && sent_ ? ToHex(sent_root_) : "";
  req.rescan = rescan_;
  int64_t held_until = ctx_.policies->HeldUntil();
  if (held_until != INT64_MAX) {
    int64_t wall_ms = ctx_.env->clock->WallNs() / 1000000 + std::max<int64_t>(0, held_until - now);
    req.held_until_ms = static_cast<uint64_t>(wall_ms);
    told_held_ = true;
  }
  request_ = EncodeManifestRequest(req);
  if (!SendRequest()) return;
  // From the request's departure (sealing may have waited on the disk).
  deadline_ms_ = Now() + PrimaryEngine::kPhaseTimeoutMs;
  repeat_gap_ms_ = PrimaryEngine::kRequestRepeatMs;
  repeat_at_ms_ = Now() + repeat_gap_ms_;
  Log(LogLevel::kDebug, Name() + " started");
  ctx_.status_changed();
}

bool SyncSession::SendRequest() {
  auto sealed = channel_->Seal(MsgKind::kRequest, transfer_, 0, true, request_);
  if (!sealed.ok()) {
    Fail("cannot seal the request: " + sealed.status().ToString(), false);
    return false;
  }
  Message msg;
  msg.topic = ctx_.topics->ManifestReq(id_);
  msg.payload = std::move(sealed).value();
  msg.response_topic = ctx_.topics->ManifestRes(id_);
  msg.correlation = std::to_string(transfer_);
  wire_bytes_ += msg.payload.size();
  ctx_.outbox->Send(std::move(msg));
  return true;
}

void SyncSession::OnManifestChunk(const Opened& o) {
  if (phase_ != Phase::kAwaitManifest) return;
  answered_ = true;
  if (!online_) {
    Log(LogLevel::kInfo, "backup " + id_ + " answered: syncing it");
    online_ = true;
    probing_ = false;
    ctx_.status_changed();
  }
  Status s = assembler_.Add(o.header.chunk, o.header.last, o.plain);
  if (!s.ok()) return Fail("bad manifest: " + s.message(), false);
  deadline_ms_ = Now() + PrimaryEngine::kPhaseTimeoutMs;
  if (!assembler_.done()) return;
  std::shared_ptr<const Manifest> theirs;
  std::shared_ptr<const Manifest> sent = std::move(sent_);
  if (assembler_.header().same) {
    if (known_ && assembler_.header().root == known_root_) {
      theirs = known_;
    } else if (known_ && sent && assembler_.header().root == sent_root_) {
      theirs = sent;  // the unanswered delta was applied after all
    } else {
      return Fail("backup claims a manifest we do not know", false);
    }
  } else {
    theirs = std::make_shared<const Manifest>(FilterManifest(assembler_.Take(), *ctx_.filter));
  }
  rescan_ = false;
  HoldBack(*theirs);
  StartDelta(theirs, std::nullopt);
}

void SyncSession::HoldBack(const Manifest& theirs) {
  Manifest due;
  if (!DueTree(*snapshot_, theirs, *ctx_.policies, &due)) return;
  snapshot_root_ = due.root();
  snapshot_ = std::make_shared<const Manifest>(std::move(due));
}

void SyncSession::StartDelta(std::shared_ptr<const Manifest> theirs,
                             std::optional<Digest> precondition) {
  backup_manifest_ = theirs;
  delta_key_ = DeltaKey{snapshot_root_, theirs->root(), precondition, plain_next_};
  // Another backup is being sent the same delta (same trees): share it.
  delta_ = ctx_.join(delta_key_);
  if (!delta_) {
    std::unique_ptr<DeltaWriter> writer = WriteDelta();
    if (!writer) return Finish(true, nullptr);  // nothing differs
    delta_ = std::make_shared<SharedDelta>(std::move(writer), ctx_.env->config.compress)->Join();
  }
  phase_ = Phase::kSending;
  told_held_ = false;  // it will hold the delta's tree, and say it is in sync
  next_chunk_ = 0;
  acked_chunk_ = -1;
  Log(LogLevel::kDebug, Name() + ": " + std::to_string(delta_->writer().op_count()) + " ops, " +
                            std::to_string(delta_->writer().total_bytes()) + " bytes to ship" +
                            (delta_->shared() ? " (shared with another backup)" : ""));
  Pump();
}

std::unique_ptr<DeltaWriter> SyncSession::WriteDelta() const {
  DiffOptions opts;
  opts.allow_block_reuse = opts.allow_local_source = !delta_key_.plain;
  std::vector<Op> ops = Diff(*snapshot_, *backup_manifest_, opts);
  if (ops.empty()) return nullptr;
  size_t message = ctx_.link ? ctx_.link->message_bytes()
                             : static_cast<size_t>(ctx_.env->config.max_message_bytes);
  size_t max_plain = message - kEnvelopeOverhead - 1024;
  return std::make_unique<DeltaWriter>(ctx_.env->fs, snapshot_, backup_manifest_, std::move(ops),
                                       max_plain, delta_key_.precondition, snapshot_root_);
}

void SyncSession::Pump() {
  while (phase_ == Phase::kSending &&
         static_cast<int64_t>(next_chunk_) - acked_chunk_ <= PrimaryEngine::kWindow && ctx_.outbox->size() < 2) {
    auto chunk = delta_->Next();
    if (!chunk.ok() && chunk.status().code() == Status::Code::kUnavailable) {
      // Let go by the backups it shared with: the same delta, written again
      // for this one alone from where it is.
      Log(LogLevel::kDebug, Name() + ": behind the other backups, reading on alone");
      auto alone = DeltaReader::Alone(WriteDelta(), ctx_.env->config.compress, next_chunk_);
      if (!alone.ok()) return Fail("cannot read data_dir: " + alone.status().Reason(), false);
      delta_ = std::move(alone).value();
      continue;
    }
    if (!chunk.ok()) {
      Log(LogLevel::kWarn, "reading what to send failed: " + chunk.status().ToString());
      return Fail("cannot read data_dir: " + chunk.status().Reason(), false);
    }
    auto sealed = channel_->SealPacked(MsgKind::kDelta, transfer_, next_chunk_, **chunk);
    if (!sealed.ok()) return Fail(sealed.status().ToString(), false);
    Message msg;
    msg.topic = ctx_.topics->Delta(id_);
    msg.payload = std::move(sealed).value();
    wire_bytes_ += msg.payload.size();
    ctx_.outbox->Send(std::move(msg));
    ++next_chunk_;
    if ((*chunk)->last) phase_ = Phase::kAwaitAck;
    int64_t now = Now();
    if (now - last_progress_log_ms_ >= 5000) {
      last_progress_log_ms_ = now;
      if (now - started_ms_ >= 5000) {
        Log(LogLevel::kInfo, "sync to " + id_ + ": " +
                                 std::to_string(delta_->writer().shipped_bytes() >> 20) + " of " +
                                 std::to_string(delta_->writer().total_bytes() >> 20) +
                                 " MiB sent");
      }
    }
  }
}

void SyncSession::OnAck(const Opened& o) {
  auto ack = DecodeAck(o.plain);
  if (!ack.ok()) return Fail("bad ack", false);
  answered_ = true;
  deadline_ms_ = Now() + PrimaryEngine::kPhaseTimeoutMs;
  switch (ack->kind) {
    case Ack::Kind::kProgress:
      acked_chunk_ = std::max<int64_t>(acked_chunk_, ack->chunk);
      Pump();
      return;
    case Ack::Kind::kError:
      return Fail("backup refused the delta: " + ack->error, ack->retry_plain);
    case Ack::Kind::kConfirm:
      return;  // a repeated confirmation of a key already installed
    case Ack::Kind::kFenced:
      return;  // handled in OnSealed before any sync's answer
    case Ack::Kind::kStale:
      // The backup is not at the tree the delta was computed against (it
      // restarted after a crash, was checked or edited): nothing was
      // applied. Ask for its manifest now; not a failure.
      Log(LogLevel::kDebug, Name() + ": it holds another tree than we knew; asking for its manifest");
      Abandon();
      known_.reset();
      return;
    case Ack::Kind::kDone:
      if (phase_ != Phase::kAwaitAck) return Fail("early final ack", false);
      return Finish(ack->root == snapshot_root_, &*ack);
  }
}

void SyncSession::Finish(bool in_sync, const Ack* ack) {
  int64_t now = Now();
  // Replayed acks or manifests must stay refused after a power loss too.
  Status synced = channel_->SyncCounters();
  if (!synced.ok()) Log(LogLevel::kWarn, "counters not made durable: " + synced.ToString());
  phase_ = Phase::kIdle;
  plain_next_ = false;
  error_.clear();
  backoff_ms_ = 0;
  retry_at_ms_ = 0;
  if (in_sync) {
    known_ = snapshot_;
    known_root_ = snapshot_root_;
    last_sync_ns_ = ctx_.env->clock->WallNs();
  } else {
    // The backup holds something else (e.g. its own exclusions differ):
    // next time ask for its whole manifest.
    known_.reset();
    rescan_ = true;
  }
  Event e;
  e.type = "sync";
  e.gw = ctx_.env->config.gateway_id;
  e.fields["backup"] = id_;
  e.fields["result"] = in_sync ? "in_sync" : "differs";
  e.counts["ops"] = delta_ ? static_cast<int64_t>(delta_->writer().op_count()) : 0;
  e.counts["bytes"] = delta_ ? static_cast<int64_t>(delta_->writer().total_bytes()) : 0;
  e.counts["wire_bytes"] = static_cast<int64_t>(wire_bytes_);
  e.counts["duration_ms"] = now - started_ms_;
  if (ack) e.counts["files"] = ack->files;
  delta_.reset();
  snapshot_.reset();
  backup_manifest_.reset();
  ctx_.emit(std::move(e));
  Log(LogLevel::kInfo, "sync to " + id_ + (in_sync ? " done" : " ended with differences") +
                           " in " + std::to_string(now - started_ms_) + " ms (" +
                           std::to_string(wire_bytes_) + " bytes on the wire)");
  // A sync that did not leave the backup at its snapshot goes again. Changes
  // made meanwhile are the policy schedule's to time (the engine wants every
  // session when a module is due, busy or not): forcing a sync here carried
  // a delayed module's change early.
  if (!in_sync) wanted_ = true;
  ctx_.status_changed();
}

void SyncSession::Abandon() {
  phase_ = Phase::kIdle;
  transfer_ = 0;  // its late answers are stale now
  delta_.reset();
  snapshot_.reset();
  wanted_ = true;
  retry_at_ms_ = 0;
}

void SyncSession::Fail(const std::string& why, bool retry_plain) {
  int64_t now = Now();
  Log(LogLevel::kWarn, "sync to " + id_ + " failed: " + why);
  ctx_.emit(Event{"error",
                  ctx_.env->config.gateway_id,
                  {{"duration_ms", now - started_ms_}},
                  {{"backup", id_}, {"error", why}}});
  phase_ = Phase::kIdle;
  transfer_ = 0;  // its late answers are stale now
  error_ = why;
  delta_.reset();
  snapshot_.reset();
  known_.reset();
  rescan_ = true;
  plain_next_ = retry_plain;
  wanted_ = true;
  backoff_ms_ = backoff_ms_ == 0 ? 200 : std::min(PrimaryEngine::kMaxBackoffMs, backoff_ms_ * 2);
  retry_at_ms_ = now + backoff_ms_;
  ctx_.status_changed();
}

int64_t SyncSession::Tick(int64_t now, bool connected, int64_t next) {
  if (phase_ != Phase::kIdle && now >= deadline_ms_ && !online_) {
    // Asked directly and never answered: it is away. Its status (birth)
    // brings it back.
    Log(LogLevel::kInfo, "backup " + id_ + " did not answer: waiting for it to announce itself");
    probing_ = false;
    Abandon();
  }
  if (phase_ != Phase::kIdle && now >= deadline_ms_) Fail("timed out waiting for the backup", false);
  if (phase_ == Phase::kAwaitManifest && !answered_ && now >= repeat_at_ms_) {
    Log(LogLevel::kDebug, Name() + ": no answer yet, request repeated");
    if (SendRequest()) {
      repeat_gap_ms_ = std::min(repeat_gap_ms_ * 2, PrimaryEngine::kPhaseTimeoutMs);
      repeat_at_ms_ = now + repeat_gap_ms_;
    }
  }
  bool delta_unanswered =
      direct_ && !answered_ && (phase_ == Phase::kSending || phase_ == Phase::kAwaitAck);
  if (delta_unanswered && now >= repeat_at_ms_) {
    // Missed, or still being applied (a slow disk): either way the exchange
    // tells. If it was applied, the backup's root says so and nothing is
    // sent again.
    Log(LogLevel::kDebug, Name() + ": no answer to the delta yet, asking for its manifest");
    sent_ = snapshot_;
    sent_root_ = snapshot_root_;
    Abandon();
    ask_next_ = true;
  }
  if ((phase_ == Phase::kAwaitManifest && !answered_) || delta_unanswered) {
    next = std::min(next, repeat_at_ms_);
  }
  if (phase_ == Phase::kIdle && !wanted_ && online_ && connected && known_ && !told_held_ &&
      known_root_ != (*ctx_.current)->root() && ctx_.policies->HeldUntil() != INT64_MAX) {
    // It lacks only what a policy holds back, and does not know: a request
    // tells it (it answers "same"; nothing is due, so nothing follows).
    wanted_ = ask_next_ = true;
  }
  bool due = phase_ == Phase::kIdle && wanted_ && (online_ || probing_) && connected;
  if (due && now >= retry_at_ms_) Start(now);
  if (phase_ == Phase::kSending) Pump();
  if (phase_ != Phase::kIdle) next = std::min(next, deadline_ms_);
  else if (due) next = std::min(next, retry_at_ms_);
  return next;
}

}  // namespace hubsync
