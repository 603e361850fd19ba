// Out-of-band key agreement (SPEC 6), the pure part of both sides.
//
// Backup: PairingRequest::Create makes an X25519 key pair and a nonce; its
// hello goes out on the OOB topic; Finish(welcome) checks the echoed nonce and
// derives the key. Primary: AnswerHello derives the same key with its own
// fresh key pair and builds the welcome. Both derive with DerivePairKey; the
// symmetric key itself never travels. The primary keeps the result pending
// until the backup's key confirmation (an Ack of kind kConfirm sealed under
// the new epoch) arrives over the LAN topics; OpenConfirm checks it.
#ifndef HUBSYNC_PAIRING_H_
#define HUBSYNC_PAIRING_H_

#include <string>

#include "hubsync/crypto.h"
#include "hubsync/envelope.h"
#include "hubsync/keystore.h"
#include "hubsync/messages.h"

namespace hubsync {

class PairingRequest {
 public:
  static Result<PairingRequest> Create(const std::string& home, const std::string& backup);
  const PairHello& hello() const { return hello_; }
  // The key for the epoch the primary chose, or Rejected (wrong nonce,
  // backup or key).
  Result<KeyEntry> Finish(const PairWelcome& w) const;

 private:
  std::string home_;
  X25519KeyPair kp_;
  PairHello hello_;
};

struct PairingOffer {
  KeyEntry entry;
  PairWelcome welcome;
};
Result<PairingOffer> AnswerHello(const PairHello& h, const std::string& home,
                                 const std::string& primary, uint32_t epoch);

// Opens a key confirmation sealed with `key`; returns its envelope header
// (for the replay counter) or Rejected/Corruption.
Result<EnvelopeHeader> OpenConfirm(const KeyEntry& key, const std::string& home,
                                   const std::string& backup, std::string_view msg);

}  // namespace hubsync

#endif  // HUBSYNC_PAIRING_H_
