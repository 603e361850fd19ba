// The primary's side of pairing (SPEC 6): hellos on the out-of-band topic,
// welcomes, and the confirmation over the LAN that installs a key.
#include <algorithm>

#include "hubsync/engine.h"
#include "sync_session.h"

namespace hubsync {

bool PrimaryEngine::MayPair(const std::string& b, std::string* why) {
  if (PairingWindowOpen(*env_.state, env_.clock->NowMs(), env_.clock->BootId())) return true;
  bool listed = std::find(env_.config.backups.begin(), env_.config.backups.end(), b) !=
                env_.config.backups.end();
  if (!listed) {
    *why = "not in this primary's backups and no pairing window is open";
    return false;
  }
  if (IsRevoked(*env_.state, b)) {
    *why = "revoked (hubsync unpair); open a pairing window to admit it again";
    return false;
  }
  return true;
}

void PrimaryEngine::OnOobConnection(const LinkEvent& e) {
  oob_link_.Report(e);
  if (e.up()) env_.oob->Subscribe(topics_.prefix + "oob/+/hello", 1);
}

void PrimaryEngine::OnOobMessage(const Message& m) {
  auto hello = DecodePairHello(m.payload);
  if (!hello.ok() || m.topic != topics_.Hello(hello->backup)) {
    std::string why = hello.ok() ? "hello names another backup than its topic"
                                 : hello.status().message();
    Log(LogLevel::kWarn, "refused a pairing hello: " + why);
    Emit(RejectedEvent(env_.config.gateway_id, "hello", why, m.payload.size()));
    return;
  }
  const std::string& b = hello->backup;
  std::string why;
  if (!MayPair(b, &why)) {
    Log(LogLevel::kWarn, "refused pairing with " + b + ": " + why);
    Emit(Event{"pairing", env_.config.gateway_id, {}, {{"backup", b}, {"result", "refused"},
                                                       {"reason", why}}});
    return;
  }
  // Offers not confirmed in time expire; while a window is open anyone may
  // say hello, so at most kMaxPendingPairings offers are outstanding.
  int64_t now_ms = env_.clock->NowMs();
  for (auto it = pending_keys_.begin(); it != pending_keys_.end();) {
    auto& offers = it->second;
    offers.erase(std::remove_if(offers.begin(), offers.end(),
                                [&](const PendingKey& k) { return now_ms > k.expires_ms; }),
                 offers.end());
    it = offers.empty() ? pending_keys_.erase(it) : std::next(it);
  }
  if (!pending_keys_.count(b) && pending_keys_.size() >= kMaxPendingPairings) {
    std::string why = "too many pairings in progress (" + std::to_string(kMaxPendingPairings) + ")";
    Log(LogLevel::kWarn, "refused pairing with " + b + ": " + why);
    Emit(Event{"pairing", env_.config.gateway_id, {}, {{"backup", b}, {"result", "refused"},
                                                       {"reason", why}}});
    return;
  }
  uint32_t epoch = 1;
  auto keys = keys_.Load(b);
  if (keys.ok()) epoch = keys->back().epoch + 1;
  // The offer is always for the next epoch (the backup accepts no other).
  // The same hello again (the backup repeats it until a welcome arrives)
  // gets the same welcome, so a slow link cannot make two offers race.
  // A stray hello for the same backup (anyone on the OOB listener can send
  // one) adds an offer beside the others instead of replacing them, so it
  // cannot break a pairing in progress; the confirmation picks the offer.
  std::vector<PendingKey>& offers = pending_keys_[b];
  for (const PendingKey& k : offers) {
    if (k.hello_pub == hello->pub && k.hello_nonce == hello->nonce) {
      Message again;
      again.topic = topics_.Welcome(b);
      again.payload = k.welcome;
      env_.oob->Publish(again);
      return;
    }
  }
  auto offer = AnswerHello(*hello, env_.config.home, env_.config.gateway_id, epoch);
  if (!offer.ok()) {
    Log(LogLevel::kWarn, "refused pairing with " + b + ": " + offer.status().message());
    return;
  }
  Message w;
  w.topic = topics_.Welcome(b);
  w.payload = EncodePairWelcome(offer->welcome);
  if (offers.size() >= kMaxOffersPerBackup) offers.erase(offers.begin());
  offers.push_back({offer->entry, now_ms + 120000, hello->pub, hello->nonce, w.payload});
  env_.oob->Publish(w);
  Log(LogLevel::kInfo, "pairing with " + b + ": welcome sent for key epoch " +
                           std::to_string(epoch) + ", waiting for its confirmation");
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", epoch}},
             {{"backup", b}, {"result", "offered"}}});
}

bool PrimaryEngine::TryConfirm(const std::string& b, const Message& m) {
  auto it = pending_keys_.find(b);
  if (it == pending_keys_.end()) return false;
  auto hdr = DecodeEnvelopeHeader(m.payload);
  if (!hdr.ok()) return false;
  int64_t now = env_.clock->NowMs();
  const PendingKey* confirmed = nullptr;
  Result<EnvelopeHeader> opened = Status::Rejected("no offer for that epoch");
  for (const PendingKey& k : it->second) {
    if (k.entry.epoch != hdr->epoch || now > k.expires_ms) continue;
    opened = OpenConfirm(k.entry, env_.config.home, b, m.payload);
    if (opened.ok()) {
      confirmed = &k;
      break;
    }
  }
  if (!confirmed) {
    bool any_for_epoch = std::any_of(it->second.begin(), it->second.end(),
                                     [&](const PendingKey& k) { return k.entry.epoch == hdr->epoch; });
    if (!any_for_epoch) return false;  // not a confirmation: an ack under a known key
    Log(LogLevel::kWarn, "key confirmation from " + b + " failed: " + opened.status().message());
    return true;
  }
  // The confirmation's counter is the first accepted under this epoch.
  auto rx = RxCounter::Open(env_.state, KeyStore::RxName(b, confirmed->entry.epoch));
  if (!rx.ok() || !rx->Accept(opened->counter).ok() || !rx->Sync().ok()) return true;
  Status s = keys_.Put(b, confirmed->entry);
  if (!s.ok()) {
    Log(LogLevel::kError, "cannot store the key of " + b + ": " + s.ToString());
    return true;
  }
  uint32_t epoch = confirmed->entry.epoch;
  pending_keys_.erase(it);
  bool by_window = std::find(env_.config.backups.begin(), env_.config.backups.end(), b) ==
                   env_.config.backups.end();
  if (Status admitted = Admit(env_.state, b, by_window); !admitted.ok()) {
    Log(LogLevel::kWarn, "cannot record the admission of " + b + ": " + admitted.ToString());
  }
  SyncSession* session = FindPeer(b);
  if (!session) session = &AddPeer(b);
  session->Paired();
  Log(LogLevel::kInfo, "paired with " + b + " (key epoch " + std::to_string(epoch) + ")");
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", epoch}},
             {{"backup", b}, {"result", "confirmed"}}});
  return true;
}

}  // namespace hubsync
