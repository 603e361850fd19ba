#include "hubsync/envelope.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "hubsync/compress.h"

#include "test_util.h"

namespace hubsync {
namespace {

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KeyEntry e;
    e.epoch = 1;
    ASSERT_TRUE(RandomBytes(e.key.data(), e.key.size()).ok());
    key_ = e;
    ASSERT_TRUE(KeyStore(pstore_.get()).Put("hub-b", e).ok());
    ASSERT_TRUE(KeyStore(bstore_.get()).Put("hub-b", e).ok());
  }
  std::unique_ptr<SecureChannel> Primary() {
    auto c = SecureChannel::Create(pstore_.get(), "home", "hub-b", true);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    (*c)->set_primary("hub-p");
    (*c)->set_term(1);
    return std::move(c).value();
  }
  std::unique_ptr<SecureChannel> Backup() {
    auto c = SecureChannel::Create(bstore_.get(), "home", "hub-b", false);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    (*c)->set_primary("hub-p");
    (*c)->set_term(1);
    return std::move(c).value();
  }
  testing::TempDir primary_, backup_;
  std::unique_ptr<StateStore> pstore_ = NewPosixStateStore(primary_.path());
  std::unique_ptr<StateStore> bstore_ = NewPosixStateStore(backup_.path());
  KeyEntry key_;
};

TEST_F(EnvelopeTest, RoundTripBindsEveryHeaderField) {
  auto p = Primary();
  auto b = Backup();
  auto sealed = p->Seal(MsgKind::kDelta, 42, 7, true, "secret payload");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("secret"), std::string::npos);
  auto opened = b->Open(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->plain, "secret payload");
  EXPECT_EQ(opened->header.term, 1u);
  EXPECT_EQ(opened->header.primary, "hub-p");
  EXPECT_EQ(opened->header.transfer, 42u);
  EXPECT_EQ(opened->header.chunk, 7u);
  EXPECT_TRUE(opened->header.last);
  EXPECT_EQ(opened->header.epoch, 1u);
}

