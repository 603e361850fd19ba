#include "hubsync/pairing.h"

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

}  // namespace hubsync
