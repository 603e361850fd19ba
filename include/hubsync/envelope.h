// The encrypted envelope of every message on manifest/res, delta and ack
// (SPEC 6), and the SecureChannel that seals and opens them for one
// primary<->backup pair.
//
// Wire layout (big-endian), 46 fixed header bytes, the primary's id, then
// ciphertext||16-byte tag:
//   'H' 'S' version(1) kind(1) flags(1: bit0 last, bit1 zstd) epoch(4) session(8)
//   counter(8) transfer(8) chunk(4) term(8) len(primary)(1) primary
// Associated data = the whole header || len(home)(1) home ||
//   len(backup)(1) backup, so every header field plus home and backup id is
//   authenticated. Nonce = direction(1) 0 0 0 counter(8); the direction byte
//   keeps the two sides' counters apart under the one shared key.
//
// Term and primary (SPEC 11): every message names the primary of the pair it
// belongs to and a term: the primary's own term on requests and deltas, the
// highest term the backup has seen on its answers. Both are sealed, so a
// primary cannot be made to believe a term no backup of its own sent.
//
// Message key: every process that seals picks a random 64-bit session when
// it opens its channel and seals under SessionKey(key, session); the session
// travels in the header. Counters are persisted before use, so one process
// never repeats a nonce; the session keeps (key, nonce) unique even when a
// state_dir restored from a backup or cloned to another hub hands the same
// counters out again (it seals under another session's key).
#ifndef HUBSYNC_ENVELOPE_H_
#define HUBSYNC_ENVELOPE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/keystore.h"
#include "hubsync/status.h"

