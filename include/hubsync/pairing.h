// Out-of-band key agreement (SPEC 6, 11), the pure part of both sides.
//
// Backup: PairingRequest::Create makes an X25519 key pair and a nonce; its
// hello goes out on the OOB topic; Finish(welcome) checks the echoed nonce and
// derives the key. Answering hub: AnswerHello derives the same key with its
// own fresh key pair and builds the welcome. Both derive with DerivePairKey;
// the symmetric key itself never travels.
//
// The answering hub is the primary, or a standby: a backup that would serve
// the hello's backup if promoted (it lists it in `backups`). Both keep their
// offer pending (PairingDesk) until the backup's key confirmation (an Ack of
// kind kConfirm sealed under the new epoch, naming them) arrives over the LAN
// topics. The backup (PairingRound) adopts a key only when its maker proves
// it holds it over the LAN: the primary with a request or delta, a standby
// with a key proof (a request envelope carrying a kConfirm ack).
#ifndef HUBSYNC_PAIRING_H_
#define HUBSYNC_PAIRING_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// The answering side, shared by a primary and a standby: the offers made
// for hellos and the confirmation that stores one. Whether a backup may pair
// at all is the caller's decision. Thread rule: the engine's thread.
class PairingDesk {
 public:
  static constexpr size_t kMaxPendingPairings = 16;  // backups with offers outstanding
  static constexpr size_t kMaxOffersPerBackup = 4;
  static constexpr int64_t kOfferMs = 120000;        // an offer not confirmed by then expires

  // `self` answers as primary, or (`standby`) as a hub that would serve.
  PairingDesk(StateStore* state, std::string home, std::string self, bool standby)
      : state_(state), keys_(state), home_(std::move(home)), self_(std::move(self)),
        standby_(standby) {}

  struct Welcome {
    std::string payload;  // for oob/<backup>/welcome; empty: nothing to send
    uint32_t epoch = 0;
    bool repeated = false;  // the same hello again: the same welcome
  };
  // The welcome for a hello, always for the epoch after the newest stored
  // for its backup. The same hello again gets the same welcome (the backup
  // repeats it until one arrives), or none once its key is confirmed (the
  // backup may go on saying it for its primary's sake); another hello for
  // the same backup adds an offer beside the others (anyone on the OOB
  // listener can send one, and it must not break a pairing in progress).
  // Rejected when too many pairings are in progress.
  Result<Welcome> OnHello(const PairHello& h, int64_t now_ms);
  // An ack on `backup`'s ack topic. NotFound: not a confirmation for us
  // (no offer pending for its epoch, or it names another hub): handle it as
  // any ack. Ok: the key is stored and its epoch returned. Any other error:
  // a confirmation that failed (it was ours; nothing stored).
  Result<uint32_t> OnConfirm(const std::string& backup, std::string_view msg, int64_t now_ms);
  // Whether an offer for `backup` waits for its confirmation.
  bool Pending(const std::string& backup, int64_t now_ms) const;

 private:
  struct Offer {
    KeyEntry entry;
    int64_t expires_ms;
    std::string hello_pub, hello_nonce;  // the hello this offer answers
    std::string welcome;                 // the offer as sent
    bool confirmed = false;              // its key is stored: kept to know the hello
  };
  void Expire(int64_t now_ms);

  StateStore* state_;
  KeyStore keys_;
  std::string home_, self_;
  bool standby_;
  std::map<std::string, std::vector<Offer>> offers_;  // by backup
};

// The backup's side of one round of pairing: one hello, answered by its
// primary and by each standby that lists it; each welcome gives a candidate
// key, confirmed over the LAN and adopted (stored) when its maker proves it
// holds it. The round ends kLingerMs after its first adoption once no
// candidate waits (other hubs' welcomes come over other bridges), or when
// its candidates expire; a round begun without a key from its primary goes
// on (saying hello) until it has one. Thread rule: one thread.
class PairingRound {
 public:
  static constexpr size_t kMaxCandidates = 4;
  static constexpr int64_t kLingerMs = 3000;
  static constexpr int64_t kCandidateMs = 30000;

  static Result<PairingRound> Create(StateStore* state, const std::string& home,
                                     const std::string& self);
  const PairHello& hello() const { return request_.hello(); }
  // Whether the hello is still worth repeating: until a first key is adopted
  // (every hub that heard it answers at once), and, in a round begun with no
  // key from our primary, until one is.
  bool saying_hello() const;
  // Limits for the candidates' channels (the engine's config).
  void set_limits(size_t max_plain, bool compress) {
    max_plain_ = max_plain;
    compress_ = compress;
  }

  struct Confirmation {
    std::string maker;
    bool standby = false;
    uint32_t epoch = 0;
    std::string sealed;  // for our ack topic
  };
  // A welcome (decoded from our welcome topic), for the next epoch of the
  // record its key goes to: <self>.from-<maker> for a standby, and for a
  // primary we already hold such a key with (a promoted standby); else the
  // pairing record <self>. Ok(nullopt): nothing to do
  // (the same welcome again, or its maker already proved a key in this
  // round). Rejected: refused (not the next epoch of that maker's record,
  // wrong nonce); other errors: ours (the key could not be used).
  Result<std::optional<Confirmation>> OnWelcome(const PairWelcome& w, uint64_t term,
                                                int64_t now_ms);
  struct Adoption {
    std::string maker;
    bool standby = false;
    std::string record;  // where the key is stored: us, or us.from-<maker>
    KeyEntry key;
    Opened opened;  // the proof (a standby's carries nothing to act on)
  };
  // A message on our request or delta topic: if a candidate's maker sealed
  // it as its proof (a primary: a request or delta; a standby: a key proof),
  // the key is stored under its record (one stored in the pairing record
  // replaces the key the same hub made for us by keygen, if any) and
  // returned. Ok(nullopt): no
  // candidate opens it. An error: the key could not be stored.
  Result<std::optional<Adoption>> TryProof(std::string_view msg, int64_t now_ms);
  // Adopted at least one key and waits for nothing more.
  bool Done(int64_t now_ms) const;
  // "hub-p:2 hub-b1:1": what this round adopted, maker and epoch.
  std::string Summary() const;
  const std::vector<std::pair<std::string, uint32_t>>& adopted() const { return adopted_; }

 private:
  struct Candidate {
    std::string maker, record;
    bool standby = false;
    KeyEntry key;
    int64_t expires_ms = 0;
    std::unique_ptr<SecureChannel> channel;  // over this key alone
  };
  PairingRound(StateStore* state, std::string home, std::string self, PairingRequest request)
      : state_(state), keys_(state), home_(std::move(home)), self_(std::move(self)),
        request_(std::move(request)), need_primary_(!keys_.Load(self_).ok()) {}
  bool AdoptedFrom(const std::string& maker) const;

  StateStore* state_;
  KeyStore keys_;
  std::string home_, self_;
  PairingRequest request_;
  bool need_primary_;  // began with no key from our primary, and has none yet
  size_t max_plain_ = 1 << 20;
  bool compress_ = false;
  std::vector<Candidate> candidates_;
  std::vector<std::pair<std::string, uint32_t>> adopted_;
  int64_t last_adoption_ms_ = 0;
};

// A standby's key proof (see above): sealed under the new key by the
// standby, on the backup's request topic.
Result<std::string> SealKeyProof(SecureChannel* channel);
bool IsKeyProof(const Opened& o);

}  // namespace hubsync

#endif  // HUBSYNC_PAIRING_H_
