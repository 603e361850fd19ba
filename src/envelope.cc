#include "hubsync/envelope.h"

#include "hubsync/compress.h"
#include "hubsync/config.h"

namespace hubsync {
namespace {

void Put32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void Put64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t Get(std::string_view s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

void MakeNonce(const EnvelopeHeader& h, uint8_t out[kNonceBytes]) {
  out[0] = SentByPrimary(h.kind) ? 1 : 2;
  out[1] = out[2] = out[3] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<uint8_t>(h.counter >> (56 - 8 * i));
}

}  // namespace

std::string EncodeEnvelopeHeader(const EnvelopeHeader& h) {
  std::string s;
  s.reserve(kEnvelopeHeaderBytes + h.primary.size());
  s.push_back('H');
  s.push_back('S');
  s.push_back(static_cast<char>(kProtocolVersion));
  s.push_back(static_cast<char>(h.kind));
  s.push_back(static_cast<char>((h.last ? 1 : 0) | (h.compressed ? 2 : 0)));
  Put32(&s, h.epoch);
  Put64(&s, h.session);
  Put64(&s, h.counter);
  Put64(&s, h.transfer);
  Put32(&s, h.chunk);
  Put64(&s, h.term);
  s.push_back(static_cast<char>(h.primary.size()));
  s += h.primary;
  return s;
}

Result<EnvelopeHeader> DecodeEnvelopeHeader(std::string_view msg) {
  if (msg.size() < kEnvelopeHeaderBytes + kTagBytes) return Status::Corruption("message too short");
  if (msg[0] != 'H' || msg[1] != 'S') return Status::Corruption("not a hubsync envelope");
  if (static_cast<uint8_t>(msg[2]) != kProtocolVersion) {
    return Status::Rejected("unsupported protocol version");
  }
  EnvelopeHeader h;
  uint8_t kind = static_cast<uint8_t>(msg[3]);
  if (kind < 1 || kind > 4) return Status::Corruption("unknown message kind");
  h.kind = static_cast<MsgKind>(kind);
  uint8_t flags = static_cast<uint8_t>(msg[4]);
  if (flags & ~3u) return Status::Corruption("unknown flags");
  h.last = flags & 1;
  h.compressed = flags & 2;
  h.epoch = static_cast<uint32_t>(Get(msg, 5, 4));
  h.session = Get(msg, 9, 8);
  h.counter = Get(msg, 17, 8);
  h.transfer = Get(msg, 25, 8);
  h.chunk = static_cast<uint32_t>(Get(msg, 33, 4));
  h.term = Get(msg, 37, 8);
  size_t id_bytes = static_cast<uint8_t>(msg[45]);
  if (id_bytes == 0 || id_bytes > kMaxEnvelopeIdBytes) return Status::Corruption("bad primary id");
  if (msg.size() < kEnvelopeHeaderBytes + id_bytes + kTagBytes) {
    return Status::Corruption("message too short");
  }
  h.primary.assign(msg.substr(kEnvelopeHeaderBytes, id_bytes));
  if (!IsValidId(h.primary)) return Status::Corruption("bad primary id");
  h.size = kEnvelopeHeaderBytes + id_bytes;
  return h;
}

std::string EnvelopeAad(std::string_view header_bytes, const std::string& home,
                        const std::string& backup) {
  std::string ad(header_bytes);
  ad.push_back(static_cast<char>(home.size()));
  ad += home;
  ad.push_back(static_cast<char>(backup.size()));
  ad += backup;
  return ad;
}

Status SealEnvelope(AesGcm& aead, const std::string& home, const std::string& backup,
                    const EnvelopeHeader& h, std::string_view plain, std::string* out) {
  std::string header = EncodeEnvelopeHeader(h);
  uint8_t nonce[kNonceBytes];
  MakeNonce(h, nonce);
  out->clear();
  out->reserve(header.size() + plain.size() + kTagBytes);
  *out = header;
  return aead.Seal(nonce, EnvelopeAad(header, home, backup), plain, out);
}

Key SessionKey(const Key& key, uint64_t session) {
  std::string salt;
  Put64(&salt, session);
  return HkdfSha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), salt,
                    "hubsync v1 message key");
}

Status OpenEnvelopeUnder(const Key& key, const std::string& home, const std::string& backup,
                         std::string_view msg, EnvelopeHeader* h, std::string* plain) {
  auto hdr = DecodeEnvelopeHeader(msg);
  if (!hdr.ok()) return hdr.status();
  AesGcm aead(SessionKey(key, hdr->session));
  return OpenEnvelope(aead, home, backup, msg, h, plain);
}

Status OpenEnvelope(AesGcm& aead, const std::string& home, const std::string& backup,
                    std::string_view msg, EnvelopeHeader* h, std::string* plain) {
  auto hdr = DecodeEnvelopeHeader(msg);
  if (!hdr.ok()) return hdr.status();
  *h = *hdr;
  uint8_t nonce[kNonceBytes];
  MakeNonce(*h, nonce);
  std::string_view header = msg.substr(0, h->size);
  return aead.Open(nonce, EnvelopeAad(header, home, backup), msg.substr(h->size), plain);
}

Result<std::unique_ptr<SecureChannel>> SecureChannel::Create(StateStore* store,
                                                             const std::string& home,
                                                             const std::string& backup,
                                                             bool is_primary,
                                                             const std::string& record) {
  auto entries = KeyStore(store).Load(record.empty() ? backup : record);
  if (!entries.ok()) return entries.status();
  auto ch = CreateFrom(*entries, store, home, backup, is_primary, record);
  if (ch.ok()) (*ch)->retire_in_store_ = true;
  return ch;
}