// Issue 10: what compresses is sealed compressed (the flag is in the
// authenticated header); it opens to the same bytes, and a receiver never
// inflates beyond its max_plain (a compromised backup's "bomb" is refused,
// with its counter left unused).
TEST_F(EnvelopeTest, CompressiblePlaintextIsSealedSmallerAndInflatedWithinTheLimit) {
  auto p = Primary();
  auto b = Backup();
  std::string json;
  for (int i = 0; i < 2000; ++i) json += R"({"device":")" + std::to_string(i) + R"(","on":true},)";
  auto sealed = p->Seal(MsgKind::kDelta, 1, 0, false, json);
  ASSERT_TRUE(sealed.ok());
  EXPECT_LT(sealed->size(), json.size() / 4);
  EXPECT_TRUE(DecodeEnvelopeHeader(*sealed)->compressed);
  auto opened = b->Open(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->plain, json);

  auto noise = p->Seal(MsgKind::kDelta, 1, 1, false, testing::RandomBytesString(5000, 1));
  ASSERT_TRUE(noise.ok());
  EXPECT_FALSE(DecodeEnvelopeHeader(*noise)->compressed) << "nothing to gain: sealed as is";
  EXPECT_TRUE(b->Open(*noise).ok());

  auto bomb = p->Seal(MsgKind::kDelta, 1, 2, false, std::string(4 << 20, 'z'));
  ASSERT_TRUE(bomb.ok());
  EXPECT_LT(bomb->size(), 4096u);
  b->set_max_plain(1 << 20);
  auto refused = b->Open(*bomb);
  EXPECT_EQ(refused.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(refused.status().message(), "compressed payload larger than the limit");
  auto next = p->Seal(MsgKind::kDelta, 1, 3, true, "after");
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(b->Open(*next).ok());

  p->set_compress(false);  // config "compress": false: sizes say nothing of content
  auto plain = p->Seal(MsgKind::kDelta, 2, 0, true, json);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(DecodeEnvelopeHeader(*plain)->compressed);
  EXPECT_EQ(plain->size(), json.size() + kEnvelopeHeaderBytes + std::string("hub-p").size() + kTagBytes);
  EXPECT_LE(plain->size(), json.size() + kEnvelopeOverhead);
  EXPECT_EQ(b->Open(*plain)->plain, json);
}

TEST(CompressTest, OnlyOneWholeFrameWithinTheLimitDecompresses) {
  std::string text(100000, 'a');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = static_cast<char>('a' + i % 26);
  std::string packed;
  ASSERT_TRUE(Compress(text, &packed));
  EXPECT_FALSE(Compress("short", &packed)) << "too small to gain";
  ASSERT_TRUE(Compress(text, &packed));
  EXPECT_EQ(*Decompress(packed, text.size()), text);
  EXPECT_FALSE(Decompress(packed, text.size() - 1).ok()) << "one byte over the limit";
  EXPECT_FALSE(Decompress(packed + "x", text.size()).ok()) << "trailing bytes";
  EXPECT_FALSE(Decompress(packed.substr(0, packed.size() - 1), text.size()).ok()) << "truncated";
  std::string twice = packed + packed;
  EXPECT_FALSE(Decompress(twice, 2 * text.size()).ok()) << "two frames";
  std::string damaged = packed;
  damaged[damaged.size() / 2] ^= 0x55;
  auto d = Decompress(damaged, text.size());
  EXPECT_TRUE(!d.ok() || *d != text);  // zstd's own checksum is off: the seal's tag guards
  EXPECT_FALSE(Decompress(testing::RandomBytesString(1000, 2), 1 << 20).ok());
  EXPECT_FALSE(Decompress("", 100).ok());
}

TEST_F(EnvelopeTest, EveryFlippedByteIsRefused) {
  auto p = Primary();
  auto sealed = p->Seal(MsgKind::kDelta, 42, 0, false, "payload");
  ASSERT_TRUE(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string bad = *sealed;
    bad[i] ^= 0x01;
    auto b = Backup();
    auto r = b->Open(bad);
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  // After all that, the genuine message still opens: refusals did not
  // advance the counter.
  EXPECT_TRUE(Backup()->Open(*sealed).ok());
}

TEST_F(EnvelopeTest, TruncatedAndEmptyAreRefused) {
  auto sealed = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "payload");
  auto b = Backup();
  for (size_t n : {size_t{0}, size_t{5}, kEnvelopeHeaderBytes, sealed->size() - 1}) {
    EXPECT_FALSE(b->Open(sealed->substr(0, n)).ok()) << n;
  }
}

TEST_F(EnvelopeTest, ReplayIsRefusedEvenAfterRestart) {
  auto sealed = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "x");
  {
    auto b = Backup();
    ASSERT_TRUE(b->Open(*sealed).ok());
    auto again = b->Open(*sealed);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), Status::Code::kRejected);
    ASSERT_TRUE(b->SyncCounters().ok());
  }
  auto restarted = Backup();
  EXPECT_EQ(restarted->Open(*sealed).status().code(), Status::Code::kRejected);
  // A replay is refused as one before any decryption: the same old counter
  // with a damaged tag is reported as a replay, not as a forgery.
  std::string damaged = *sealed;
  damaged.back() ^= 1;
  EXPECT_EQ(restarted->Open(damaged).status().message(), "replayed message");
}

TEST_F(EnvelopeTest, SenderNeverReusesACounterAcrossRestarts) {
  uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto p = Primary();
    for (int i = 0; i < 3; ++i) {
      auto s = p->Seal(MsgKind::kDelta, 1, 0, true, "x");
      auto h = DecodeEnvelopeHeader(*s);
      ASSERT_TRUE(h.ok());
      EXPECT_GT(h->counter, last);
      last = h->counter;
    }
  }
}

TEST_F(EnvelopeTest, WrongKeyHomeBackupDirectionAndEpochAreRefused) {
  auto sealed = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "x");
  // Another key for the same backup.
  testing::TempDir other;
  KeyEntry e;
  e.epoch = 1;
  RandomBytes(e.key.data(), e.key.size());
  auto other_store = NewPosixStateStore(other.path());
  KeyStore(other_store.get()).Put("hub-b", e);
  auto wrong_key = SecureChannel::Create(other_store.get(), "home", "hub-b", false);
  EXPECT_EQ((*wrong_key)->Open(*sealed).status().code(), Status::Code::kCorruption);
  // Same key, other home or backup: associated data differs.
  auto other_home = SecureChannel::Create(bstore_.get(), "home-2", "hub-b", false);
  EXPECT_FALSE((*other_home)->Open(*sealed).ok());
  // Same key and home, another backup's id of the same length: the
  // associated data differs. (The key file is copied under the other id, as
  // a backup that stole it would hold it.)
  ASSERT_TRUE(KeyStore(bstore_.get()).Put("hub-c", key_).ok());
  auto other_backup = SecureChannel::Create(bstore_.get(), "home", "hub-c", false);
  ASSERT_TRUE(other_backup.ok());
  EXPECT_EQ((*other_backup)->Open(*sealed).status().code(), Status::Code::kCorruption);
  // The primary does not accept its own direction.
  EXPECT_EQ(Primary()->Open(*sealed).status().code(), Status::Code::kRejected);
  // A backup cannot seal a delta.
  EXPECT_FALSE(Backup()->Seal(MsgKind::kDelta, 1, 0, true, "x").ok());
  // Unknown epoch.
  std::string bad = *sealed;
  bad[8] = 9;  // epoch's low byte
  EXPECT_EQ(Backup()->Open(bad).status().code(), Status::Code::kRejected);
}

