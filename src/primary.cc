#include <algorithm>
#include <climits>

#include "hubsync/engine.h"

#include <sys/stat.h>
#include <unistd.h>

#include "hubsync/ha_discovery.h"
#include "sync_session.h"

namespace hubsync {

PrimaryEngine::PrimaryEngine(EngineEnv env)
    : env_(std::move(env)),
      topics_(env_.config),
      filter_(env_.config.exclude),
      keys_(env_.state),
      outbox_(env_.transport),
      link_("the broker", env_.config, env_.clock, env_.log),
      oob_link_("the OOB broker", env_.config, env_.clock, env_.log),
      policies_(env_.config.policy, env_.clock->NowMs()),
      desk_(env_.state, env_.config.home, env_.config.gateway_id, false) {
  scanner_ = std::make_unique<Scanner>(env_.fs, &filter_, env_.state);
  for (const auto& b : env_.config.backups) AddPeer(b);
}

PrimaryEngine::~PrimaryEngine() = default;

SyncSession& PrimaryEngine::AddPeer(const std::string& id) {
  SyncSession::Context ctx;
  ctx.env = &env_;
  ctx.topics = &topics_;
  ctx.outbox = &outbox_;
  ctx.filter = &filter_;
  ctx.policies = &policies_;
  ctx.current = &current_;
  ctx.link = &link_;
  ctx.status_changed = [this] { PublishStatus(); };
  ctx.emit = [this](Event e) { Emit(std::move(e)); };
  ctx.claim = &claim_;
  ctx.fenced = [this](const Claim& winner) { Fence(winner); };
  ctx.join = [this](const SyncSession::DeltaKey& key) -> std::unique_ptr<DeltaReader> {
    for (auto& [other, session] : peers_) {
      if (auto reader = session->Join(key)) return reader;
    }
    return nullptr;
  };
  auto session = std::make_unique<SyncSession>(id, std::move(ctx));
  SyncSession& ref = *session;
  peers_[id] = std::move(session);
  if (connected_) PublishDiscovery(id);
  return ref;
}

SyncSession* PrimaryEngine::FindPeer(const std::string& id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

Status PrimaryEngine::Start() {
  // Our term: the stored one if it is ours, 1 for a hub that never saw one
  // (implied, so nothing need be written to start). A hub that knows
  // another's term (it was fenced, or followed that primary as a backup)
  // does not serve: only `hubsync promote` makes a hub primary over
  // another's term.
  auto stored = LoadClaim(*env_.state);
  if (!stored.ok()) return stored.status();
  const std::string& self = env_.config.gateway_id;
  if (stored->empty()) {
    claim_ = Claim{1, self};
  } else if (stored->primary == self) {
    claim_ = *stored;
  } else {
    fenced_by_ = *stored;
  }
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
  if (fenced()) {
    // Started as primary on a hub that knows another's term (fenced earlier,
    // or that primary's backup): it follows that primary if it holds a key
    // from it (its tree kept aside first, unless that was done at the
    // fencing), else stays idle.
    bool follows = HoldsKeyWith(fenced_by_.primary);
    Log(LogLevel::kWarn, "not serving: this hub knows " + Describe(fenced_by_) +
                             (follows ? "; following it as its backup" : "; it stays idle"));
    if (follows) {
      Status kept = KeepAside();
      if (kept.ok()) demote_ = true;
      else Log(LogLevel::kError, "cannot keep our tree aside (" + kept.ToString() + "): staying idle");
    }
    return Status::Ok();
  }
  RevokeRemovedBackups();
  return Status::Ok();
}

// A backup taken out of the config loses its key, unless it was admitted
// through a pairing window (then only `hubsync unpair` removes it).
void PrimaryEngine::RevokeRemovedBackups() {
  for (const std::string& id : keys_.List()) {
    if (id == env_.config.gateway_id) continue;  // our own key as a backup (promoted: SPEC 11)
    bool listed = std::find(env_.config.backups.begin(), env_.config.backups.end(), id) !=
                  env_.config.backups.end();
    if (listed || IsAdmitted(*env_.state, id)) continue;
    Status s = Revoke(env_.state, id);
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarn,
        "backup " + id + " is no longer in the config: key revoked" +
            (s.ok() ? "" : " (failed: " + s.ToString() + ")"));
  }
}

void PrimaryEngine::OnConnection(const LinkEvent& e) {
  connected_ = false;  // until our subscriptions are granted: no answer could reach us
  resubscribe_at_ms_ = -1;
  link_.Report(e);
  if (e.up()) Subscribe();
}

void PrimaryEngine::Subscribe() {
  resubscribe_at_ms_ = -1;
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
  SubscribeStatusAsk(env_.transport, topics_, env_.log);
  // Our own request and delta topics, where a primary whose term is over
  // may still send and is told so (SPEC 11). An account without the
  // standby rights (make-passwords.sh --standby) may not read them: then
  // only our backups fence it.
  const std::string& self = env_.config.gateway_id;
  Status own = SubscribeAll(env_.transport, {topics_.ManifestReq(self), topics_.Delta(self)});
  if (!own.ok()) Log(LogLevel::kDebug, "not following our own backup topics: " + own.ToString());
  if (env_.config.homeassistant.discovery) {
    // Home Assistant's birth message: it (re)started and wants our configs.
    Status ha = env_.transport->Subscribe(env_.config.homeassistant.prefix + "/status", 1);
    if (!ha.ok()) Log(LogLevel::kWarn, "cannot follow Home Assistant's status: " + ha.ToString());
  }
  connected_ = true;
  last_status_.clear();
  PublishStatus();
  PublishAllDiscovery();
  // Whatever was in flight may be lost with the old connection: restart,
  // once each backup's status (retained, or its birth after a broker
  // restart) shows it is there to answer.
  for (auto& [id, session] : peers_) session->Reconnected(env_.clock->NowMs());
}

void PrimaryEngine::Adopt(std::shared_ptr<const Manifest> m) {
  current_ = std::move(m);
  root_ = current_->root();
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
  if (env_.config.homeassistant.discovery &&
      m.topic == env_.config.homeassistant.prefix + "/status") {
    int64_t now = env_.clock->NowMs();
    if (m.payload == "online" && connected_ && now >= next_discovery_ms_) {
      next_discovery_ms_ = now + kDiscoveryGapMs;  // anyone allowed to announce cannot flood
      Log(LogLevel::kInfo, "Home Assistant announced itself: discovery configs published again");
      PublishAllDiscovery();
    }
    return;
  }
  if (m.topic.compare(0, topics_.prefix.size(), topics_.prefix) != 0) return;
  if (m.topic == topics_.StatusAsk()) {
    if (connected_ && asks_.OnAsk(env_.clock->NowMs())) {
      last_status_.clear();  // publish even if unchanged
      PublishStatus();
    }
    return;
  }
  std::string rest = m.topic.substr(topics_.prefix.size());
  if (rest.compare(0, 7, "policy/") == 0) return OnPolicy(rest.substr(7), m.payload);
  if (rest.compare(0, 3, "gw/") != 0) return;
  size_t slash = rest.find('/', 3);
  if (slash == std::string::npos) return;
  std::string gw = rest.substr(3, slash - 3);
  std::string kind = rest.substr(slash + 1);
  if (gw == env_.config.gateway_id) {
    if (kind == "manifest/req" || kind == "delta") OnOwnTopic(m);
    return;
  }

  if (kind == "status") {
    auto st = DecodeStatus(m.payload);
    if (!st.ok()) {
      Log(LogLevel::kWarn, "refused a status on " + m.topic + ": " + st.status().message());
      Emit(RejectedEvent(env_.config.gateway_id, "status", st.status().message(),
                         m.payload.size()));
      return;
    }
    if (st->role != "backup") return;
    SyncSession* session = FindPeer(gw);
    if (!session) {
      // A backup not in the config is served once it holds a key (paired).
      if (!IsValidId(gw) || !keys_.Load(gw).ok()) return;
      Log(LogLevel::kInfo, "backup " + gw + " announced itself and has a key: serving it");
      session = &AddPeer(gw);
    }
    session->OnPresence(st->state != "offline", st->state, st->root);
    return;
  }
  if (kind == "ack" && TryConfirm(gw, m)) return;
  if (kind != "manifest/res" && kind != "ack") return;
  if (fenced()) return;
  if (SyncSession* session = FindPeer(gw)) session->OnSealed(kind == "ack", m);
}

int64_t PrimaryEngine::Tick(int64_t now) {
  if (resubscribe_at_ms_ >= 0 && now >= resubscribe_at_ms_) Subscribe();
  outbox_.Flush();
  int64_t next = resubscribe_at_ms_ >= 0 ? resubscribe_at_ms_ : INT64_MAX;
  RetryScan(now);
  if (!scan_fault_.error.empty()) next = scan_fault_.retry_at_ms;
  PolicySchedule::Due due = policies_.Poll(now, &next);
  if (due.check) {
    Log(LogLevel::kInfo, "periodic check of every backup");
    CheckAll();
  } else if (due.sync) {
    for (auto& [id, session] : peers_) session->Want();
  }
  if (!fenced()) {
    for (auto& [id, session] : peers_) next = session->Tick(now, connected_, next);
  }
  if (outbox_.size() > 0 || std::any_of(peers_.begin(), peers_.end(), [](const auto& kv) {
        return kv.second->sending();
      })) {
    next = std::min(next, now + 5);  // waiting for in-flight room
  }
  if (asks_.Due(now) && connected_) last_status_.clear();  // a deferred status/ask
  if (now >= next_status_ms_ || last_status_.empty()) PublishStatus();
  next = std::min({next, next_status_ms_, asks_.next()});
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
    for (auto& [id, session] : peers_) session->Forget();
    CheckAll();
  }
  PublishStatus();
}

