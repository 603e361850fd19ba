#include "hubsync/pairing.h"

#include <algorithm>

#include "hubsync/wire.h"

namespace hubsync {

Result<PairingRequest> PairingRequest::Create(const std::string& home, const std::string& backup) {
  PairingRequest r;
  auto kp = GenerateX25519();
  if (!kp.ok()) return kp.status();
  r.kp_ = *kp;
  r.home_ = home;
  uint8_t nonce[16];
  HUBSYNC_RETURN_IF_ERROR(RandomBytes(nonce, sizeof nonce));
  r.hello_ = PairHello{backup, ToHex(r.kp_.pub.data(), r.kp_.pub.size()), ToHex(nonce, 16)};
  return r;
}

Result<KeyEntry> PairingRequest::Finish(const PairWelcome& w) const {
  if (w.backup != hello_.backup || w.nonce != hello_.nonce) {
    return Status::Rejected("welcome does not answer our hello");
  }
  X25519Public primary_pub;
  if (!FromHex(w.pub, primary_pub.data(), primary_pub.size())) {
    return Status::Rejected("bad primary public key");
  }
  auto shared = X25519Agree(kp_.secret, primary_pub);
  if (!shared.ok()) return shared.status();
  KeyEntry e;
  e.epoch = w.epoch;
  e.key = DerivePairKey(*shared, kp_.pub, primary_pub, home_, hello_.backup);
  return e;
}

Result<PairingOffer> AnswerHello(const PairHello& h, const std::string& home,
                                 const std::string& primary, uint32_t epoch) {
  X25519Public backup_pub;
  if (!FromHex(h.pub, backup_pub.data(), backup_pub.size())) {
    return Status::Rejected("bad backup public key");
  }
  auto kp = GenerateX25519();
  if (!kp.ok()) return kp.status();
  auto shared = X25519Agree(kp->secret, backup_pub);
  if (!shared.ok()) return shared.status();
  PairingOffer o;
  o.entry.epoch = epoch;
  o.entry.key = DerivePairKey(*shared, backup_pub, kp->pub, home, h.backup);
  o.welcome = PairWelcome{h.backup, primary, ToHex(kp->pub.data(), kp->pub.size()), h.nonce, epoch};
  return o;
}

Result<EnvelopeHeader> OpenConfirm(const KeyEntry& key, const std::string& home,
                                   const std::string& backup, std::string_view msg) {
  EnvelopeHeader h;
  std::string plain;
  HUBSYNC_RETURN_IF_ERROR(OpenEnvelopeUnder(key.key, home, backup, msg, &h, &plain));
  if (h.kind != MsgKind::kAck || h.epoch != key.epoch) return Status::Rejected("not a confirmation");
  auto ack = DecodeAck(plain);
  if (!ack.ok() || ack->kind != Ack::Kind::kConfirm) return Status::Rejected("not a confirmation");
  return h;
}

Result<std::string> SealKeyProof(SecureChannel* channel) {
  Ack proof;
  proof.kind = Ack::Kind::kConfirm;
  return channel->Seal(MsgKind::kRequest, 0, 0, true, EncodeAck(proof));
}

bool IsKeyProof(const Opened& o) {
  if (o.header.kind != MsgKind::kRequest || o.header.transfer != 0) return false;
  auto ack = DecodeAck(o.plain);
  return ack.ok() && ack->kind == Ack::Kind::kConfirm;
}

// --- PairingDesk -------------------------------------------------------------

void PairingDesk::Expire(int64_t now_ms) {
  for (auto it = offers_.begin(); it != offers_.end();) {
    auto& offers = it->second;
    offers.erase(std::remove_if(offers.begin(), offers.end(),
                                [&](const Offer& o) { return now_ms > o.expires_ms; }),
                 offers.end());
    it = offers.empty() ? offers_.erase(it) : std::next(it);
  }
}

Result<PairingDesk::Welcome> PairingDesk::OnHello(const PairHello& h, int64_t now_ms) {
  Expire(now_ms);
  const std::string& b = h.backup;
  if (!offers_.count(b) && offers_.size() >= kMaxPendingPairings) {
    return Status::Rejected("too many pairings in progress (" +
                            std::to_string(kMaxPendingPairings) + ")");
  }
  std::vector<Offer>& offers = offers_[b];
  for (const Offer& o : offers) {
    if (o.hello_pub == h.pub && o.hello_nonce == h.nonce) {
      return Welcome{o.confirmed ? "" : o.welcome, o.entry.epoch, true};
    }
  }
  uint32_t epoch = 1;
  if (auto known = keys_.Load(b); known.ok()) epoch = known->back().epoch + 1;
  auto offer = AnswerHello(h, home_, self_, epoch);
  if (!offer.ok()) {
    if (offers.empty()) offers_.erase(b);
    return offer.status();
  }
  offer->welcome.standby = standby_;
  std::string payload = EncodePairWelcome(offer->welcome);
  if (offers.size() >= kMaxOffersPerBackup) offers.erase(offers.begin());
  offers.push_back({offer->entry, now_ms + kOfferMs, h.pub, h.nonce, payload, false});
  return Welcome{payload, epoch, false};
}

bool PairingDesk::Pending(const std::string& backup, int64_t now_ms) const {
  auto it = offers_.find(backup);
  return it != offers_.end() &&
         std::any_of(it->second.begin(), it->second.end(),
                     [&](const Offer& o) { return !o.confirmed && now_ms <= o.expires_ms; });
}

Result<uint32_t> PairingDesk::OnConfirm(const std::string& b, std::string_view msg,
                                        int64_t now_ms) {
  auto it = offers_.find(b);
  if (it == offers_.end()) return Status::NotFound("no offer");
  auto hdr = DecodeEnvelopeHeader(msg);
  // A confirmation for another hub that answered the same hello (the
  // primary and a standby both do) is not ours to judge.
  if (!hdr.ok() || hdr->primary != self_) return Status::NotFound("not ours");
  Offer* confirmed = nullptr;
  Result<EnvelopeHeader> opened = Status::Rejected("no offer for that epoch");
  bool any_for_epoch = false;
  for (Offer& o : it->second) {
    if (o.confirmed || o.entry.epoch != hdr->epoch || now_ms > o.expires_ms) continue;
    any_for_epoch = true;
    opened = OpenConfirm(o.entry, home_, b, msg);
    if (opened.ok()) {
      confirmed = &o;
      break;
    }
  }
  if (!any_for_epoch) return Status::NotFound("not a confirmation");
  if (!confirmed) return opened.status();
  // The confirmation's counter is the first accepted under this epoch.
  auto rx = RxCounter::Open(state_, KeyStore::RxName(b, confirmed->entry.epoch));
  if (!rx.ok()) return rx.status();
  HUBSYNC_RETURN_IF_ERROR(rx->Accept(opened->counter));
  HUBSYNC_RETURN_IF_ERROR(rx->Sync());
  HUBSYNC_RETURN_IF_ERROR(keys_.Put(b, confirmed->entry));
  // The other offers for it are void (a stray hello's); this one is kept,
  // until it expires, only to recognise its hello.
  uint32_t epoch = confirmed->entry.epoch;
  Offer done = *confirmed;
  done.confirmed = true;
  done.welcome.clear();
  it->second.assign(1, std::move(done));
  return epoch;
}

// --- PairingRound ------------------------------------------------------------

Result<PairingRound> PairingRound::Create(StateStore* state, const std::string& home,
                                          const std::string& self) {
  auto req = PairingRequest::Create(home, self);
  if (!req.ok()) return req.status();
  return PairingRound(state, home, self, std::move(req).value());
}

bool PairingRound::saying_hello() const { return adopted_.empty() || need_primary_; }

bool PairingRound::AdoptedFrom(const std::string& maker) const {
  return std::any_of(adopted_.begin(), adopted_.end(),
                     [&](const auto& a) { return a.first == maker; });
}

Result<std::optional<PairingRound::Confirmation>> PairingRound::OnWelcome(const PairWelcome& w,
                                                                          uint64_t term,
                                                                          int64_t now_ms) {
  if (AdoptedFrom(w.primary)) return std::optional<Confirmation>();
  // The next epoch exactly of the record the key goes to: a welcome for an
  // epoch in use would seal under its counters anew, and a far one would
  // stay "newest" for ever. A standby's key goes to the record it makes
  // (SPEC 11), whose counters are its own. A primary's goes there too when
  // we already hold a key that hub made (it was our standby and has been
  // promoted, or provisioned one by keygen: its epochs continue that
  // record), else to the pairing record.
  auto next_of = [&](const std::string& record) -> uint32_t {
    auto known = keys_.Load(record);
    return known.ok() ? known->back().epoch + 1 : 1;
  };
  std::string made = KeyStore::MadeBy(self_, w.primary);
  std::string record = w.standby || keys_.Load(made).ok() ? made : self_;
  uint32_t next_epoch = next_of(record);
  if (!w.standby && record == made && w.epoch != next_epoch && w.epoch == next_of(self_)) {
    record = self_;  // it offers the pairing record's next epoch: that record
    next_epoch = w.epoch;
  }
  if (w.epoch != next_epoch) {
    return Status::Rejected("welcome from " + w.primary + " for key epoch " +
                            std::to_string(w.epoch) + ", expected " + std::to_string(next_epoch));
  }
  auto key = request_.Finish(w);
  if (!key.ok()) return key.status();
  for (const Candidate& c : candidates_) {
    if (c.key.key == key->key) return std::optional<Confirmation>();  // the same welcome again
  }
  auto ch = SecureChannel::CreateFrom({*key}, state_, home_, self_, false, record);
  if (!ch.ok()) return ch.status();
  (*ch)->set_max_plain(max_plain_);
  (*ch)->set_compress(compress_);
  (*ch)->set_primary(w.primary);
  (*ch)->set_term(term);
  Ack confirm;
  confirm.kind = Ack::Kind::kConfirm;
  auto sealed = (*ch)->Seal(MsgKind::kAck, 0, 0, true, EncodeAck(confirm));
  if (!sealed.ok()) return sealed.status();
  candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                   [&](const Candidate& c) { return now_ms > c.expires_ms; }),
                    candidates_.end());
  if (candidates_.size() >= kMaxCandidates) candidates_.erase(candidates_.begin());
  candidates_.push_back({w.primary, record, w.standby, *key, now_ms + kCandidateMs,
                         std::move(ch).value()});
  return std::optional<Confirmation>(Confirmation{w.primary, w.standby, key->epoch, *sealed});
}