// Issue 8, finding 2: a state_dir restored from a backup (or cloned to
// another hub) hands the same counters out again. Each process seals under
// its own random session's key, so no (key, nonce) pair repeats.
TEST_F(EnvelopeTest, ARestoredStateDirNeverRepeatsAKeyNoncePair) {
  testing::TempDir snapshot;
  std::system(("cp -a '" + primary_.path() + "/.' '" + snapshot.path() + "/'").c_str());
  auto first = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "same plaintext");
  ASSERT_TRUE(first.ok());
  std::system(("rm -rf '" + primary_.path() + "' && cp -a '" + snapshot.path() + "' '" +
               primary_.path() + "'").c_str());
  auto second = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "same plaintext");
  ASSERT_TRUE(second.ok());
  auto h1 = DecodeEnvelopeHeader(*first), h2 = DecodeEnvelopeHeader(*second);
  ASSERT_TRUE(h1.ok() && h2.ok());
  EXPECT_EQ(h1->counter, h2->counter) << "the restored counter repeats";
  EXPECT_NE(h1->session, h2->session);
  // Same counter (so same nonce), same plaintext: under one key the
  // ciphertexts would be equal (and XOR to nothing); under two they differ.
  EXPECT_NE(first->substr(kEnvelopeHeaderBytes), second->substr(kEnvelopeHeaderBytes));
  EXPECT_NE(SessionKey(key_.key, h1->session), SessionKey(key_.key, h2->session));
  // Both still open for the receiver (each under its own session key).
  auto b = Backup();
  EXPECT_TRUE(b->Open(*first).ok());
}

