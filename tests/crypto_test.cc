#include "hubsync/crypto.h"

#include <gtest/gtest.h>

namespace hubsync {
namespace {

Key FromHexKey(const char* hex) {
  Key k{};
  EXPECT_TRUE(FromHex(hex, k.data(), k.size()));
  return k;
}

TEST(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(ToHex(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoTest, X25519MatchesRfc7748Vector) {
  // RFC 7748 section 6.1.
  Key alice = FromHexKey("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  X25519Public bob_pub = FromHexKey("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto shared = X25519Agree(alice, bob_pub);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(ToHex(shared->data(), shared->size()),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

TEST(CryptoTest, BothSidesDeriveTheSamePairKeyAndOnlyThey) {
  auto b = GenerateX25519(), p = GenerateX25519(), eve = GenerateX25519();
  ASSERT_TRUE(b.ok() && p.ok() && eve.ok());
  auto sb = X25519Agree(b->secret, p->pub), sp = X25519Agree(p->secret, b->pub);
  ASSERT_TRUE(sb.ok() && sp.ok());
  Key kb = DerivePairKey(*sb, b->pub, p->pub, "home", "hub-b");
  Key kp = DerivePairKey(*sp, b->pub, p->pub, "home", "hub-b");
  EXPECT_EQ(kb, kp);
  EXPECT_NE(kb, *sb);  // never the raw secret
  EXPECT_NE(kb, DerivePairKey(*sb, b->pub, p->pub, "home", "hub-c"));
  EXPECT_NE(kb, DerivePairKey(*sb, b->pub, p->pub, "home-2", "hub-b"));
  EXPECT_NE(kb, DerivePairKey(*sb, p->pub, b->pub, "home", "hub-b"));
  auto se = X25519Agree(eve->secret, p->pub);
  ASSERT_TRUE(se.ok());
  EXPECT_NE(kb, DerivePairKey(*se, b->pub, p->pub, "home", "hub-b"));
}

TEST(CryptoTest, LowOrderPublicKeysAreRefused) {
  auto kp = GenerateX25519();
  ASSERT_TRUE(kp.ok());
  X25519Public zero{};
  EXPECT_FALSE(X25519Agree(kp->secret, zero).ok());
  X25519Public one{};
  one[0] = 1;
  EXPECT_FALSE(X25519Agree(kp->secret, one).ok());
}

TEST(CryptoTest, HkdfMatchesRfc5869TestCase1) {
  std::string ikm(22, '\x0b');
  std::string salt, info;
  for (int i = 0; i <= 0x0c; ++i) salt.push_back(static_cast<char>(i));
  for (int i = 0xf0; i <= 0xf9; ++i) info.push_back(static_cast<char>(i));
  Key okm = HkdfSha256(ikm, salt, info);  // the first 32 of the RFC's 42 bytes
  EXPECT_EQ(ToHex(okm.data(), okm.size()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
}

}  // namespace
}  // namespace hubsync