Result<std::optional<PairingRound::Adoption>> PairingRound::TryProof(std::string_view msg,
                                                                     int64_t now_ms) {
  auto hdr = DecodeEnvelopeHeader(msg);
  if (!hdr.ok()) return std::optional<Adoption>();
  for (auto c = candidates_.begin(); c != candidates_.end(); ++c) {
    if (c->key.epoch != hdr->epoch || c->maker != hdr->primary || now_ms > c->expires_ms) {
      continue;
    }
    auto opened = c->channel->Open(msg);
    // A standby proves its key with a key proof and never serves under it
    // yet; the primary proves it by serving.
    if (!opened.ok() || IsKeyProof(*opened) != c->standby) continue;
    HUBSYNC_RETURN_IF_ERROR(keys_.Put(c->record, c->key));
    if (c->record == self_) {
      // Pairing replaces a key the same primary made for us by keygen.
      std::string made = KeyStore::MadeBy(self_, c->maker);
      if (keys_.Load(made).ok()) HUBSYNC_RETURN_IF_ERROR(keys_.Remove(made));
    }
    Adoption a{c->maker, c->standby, c->record, c->key, std::move(opened).value()};
    adopted_.emplace_back(c->maker, c->key.epoch);
    last_adoption_ms_ = now_ms;
    if (!c->standby) need_primary_ = false;
    std::string maker = c->maker;
    candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                     [&](const Candidate& k) { return k.maker == maker; }),
                      candidates_.end());
    return std::optional<Adoption>(std::move(a));
  }
  return std::optional<Adoption>();
}

bool PairingRound::Done(int64_t now_ms) const {
  if (saying_hello()) return false;
  bool waiting = std::any_of(candidates_.begin(), candidates_.end(),
                             [&](const Candidate& c) { return now_ms <= c.expires_ms; });
  return !waiting && now_ms >= last_adoption_ms_ + kLingerMs;
}

std::string PairingRound::Summary() const {
  std::string s;
  for (const auto& [maker, epoch] : adopted_) {
    s += (s.empty() ? "" : " ") + maker + ":" + std::to_string(epoch);
  }
  return s;
}

}  // namespace hubsync