Result<std::unique_ptr<SecureChannel>> SecureChannel::CreateFrom(
    const std::vector<KeyEntry>& entries, StateStore* store, const std::string& home,
    const std::string& backup, bool is_primary, const std::string& record_name) {
  if (entries.empty()) return Status::NotFound("no key");
  std::unique_ptr<SecureChannel> ch(new SecureChannel);
  const std::string& record = record_name.empty() ? backup : record_name;
  ch->home_ = home;
  ch->backup_ = backup;
  ch->record_ = record;
  ch->is_primary_ = is_primary;
  ch->store_ = store;
  for (const KeyEntry& e : entries) {
    EpochState st;
    st.key = e.key;
    auto rx = RxCounter::Open(store, KeyStore::RxName(record, e.epoch));
    if (!rx.ok()) return rx.status();
    st.rx = std::make_unique<RxCounter>(std::move(rx).value());
    ch->epochs_[e.epoch] = std::move(st);
    ch->current_epoch_ = e.epoch;
  }
  auto tx = TxCounter::Open(store, KeyStore::TxName(record, ch->current_epoch_));
  if (!tx.ok()) return tx.status();
  ch->tx_ = std::make_unique<TxCounter>(std::move(tx).value());
  uint8_t session[8];
  HUBSYNC_RETURN_IF_ERROR(RandomBytes(session, sizeof session));
  for (uint8_t b : session) ch->tx_session_ = ch->tx_session_ << 8 | b;
  ch->tx_aead_ = std::make_unique<AesGcm>(
      SessionKey(ch->epochs_[ch->current_epoch_].key, ch->tx_session_));
  return ch;
}

PackedChunk Pack(std::string_view plain, bool compress, bool last) {
  PackedChunk p;
  p.last = last;
  p.compressed = compress && Compress(plain, &p.bytes);
  if (!p.compressed) p.bytes.assign(plain);
  return p;
}

Result<std::string> SecureChannel::Seal(MsgKind kind, uint64_t transfer, uint32_t chunk,
                                        bool last, std::string_view plain) {
  std::string packed;
  bool compressed = compress_ && Compress(plain, &packed);
  return SealBytes(kind, transfer, chunk, last, compressed, compressed ? packed : plain);
}

Result<std::string> SecureChannel::SealPacked(MsgKind kind, uint64_t transfer, uint32_t chunk,
                                              const PackedChunk& packed) {
  return SealBytes(kind, transfer, chunk, packed.last, packed.compressed, packed.bytes);
}

Result<std::string> SecureChannel::SealBytes(MsgKind kind, uint64_t transfer, uint32_t chunk,
                                             bool last, bool compressed, std::string_view bytes) {
  if (SentByPrimary(kind) != is_primary_) return Status::InvalidArgument("wrong direction");
  auto counter = tx_->Next();
  if (!counter.ok()) return counter.status();
  EnvelopeHeader h;
  h.kind = kind;
  h.last = last;
  h.compressed = compressed;
  h.epoch = current_epoch_;
  h.session = tx_session_;
  h.counter = *counter;
  h.transfer = transfer;
  h.chunk = chunk;
  h.term = term_;
  h.primary = primary_;
  if (primary_.empty() || primary_.size() > kMaxEnvelopeIdBytes) {
    return Status::InvalidArgument("no primary to name in the envelope");
  }
  std::string out;
  HUBSYNC_RETURN_IF_ERROR(SealEnvelope(*tx_aead_, home_, backup_, h, bytes, &out));
  return out;
}

Result<Opened> SecureChannel::Open(std::string_view msg) {
  auto hdr = DecodeEnvelopeHeader(msg);
  if (!hdr.ok()) return hdr.status();
  if (SentByPrimary(hdr->kind) == is_primary_) {
    return Status::Rejected("message kind not accepted in this direction");
  }
  if (is_primary_ && hdr->primary != primary_) return Status::Rejected("for another primary");
  auto it = epochs_.find(hdr->epoch);
  if (it == epochs_.end()) return Status::Rejected("unknown key epoch");
  EpochState& st = it->second;
  if (!st.rx->Fresh(hdr->counter)) return Status::Rejected("replayed message");
  auto known = st.peer_sessions.find(hdr->session);
  std::unique_ptr<AesGcm> fresh;
  AesGcm* aead = nullptr;
  if (known != st.peer_sessions.end()) {
    aead = known->second.get();
  } else {
    fresh = std::make_unique<AesGcm>(SessionKey(st.key, hdr->session));
    aead = fresh.get();
  }
  Opened o;
  HUBSYNC_RETURN_IF_ERROR(OpenEnvelope(*aead, home_, backup_, msg, &o.header, &o.plain));
  if (o.header.compressed) {
    // Authentic, so only our peer can have made it; still bounded.
    auto plain = Decompress(o.plain, max_plain_);
    if (!plain.ok()) return plain.status();
    o.plain = std::move(plain).value();
  }
  HUBSYNC_RETURN_IF_ERROR(st.rx->Accept(o.header.counter));
  if (fresh) {  // a session proven by a message that opened
    if (st.peer_sessions.size() >= kMaxPeerSessions) st.peer_sessions.erase(st.peer_sessions.begin());
    st.peer_sessions[hdr->session] = std::move(fresh);
  }
  if (hdr->epoch == current_epoch_ && epochs_.begin()->first != current_epoch_) {
    // The peer has moved to the newest epoch: nothing under an older one is
    // in flight any more.
    epochs_.erase(epochs_.begin(), epochs_.find(current_epoch_));
    if (retire_in_store_) KeyStore(store_).Retire(record_, current_epoch_);
  }
  return o;
}

Status SecureChannel::SyncCounters() {
  for (auto& [epoch, st] : epochs_) HUBSYNC_RETURN_IF_ERROR(st.rx->Sync());
  return Status::Ok();
}

}  // namespace hubsync
