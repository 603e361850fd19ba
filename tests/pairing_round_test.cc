// The pure core of pairing (SPEC 6, 11): one round of a backup's pairing
// answered by its primary and by a standby, each with its own desk, over
// in-memory state stores. The bridges and brokers are in pairing_test.cc.
#include <gtest/gtest.h>

#include "hubsync/pairing.h"
#include "hubsync/state_store.h"

namespace hubsync {
namespace {

constexpr char kHome[] = "home-1";

class PairingRoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = PairingRound::Create(&b_state_, kHome, "hub-b2");
    ASSERT_TRUE(r.ok());
    round_ = std::make_unique<PairingRound>(std::move(r).value());
  }
  // The welcome `desk` answers our hello with, decoded as the backup would.
  PairWelcome Answer(PairingDesk& desk, int64_t now = 0) {
    auto w = desk.OnHello(round_->hello(), now);
    EXPECT_TRUE(w.ok());
    auto decoded = DecodePairWelcome(w->payload);
    EXPECT_TRUE(decoded.ok());
    return *decoded;
  }
  std::string Confirm(const PairWelcome& w, int64_t now = 0) {
    auto c = round_->OnWelcome(w, 1, now);
    EXPECT_TRUE(c.ok() && *c) << c.status().ToString();
    return c.ok() && *c ? (*c)->sealed : "";
  }
  // A channel on the answering side, over the key its desk stored.
  std::unique_ptr<SecureChannel> Sender(MemoryStateStore* state, const std::string& self) {
    auto ch = SecureChannel::Create(state, kHome, "hub-b2", true);
    EXPECT_TRUE(ch.ok()) << ch.status().ToString();
    (*ch)->set_primary(self);
    (*ch)->set_term(1);
    return std::move(ch).value();
  }
  Key Newest(MemoryStateStore* state, const std::string& record) {
    auto k = KeyStore(state).Load(record);
    EXPECT_TRUE(k.ok()) << record;
    return k.ok() ? k->back().key : Key{};
  }

  MemoryStateStore b_state_, p_state_, s_state_;
  PairingDesk primary_{&p_state_, kHome, "hub-p", false};
  PairingDesk standby_{&s_state_, kHome, "hub-b1", true};
  std::unique_ptr<PairingRound> round_;
};