TEST_F(EnvelopeTest, KeysAreStoredPrivately) {
  struct stat st;
  ASSERT_EQ(stat((primary_.path() + "/keys/hub-b.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = KeyStore(pstore_.get()).Load("hub-b");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->back().key, key_.key);
  std::string exported = KeyStore::Export("home", "hub-b", "hub-p", key_);
  std::string maker;
  EXPECT_TRUE(KeyStore::Import(exported, "home", "hub-b", &maker).ok());
  EXPECT_EQ(maker, "hub-p") << "the file names the hub that made it";
  EXPECT_FALSE(KeyStore::Import(exported, "home", "hub-c", &maker).ok());
  EXPECT_FALSE(KeyStore::Import(exported, "other", "hub-b", &maker).ok());
  EXPECT_FALSE(KeyStore::Import("garbage", "home", "hub-b", &maker).ok());
  // A file from before the maker was named: the key with the primary.
  std::string old_file = "hubsync-key v1\nhome home\nbackup hub-b\n1 " + std::string(64, 'c') + "\n";
  EXPECT_TRUE(KeyStore::Import(old_file, "home", "hub-b", &maker).ok());
  EXPECT_EQ(maker, "");
  EXPECT_EQ(KeyStore::Import(KeyStore::Export("home", "hub-b", "hub-b", key_), "home", "hub-b", &maker)
                .status().message(), "key made by the backup itself");
  EXPECT_EQ(KeyStore::Import("hubsync-key v1\nhome home\nbackup hub-b\nmade-by ../x\n", "home",
                             "hub-b", &maker).status().message(), "malformed key file");
  // Found by fuzz_state: a short "backup" line threw out of Import.
  auto short_line = KeyStore::Import("hubsync-key v1\nhome home\nba\n1 " + std::string(64, 'c'),
                                     "home", "hub-b", &maker);
  EXPECT_EQ(short_line.status().message(), "not a hubsync key file");
  auto bad_id = KeyStore::Import("hubsync-key v1\nhome home\nbackup \x1b[2J\n", "home", "hub-b", &maker);
  EXPECT_EQ(bad_id.status().message(), "malformed key file") << "no escape reaches the terminal";
  // Records: a backup's own id, or its key made by another hub.
  KeyStore ks(pstore_.get());
  EXPECT_TRUE(ks.Put(KeyStore::MadeBy("hub-b", "hub-c"), key_).ok());
  EXPECT_TRUE(ks.Load("hub-b.from-hub-c").ok());
  EXPECT_FALSE(ks.Load("hub-b.from-").ok());
  EXPECT_FALSE(ks.Load("hub-b.from-../x").ok());
  EXPECT_EQ(ks.List(), std::vector<std::string>{"hub-b"}) << "a key made by another hub is not served";
}

TEST_F(EnvelopeTest, NewEpochSealsWithItAndOldEpochStillOpens) {
  auto old_msg = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "old");
  KeyEntry e2;
  e2.epoch = 2;
  RandomBytes(e2.key.data(), e2.key.size());
  KeyStore(pstore_.get()).Put("hub-b", e2);
  KeyStore(bstore_.get()).Put("hub-b", e2);
  auto p = Primary();
  EXPECT_EQ(p->epoch(), 2u);
  auto b = Backup();
  EXPECT_TRUE(b->Open(*old_msg).ok());
  EXPECT_TRUE(b->Open(*p->Seal(MsgKind::kDelta, 2, 0, true, "new")).ok());
  // Issue 8, finding 11: once the peer speaks under the new epoch, the old
  // one is retired (here and in the store), not accepted for as long as kept.
  auto kept = KeyStore(bstore_.get()).Load("hub-b");
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ(kept->front().epoch, 2u);
  auto old_store = NewPosixStateStore(primary_.path() + "/old");
  ASSERT_TRUE(KeyStore(old_store.get()).Put("hub-b", key_).ok());
  auto sealer = SecureChannel::Create(old_store.get(), "home", "hub-b", true);
  ASSERT_TRUE(sealer.ok());
  (*sealer)->set_primary("hub-p");
  auto late = (*sealer)->Seal(MsgKind::kDelta, 3, 0, true, "late, under epoch 1");
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(b->Open(*late).status().message(), "unknown key epoch");
  EXPECT_EQ(Backup()->Open(*late).status().message(), "unknown key epoch") << "after a restart too";
}

TEST_F(EnvelopeTest, AnEpochTwoRotationsOldIsRefused) {
  auto epoch1 = Primary()->Seal(MsgKind::kDelta, 1, 0, true, "from epoch 1");
  for (uint32_t epoch : {2u, 3u}) {
    KeyEntry e;
    e.epoch = epoch;
    RandomBytes(e.key.data(), e.key.size());
    KeyStore(pstore_.get()).Put("hub-b", e);
    KeyStore(bstore_.get()).Put("hub-b", e);
  }
  auto kept = KeyStore(bstore_.get()).Load("hub-b");
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ(kept->front().epoch, 2u);
  auto r = Backup()->Open(*epoch1);
  EXPECT_EQ(r.status().code(), Status::Code::kRejected);
  EXPECT_EQ(r.status().message(), "unknown key epoch");
}

// SPEC 11: the term and the primary's id are sealed; a primary's channel
// leaves a message for another primary of the same backup unopened, and a
// backup's channel names whom it answers.
TEST_F(EnvelopeTest, TermAndPrimaryAreSealedAndAnotherPrimarysMessageIsLeftAlone) {
  auto p = Primary();
  p->set_term(5);
  auto b = Backup();
  auto sealed = p->Seal(MsgKind::kRequest, 1, 0, true, "req");
  ASSERT_TRUE(sealed.ok());
  auto opened = b->Open(*sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->header.term, 5u);
  EXPECT_EQ(opened->header.primary, "hub-p");
  b->set_primary("hub-other");
  auto answer = b->Seal(MsgKind::kAck, 1, 0, true, "ack");
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(p->Open(*answer).status().message(), "for another primary");
  b->set_primary("hub-p");
  auto ours = b->Seal(MsgKind::kAck, 1, 0, true, "ack");
  EXPECT_TRUE(p->Open(*ours).ok()) << "the refusal above used no counter";
  // A header naming no primary, or one that is no gateway id, is refused.
  std::string bad = *sealed;
  bad[kEnvelopeHeaderBytes - 1] = 0;
  EXPECT_EQ(DecodeEnvelopeHeader(bad).status().message(), "bad primary id");
  bad = *sealed;
  bad[kEnvelopeHeaderBytes] = '/';
  EXPECT_EQ(DecodeEnvelopeHeader(bad).status().message(), "bad primary id");
  auto none = Backup();
  none->set_primary("");
  EXPECT_FALSE(none->Seal(MsgKind::kAck, 1, 0, true, "x").ok()) << "sealing names a primary";
}

}  // namespace
}  // namespace hubsync
