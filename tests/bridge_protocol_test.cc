#include "hubsync/bridge_protocol.h"

#include <gtest/gtest.h>

namespace hubsync {
namespace {

BridgeLimits Small() {
  BridgeLimits l;
  l.mtu = 64;
  return l;
}
const size_t kRoom = 64 - kFrameHeaderBytes;

// Delivers every frame from a to b and b's answers back; returns what b got.
std::vector<std::string> Exchange(BridgeProtocol& a, BridgeProtocol& b,
                                  const std::vector<std::string>& frames, int64_t now = 0) {
  std::vector<std::string> delivered, acks, ignored;
  for (const auto& f : frames) {
    EXPECT_LE(f.size(), 64u);
    EXPECT_GT(f.size(), 0u);  // never an empty record
    b.OnFrame(f, now, &acks, &delivered);
  }
  for (const auto& ack : acks) a.OnFrame(ack, now, &ignored, &ignored);
  return delivered;
}

TEST(BridgeProtocolTest, MessagesAtMtuAndMtuPlusOneAndEmpty) {
  BridgeProtocol a(Small()), b(Small());
  for (size_t n : {size_t{0}, size_t{1}, kRoom, kRoom + 1, 5 * kRoom, 5 * kRoom + 7}) {
    std::string m(n, 'x');
    for (size_t i = 0; i < n; ++i) m[i] = static_cast<char>(i);
    auto frames = a.Send(m, 0);
    ASSERT_TRUE(frames.ok());
    EXPECT_EQ(frames->size(), n == 0 ? 1 : (n + kRoom - 1) / kRoom) << n;
    auto got = Exchange(a, b, *frames);
    ASSERT_EQ(got.size(), 1u) << n;
    EXPECT_EQ(got[0], m);
    EXPECT_EQ(a.unacked(), 0u);
  }
}

TEST(BridgeProtocolTest, DuplicateFramesDeliverOnceAndAreReacked) {
  BridgeProtocol a(Small()), b(Small());
  auto frames = a.Send(std::string(3 * kRoom, 'd'), 0);
  std::vector<std::string> twice = *frames;
  twice.insert(twice.end(), frames->begin(), frames->end());
  twice.push_back((*frames)[1]);
  EXPECT_EQ(Exchange(a, b, twice).size(), 1u);
  EXPECT_GT(b.duplicates(), 0u);
  // A retransmission after the ack was lost is acknowledged, not delivered.
  std::vector<std::string> acks, delivered;
  b.OnFrame((*frames)[0], 0, &acks, &delivered);
  EXPECT_TRUE(delivered.empty());
  EXPECT_EQ(acks.size(), 1u);
}

TEST(BridgeProtocolTest, LostFramesAreRetransmittedUntilAcked) {
  BridgeProtocol a(Small()), b(Small());
  auto frames = a.Send(std::string(2 * kRoom + 3, 'r'), 0);
  EXPECT_TRUE(Exchange(a, b, {(*frames)[0]}).empty());  // the rest is lost
  EXPECT_TRUE(a.Tick(500).empty());                     // not late yet
  auto again = a.Tick(1000);
  ASSERT_EQ(again.size(), frames->size());
  EXPECT_EQ(Exchange(a, b, again, 1000).size(), 1u);
  EXPECT_EQ(a.unacked(), 0u);
}

TEST(BridgeProtocolTest, GivesUpAfterTheRetryLimit) {
  BridgeProtocol a(Small());
  ASSERT_TRUE(a.Send("never acked", 0).ok());
  int64_t t = 0;
  for (int i = 0; i < 10; ++i) a.Tick(t += 1000);
  EXPECT_EQ(a.unacked(), 0u);
  EXPECT_EQ(a.dropped(), 1u);
}

TEST(BridgeProtocolTest, DisconnectMidMessageDiscardsThePartAndResendsWhole) {
  BridgeProtocol a(Small()), b(Small());
  auto frames = a.Send(std::string(4 * kRoom, 'm'), 0);
  Exchange(a, b, {(*frames)[0], (*frames)[1]});
  b.OnDisconnect();
  a.OnDisconnect();
  auto resent = a.Reconnected(10);
  ASSERT_EQ(resent.size(), frames->size());
  auto got = Exchange(a, b, resent, 10);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], std::string(4 * kRoom, 'm'));
}

TEST(BridgeProtocolTest, HostileFramesAreRefusedAndBounded) {
  BridgeProtocol b(Small());
  std::vector<std::string> out, delivered;
  EXPECT_FALSE(b.OnFrame("x", 0, &out, &delivered).ok());
  std::string header(kFrameHeaderBytes, '\0');
  header[0] = 1;
  header[8] = 1;  // count 1, total 0 ... then a body: longer than announced
  EXPECT_FALSE(b.OnFrame(header + "extra", 0, &out, &delivered).ok());
  // Announcing a huge total is refused.
  std::string huge = header;
  huge[9] = 0x7f;
  EXPECT_FALSE(b.OnFrame(huge, 0, &out, &delivered).ok());
  EXPECT_TRUE(delivered.empty());
  // Many half-sent messages never grow memory beyond max_partial.
  BridgeProtocol a(Small());
  for (int i = 0; i < 100; ++i) {
    auto f = a.Send(std::string(2 * kRoom, 'p'), 0);
    b.OnFrame((*f)[0], 0, &out, &delivered);
  }
  EXPECT_GE(b.dropped(), 92u);
  // Stale partials are dropped by time too.
  b.Tick(100000);
  EXPECT_TRUE(delivered.empty());
}

TEST(BridgeProtocolTest, TooLargeOrTinyMtuIsAnError) {
  BridgeProtocol a(Small());
  EXPECT_FALSE(a.Send(std::string(65 * 1024, 'x'), 0).ok());
  BridgeLimits tiny;
  tiny.mtu = kFrameHeaderBytes;
  EXPECT_FALSE(BridgeProtocol(tiny).Send("x", 0).ok());
}

TEST(BridgeProtocolTest, BridgeMessageCodec) {
  std::string topic, payload;
  ASSERT_TRUE(DecodeBridgeMessage(EncodeBridgeMessage("a/b", std::string("p\0q", 3)), &topic,
                                  &payload).ok());
  EXPECT_EQ(topic, "a/b");
  EXPECT_EQ(payload, std::string("p\0q", 3));
  EXPECT_FALSE(DecodeBridgeMessage("", &topic, &payload).ok());
  EXPECT_FALSE(DecodeBridgeMessage(std::string("\0\x09" "ab", 4), &topic, &payload).ok());
}

}  // namespace
}  // namespace hubsync