namespace hubsync {

// kRequest: the primary's manifest request, sealed like a delta so a backup
// acts on nothing its primary did not send (SPEC 6).
enum class MsgKind : uint8_t { kManifestRes = 1, kDelta = 2, kAck = 3, kRequest = 4 };

inline constexpr uint8_t kProtocolVersion = 3;  // 2: the session field; 3: term, primary
inline constexpr size_t kEnvelopeHeaderBytes = 46;  // without the primary's id
inline constexpr size_t kMaxEnvelopeIdBytes = 64;   // IsValidId's limit
// The most an envelope adds to its plaintext (sizes chunks to fit a message).
inline constexpr size_t kEnvelopeOverhead = kEnvelopeHeaderBytes + kMaxEnvelopeIdBytes + kTagBytes;

struct EnvelopeHeader {
  MsgKind kind = MsgKind::kDelta;
  bool last = false;
  bool compressed = false;  // the plaintext is a zstd frame (compress.h)
  uint32_t epoch = 0;
  uint64_t session = 0;
  uint64_t counter = 0;
  uint64_t transfer = 0;
  uint32_t chunk = 0;
  uint64_t term = 0;
  std::string primary;  // the pair's primary (empty on a v3 header is refused)
  size_t size = 0;      // bytes the header took (decoding sets it)
};

// True for kinds the primary sends (request, delta), false for the backup's.
inline bool SentByPrimary(MsgKind k) { return k == MsgKind::kDelta || k == MsgKind::kRequest; }

std::string EncodeEnvelopeHeader(const EnvelopeHeader& h);
Result<EnvelopeHeader> DecodeEnvelopeHeader(std::string_view msg);
std::string EnvelopeAad(std::string_view header_bytes, const std::string& home,
                        const std::string& backup);

// HKDF-SHA256(key, salt = session (8 bytes, big-endian), "hubsync v1 message key").
Key SessionKey(const Key& key, uint64_t session);

// `aead` is keyed with SessionKey(key, h.session).
Status SealEnvelope(AesGcm& aead, const std::string& home, const std::string& backup,
                    const EnvelopeHeader& h, std::string_view plain, std::string* out);
// Verifies the tag over header (with term and primary), home and backup;
// Corruption if it fails.
// `aead` must be keyed with the session key of the header's session.
Status OpenEnvelope(AesGcm& aead, const std::string& home, const std::string& backup,
                    std::string_view msg, EnvelopeHeader* h, std::string* plain);
// The same under a base key: derives the header's session key first.
Status OpenEnvelopeUnder(const Key& key, const std::string& home, const std::string& backup,
                         std::string_view msg, EnvelopeHeader* h, std::string* plain);

// What goes into an envelope: the plaintext, or its zstd frame when that is
// smaller and compression is on (compress.h).
struct PackedChunk {
  std::string bytes;
  bool compressed = false;
  bool last = false;
};
PackedChunk Pack(std::string_view plain, bool compress, bool last = false);

struct Opened {
  EnvelopeHeader header;
  std::string plain;
};

// Seals and opens messages for one backup, with keys from a KeyStore and
// persisted counters. Sealing uses the newest epoch; opening accepts any
// epoch still in the store until the peer has sent a message under the newest
// one: then the older epochs are retired (here and, for a channel made from
// the store, in the store), so a rotated-out key opens nothing any more. Opening refuses (Rejected) an unknown epoch, a
// kind this side does not receive, or a counter not above the last accepted
// one for that epoch; a failed tag is Corruption. A refused message leaves
// the counters untouched.
//
// Thread rule: one thread (the engine's).
class SecureChannel {
 public:
  // Keys and counters from `store`, which must outlive the channel, under
  // the record `record` (KeyStore; default: the backup's id).
  static Result<std::unique_ptr<SecureChannel>> Create(StateStore* store,
                                                       const std::string& home,
                                                       const std::string& backup,
                                                       bool is_primary,
                                                       const std::string& record = "");
  // A channel over keys not (yet) in the store, e.g. a key a backup has
  // derived but not adopted; its counters are the store's own records for
  // those epochs, so adopting the key later continues them. `keys` oldest
  // first, not empty. Retiring an epoch leaves the store's keys alone.
  static Result<std::unique_ptr<SecureChannel>> CreateFrom(const std::vector<KeyEntry>& keys,
                                                           StateStore* store,
                                                           const std::string& home,
                                                           const std::string& backup,
                                                           bool is_primary,
                                                           const std::string& record = "");
  // The term and primary id sealed into what this side sends: on the
  // primary side its own; on a backup's, the primary it follows (or answers)
  // and the highest term it has seen. Sealing without a primary fails.
  void set_term(uint64_t term) { term_ = term; }
  void set_primary(const std::string& id) { primary_ = id; }
  const std::string& primary() const { return primary_; }
  // Compresses `plain` first when that saves space and compression is on
  // (the header says so).
  Result<std::string> Seal(MsgKind kind, uint64_t transfer, uint32_t chunk, bool last,
                           std::string_view plain);
  // Seals what Pack made (compressed once for several channels).
  Result<std::string> SealPacked(MsgKind kind, uint64_t transfer, uint32_t chunk,
                                 const PackedChunk& packed);
  // Opened.plain is decompressed; a compressed message that is malformed or
  // would exceed max_plain() is Corruption (counters untouched). On the
  // primary side a message naming another primary is Rejected unopened (it
  // is for another primary of the same backup); a backup's channel opens a
  // message from any primary that holds its key (the engine checks terms).
  Result<Opened> Open(std::string_view msg);
  // The largest plaintext Open decompresses to: the engines set their
  // max_message_bytes (nothing larger could have been sent uncompressed).
  void set_max_plain(size_t n) { max_plain_ = n; }
  size_t max_plain() const { return max_plain_; }
  // Whether Seal may compress (Config::compress); Open inflates either way.
  void set_compress(bool on) { compress_ = on; }
  // Makes the receive counters durable; call before acting on a transfer.
  Status SyncCounters();
  // Reserves send counters on disk now (TxCounter::Reserve), so the first
  // Seal does not wait on an fsync.
  Status ReserveCounters() { return tx_->Reserve(); }
  uint32_t epoch() const { return current_epoch_; }

 private:
  // The peer's sessions an epoch has opened messages under; a few are kept
  // (the peer restarts now and then), a new one is derived on demand and
  // kept only once a message under it has opened.
  static constexpr size_t kMaxPeerSessions = 4;
  struct EpochState {
    Key key{};
    std::unique_ptr<RxCounter> rx;
    std::map<uint64_t, std::unique_ptr<AesGcm>> peer_sessions;
  };
  SecureChannel() = default;
  Result<std::string> SealBytes(MsgKind kind, uint64_t transfer, uint32_t chunk, bool last,
                                bool compressed, std::string_view bytes);
  std::string home_, backup_, record_;
  StateStore* store_ = nullptr;
  bool retire_in_store_ = false;  // made by Create: the store's keys are this channel's
  bool is_primary_ = false;
  uint32_t current_epoch_ = 0;
  std::map<uint32_t, EpochState> epochs_;
  uint64_t tx_session_ = 0;
  std::unique_ptr<AesGcm> tx_aead_;  // SessionKey(current epoch's key, tx_session_)
  std::unique_ptr<TxCounter> tx_;
  size_t max_plain_ = 1 << 20;
  bool compress_ = true;
  uint64_t term_ = 0;
  std::string primary_;
};

}  // namespace hubsync

#endif  // HUBSYNC_ENVELOPE_H_