TEST_F(PairingRoundTest, OneHelloGivesAKeyWithThePrimaryAndOneWithTheStandbyEachInItsRecord) {
  // A key hub-p made for us by keygen: pairing with hub-p replaces it.
  ASSERT_TRUE(KeyStore(&b_state_).Put("hub-b2.from-hub-p", KeyEntry{1, Key{}}).ok());
  PairWelcome wp = Answer(primary_), ws = Answer(standby_);
  EXPECT_FALSE(wp.standby);
  EXPECT_TRUE(ws.standby);
  std::string cp = Confirm(wp), cs = Confirm(ws);
  // Each desk takes its own confirmation only; the other is any ack to it.
  EXPECT_EQ(primary_.OnConfirm("hub-b2", cs, 1).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(standby_.OnConfirm("hub-b2", cp, 1).status().code(), Status::Code::kNotFound);
  ASSERT_EQ(*primary_.OnConfirm("hub-b2", cp, 1), 1u);
  ASSERT_EQ(*standby_.OnConfirm("hub-b2", cs, 1), 1u);
  EXPECT_FALSE(primary_.Pending("hub-b2", 1));
  // The backup may go on saying the same hello (for its primary's sake): a
  // desk whose key is confirmed sends nothing more for it, and makes no
  // offer for another epoch.
  auto after = standby_.OnHello(round_->hello(), 2);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->repeated);
  EXPECT_TRUE(after->payload.empty());
  EXPECT_EQ(standby_.OnConfirm("hub-b2", cs, 2).status().code(), Status::Code::kNotFound);

  auto p = Sender(&p_state_, "hub-p");
  auto s = Sender(&s_state_, "hub-b1");
  // The standby serving under its key is no proof of it (it is not our
  // primary); nor is the primary's key proof.
  auto served = s->Seal(MsgKind::kRequest, 7, 0, true, "x");
  ASSERT_TRUE(served.ok());
  auto none = round_->TryProof(*served, 2);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  auto wrong = SealKeyProof(p.get());
  ASSERT_TRUE(wrong.ok());
  none = round_->TryProof(*wrong, 2);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);

  auto proof = SealKeyProof(s.get());
  ASSERT_TRUE(proof.ok());
  auto a = round_->TryProof(*proof, 2);
  ASSERT_TRUE(a.ok() && *a);
  EXPECT_TRUE((*a)->standby);
  EXPECT_EQ((*a)->record, "hub-b2.from-hub-b1");
  // No key from our primary yet: the hello goes on until it has one.
  EXPECT_TRUE(round_->saying_hello());
  EXPECT_FALSE(round_->Done(2 + PairingRound::kLingerMs));  // the primary's key waits
  // The standby's welcome again (the bridge repeats): nothing more to do.
  auto again = round_->OnWelcome(ws, 1, 3);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);

  auto req = p->Seal(MsgKind::kRequest, 8, 0, true, "x");
  ASSERT_TRUE(req.ok());
  a = round_->TryProof(*req, 4);
  ASSERT_TRUE(a.ok() && *a);
  EXPECT_FALSE((*a)->standby);
  EXPECT_EQ((*a)->record, "hub-b2");
  EXPECT_FALSE(round_->saying_hello());
  EXPECT_FALSE(round_->Done(4 + PairingRound::kLingerMs - 1));
  EXPECT_TRUE(round_->Done(4 + PairingRound::kLingerMs));
  EXPECT_EQ(round_->Summary(), "hub-b1:1 hub-p:1");

  EXPECT_EQ(Newest(&b_state_, "hub-b2"), Newest(&p_state_, "hub-b2"));
  EXPECT_EQ(Newest(&b_state_, "hub-b2.from-hub-b1"), Newest(&s_state_, "hub-b2"));
  EXPECT_NE(Newest(&b_state_, "hub-b2"), Newest(&b_state_, "hub-b2.from-hub-b1"));
  EXPECT_FALSE(KeyStore(&b_state_).Load("hub-b2.from-hub-p").ok());
}

TEST_F(PairingRoundTest, ARotationMayEndWithAStandbysKeyAloneWhenNoPrimaryAnswers) {
  ASSERT_TRUE(KeyStore(&b_state_).Put("hub-b2", KeyEntry{1, Key{}}).ok());
  auto r = PairingRound::Create(&b_state_, kHome, "hub-b2");  // a rotation: we hold a key
  ASSERT_TRUE(r.ok());
  round_ = std::make_unique<PairingRound>(std::move(r).value());
  std::string cs = Confirm(Answer(standby_));
  ASSERT_TRUE(standby_.OnConfirm("hub-b2", cs, 1).ok());
  auto proof = SealKeyProof(Sender(&s_state_, "hub-b1").get());
  ASSERT_TRUE(proof.ok());
  auto a = round_->TryProof(*proof, 2);
  ASSERT_TRUE(a.ok() && *a);
  EXPECT_FALSE(round_->saying_hello());
  EXPECT_TRUE(round_->Done(2 + PairingRound::kLingerMs));
  EXPECT_EQ(round_->Summary(), "hub-b1:1");
}

