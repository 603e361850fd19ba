// Terms (SPEC 11): the order of claims and the stored record.
#include "hubsync/term.h"

#include <gtest/gtest.h>

namespace hubsync {
namespace {

TEST(TermTest, AHigherTermWinsAndATieGoesToTheSmallerId) {
  Claim none, p1{1, "hub-p"}, b2{2, "hub-b1"}, c2{2, "hub-b2"};
  EXPECT_TRUE(Beats(p1, none));
  EXPECT_FALSE(Beats(none, p1));
  EXPECT_FALSE(Beats(none, none));
  EXPECT_TRUE(Beats(b2, p1));
  EXPECT_FALSE(Beats(p1, b2));
  EXPECT_TRUE(Beats(b2, c2)) << "split brain on term 2: the smaller id wins";
  EXPECT_FALSE(Beats(c2, b2));
  EXPECT_FALSE(Beats(b2, b2)) << "a claim does not beat itself";
  EXPECT_EQ(Describe(b2), "term 2 of hub-b1");
}

TEST(TermTest, TheStoredClaimRoundTripsAndDamageIsNamedNeverGuessed) {
  MemoryStateStore store;
  auto none = LoadClaim(store);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(SaveClaim(&store, Claim{7, "hub-kitchen"}).ok());
  auto back = LoadClaim(store);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (Claim{7, "hub-kitchen"}));
  EXPECT_FALSE(SaveClaim(&store, Claim{}).ok());
  EXPECT_FALSE(SaveClaim(&store, Claim{1, "../x"}).ok());
  for (const char* bad : {"", "hubsync-term v1\n", "hubsync-term v1\n7 hub-kitchen",
                          "hubsync-term v1\n0 hub-kitchen\n", "hubsync-term v1\n-1 hub\n",
                          "hubsync-term v1\n99999999999999999999999 hub\n",
                          "hubsync-term v1\n7 hub kitchen\n", "hubsync-term v2\n7 hub\n",
                          "hubsync-term v1\n7x hub\n"}) {
    ASSERT_TRUE(store.Put("term", bad).ok());
    auto r = LoadClaim(store);
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("term"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace hubsync