void PrimaryEngine::CheckAll() {
  Rescan();
  for (auto& [id, session] : peers_) session->Want(/*check=*/true);
}

bool PrimaryEngine::AllInSync() const {
  return std::all_of(peers_.begin(), peers_.end(),
                     [&](const auto& kv) { return kv.second->Holds(root_); });
}

void PrimaryEngine::PublishStatus() {
  GatewayStatus s;
  s.role = "primary";
  bool syncing = false;
  int64_t last_ns = 0;
  for (const auto& [id, session] : peers_) {
    syncing |= session->busy();
    last_ns = std::max(last_ns, session->last_sync_ns());
  }
  // The first cause found: the tree cannot be read, or a backup's last
  // sync failed.
  s.error = scan_fault_.error;
  for (const auto& [id, session] : peers_) {
    if (s.error.empty() && !session->error().empty()) {
      s.error = "backup " + id + ": " + session->error();
    }
  }
  // Backups short of the tree only by what a policy holds back are pending.
  int64_t now = env_.clock->NowMs();
  int64_t held_until = policies_.HeldUntil();
  bool in_sync = AllInSync();
  if (!in_sync && held_until != INT64_MAX) {
    int64_t due_ns = env_.clock->WallNs() + std::max<int64_t>(0, held_until - now) * 1000000;
    s.due = FormatIso8601(due_ns - due_ns % 1000000000);  // whole seconds: stable across calls
  }
  s.state = !s.error.empty() ? "error"
            : in_sync        ? "in_sync"
            : syncing        ? "syncing"
            : !s.due.empty() ? "pending"
                             : "behind";
  s.root = ToHex(root_);
  s.files = current_ ? static_cast<int64_t>(current_->files()) : 0;
  s.bytes = current_ ? static_cast<int64_t>(current_->bytes()) : 0;
  if (last_ns) s.last_sync = FormatIso8601(last_ns);
  s.policies = policies_.Hashes();
  s.term = claim_.term;
  s.primary = claim_.primary;
  if (fenced()) {
    s.state = "fenced";
    s.term = fenced_by_.term;
    s.primary = fenced_by_.primary;
    s.error = "fenced by " + (fenced_by_.primary.empty() ? "term " + std::to_string(fenced_by_.term)
                                                          : Describe(fenced_by_)) +
              "; this hub no longer serves";
    s.due.clear();
  }
  std::string payload = EncodeStatus(s);
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
  s.term = fenced() ? fenced_by_.term : claim_.term;
  s.primary = fenced() ? fenced_by_.primary : claim_.primary;
  Message m;
  m.topic = topics_.Status(env_.config.gateway_id);
  m.payload = EncodeStatus(s);
  m.retained = true;
  return m;
}

void PrimaryEngine::PublishDiscovery(const std::string& backup) {
  if (!env_.config.homeassistant.discovery) return;
  // A revoked backup's entities are removed, not announced.
  std::vector<Message> configs = IsRevoked(*env_.state, backup)
                                     ? HomeAssistantRemoval(env_.config, backup)
                                     : HomeAssistantDiscovery(env_.config, backup);
  for (Message& m : configs) outbox_.Send(std::move(m));
}

void PrimaryEngine::PublishAllDiscovery() {
  if (!env_.config.homeassistant.discovery) return;
  for (Message& m : HomeAssistantPrimaryDiscovery(env_.config)) outbox_.Send(std::move(m));
  for (const auto& [id, p] : peers_) PublishDiscovery(id);
  for (const std::string& id : RevokedBackups(*env_.state)) {
    if (!peers_.count(id)) PublishDiscovery(id);
  }
}

void PrimaryEngine::Emit(Event e) {
  Message m;
  m.topic = topics_.Events();
  m.payload = EncodeEvent(e);
  outbox_.Send(std::move(m));
}

}  // namespace hubsync