// After a failover the promoted standby is our primary: pairing with it
// continues the key it made for us as a standby, never the pairing record
// (which held the old primary's key).
TEST_F(PairingRoundTest, ARotationWithAPromotedStandbyContinuesItsKey) {
  ASSERT_TRUE(KeyStore(&b_state_).Put("hub-b2", KeyEntry{3, Key{}}).ok());  // with the old primary
  Key standby_key{};
  standby_key[0] = 7;
  ASSERT_TRUE(KeyStore(&b_state_).Put("hub-b2.from-hub-b1", KeyEntry{1, standby_key}).ok());
  MemoryStateStore s_state;
  ASSERT_TRUE(KeyStore(&s_state).Put("hub-b2", KeyEntry{1, standby_key}).ok());
  PairingDesk promoted(&s_state, kHome, "hub-b1", false);  // a primary now
  auto r = PairingRound::Create(&b_state_, kHome, "hub-b2");
  ASSERT_TRUE(r.ok());
  round_ = std::make_unique<PairingRound>(std::move(r).value());
  PairWelcome w = Answer(promoted);
  EXPECT_FALSE(w.standby);
  EXPECT_EQ(w.epoch, 2u);
  std::string c = Confirm(w);
  ASSERT_TRUE(promoted.OnConfirm("hub-b2", c, 1).ok());
  auto req = Sender(&s_state, "hub-b1")->Seal(MsgKind::kRequest, 9, 0, true, "x");
  ASSERT_TRUE(req.ok());
  auto a = round_->TryProof(*req, 2);
  ASSERT_TRUE(a.ok() && *a);
  EXPECT_EQ((*a)->record, "hub-b2.from-hub-b1");
  EXPECT_EQ(Newest(&b_state_, "hub-b2.from-hub-b1"), Newest(&s_state, "hub-b2"));
  auto pairing = KeyStore(&b_state_).Load("hub-b2");
  ASSERT_TRUE(pairing.ok());
  EXPECT_EQ(pairing->back().epoch, 3u) << "the old primary's record is left alone";
}

TEST_F(PairingRoundTest, AWelcomeIsForTheNextEpochOfItsMakersRecord) {
  ASSERT_TRUE(KeyStore(&b_state_).Put("hub-b2.from-hub-b1", KeyEntry{3, Key{}}).ok());
  ASSERT_TRUE(KeyStore(&s_state_).Put("hub-b2", KeyEntry{3, Key{}}).ok());
  PairWelcome ws = Answer(standby_);
  EXPECT_EQ(ws.epoch, 4u);
  PairWelcome old = ws;
  old.epoch = 3;  // an epoch in use would seal under its counters anew
  auto refused = round_->OnWelcome(old, 1, 0);
  EXPECT_EQ(refused.status().code(), Status::Code::kRejected);
  // A primary we hold no key with offers the pairing record's epoch 1,
  // not 4.
  PairWelcome as_primary = ws;
  as_primary.standby = false;
  as_primary.primary = "hub-p";
  EXPECT_EQ(round_->OnWelcome(as_primary, 1, 0).status().code(), Status::Code::kRejected);
  EXPECT_TRUE(round_->OnWelcome(ws, 1, 0).ok());
}

TEST_F(PairingRoundTest, TheDeskAnswersTheSameHelloAlikeAndBoundsThePairingsInProgress) {
  auto first = primary_.OnHello(round_->hello(), 0);
  auto second = primary_.OnHello(round_->hello(), 10);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_FALSE(first->repeated);
  EXPECT_TRUE(second->repeated);
  EXPECT_EQ(first->payload, second->payload);
  for (size_t i = 1; i < PairingDesk::kMaxPendingPairings; ++i) {
    PairHello h = round_->hello();
    h.backup = "hub-x" + std::to_string(i);
    ASSERT_TRUE(primary_.OnHello(h, 20).ok()) << i;
  }
  PairHello one_more = round_->hello();
  one_more.backup = "hub-y";
  EXPECT_EQ(primary_.OnHello(one_more, 20).status().code(), Status::Code::kRejected);
  // Offers expire: then there is room again.
  EXPECT_TRUE(primary_.OnHello(one_more, 20 + PairingDesk::kOfferMs + 1).ok());
  EXPECT_FALSE(primary_.Pending("hub-b2", 20 + PairingDesk::kOfferMs + 1));
}

}  // namespace
}  // namespace hubsync
