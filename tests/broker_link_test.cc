// BrokerLink: what the engines say about their broker and how large their
// messages may be (issue 11).
#include <gtest/gtest.h>

#include <vector>

#include "hubsync/engine.h"

namespace hubsync {
namespace {

using Kind = LinkEvent::Kind;

class BrokerLinkTest : public ::testing::Test {
 protected:
  BrokerLinkTest() {
    config_.max_message_bytes = 262144;
  }
  BrokerLink Make() {
    return BrokerLink("the broker", config_, &clock_,
                      [this](LogLevel, const std::string& line) { lines_.push_back(line); });
  }
  static LinkEvent Dropped(int code, size_t unacked, size_t acked) {
    LinkEvent e = LinkEvent::Down(Kind::kDropped, "gone");
    e.disconnect_code = code;
    e.largest_unacked = unacked;
    e.largest_acked = acked;
    return e;
  }
  Config config_;
  ManualClock clock_;
  std::vector<std::string> lines_;
};

TEST_F(BrokerLinkTest, TheSameFailureIsLoggedOnceThenAtBackedOffIntervals) {
  BrokerLink link = Make();
  LinkEvent refused = LinkEvent::Down(Kind::kRefused, "Not authorized (CONNACK 135)");
  for (int i = 0; i < 100; ++i) {  // an attempt every 250 ms for 25 s
    link.Report(refused);
    clock_.Advance(250);
  }
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "cannot connect: Not authorized (CONNACK 135)");
  clock_.Advance(5000);  // 30 s after the first
  link.Report(refused);
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(lines_[1], "still cannot connect: Not authorized (CONNACK 135) (100 more failed attempts)");
  // Then after 60 s, not before.
  clock_.Advance(59000);
  link.Report(refused);
  EXPECT_EQ(lines_.size(), 2u);
  clock_.Advance(1000);
  link.Report(refused);
  EXPECT_EQ(lines_.size(), 3u);
  // Another cause is news: said at once.
  link.Report(LinkEvent::Down(Kind::kUnreachable, "Connection refused"));
  ASSERT_EQ(lines_.size(), 4u);
  EXPECT_EQ(lines_[3], "cannot connect: Connection refused");
  link.Report(LinkEvent::Up());
  EXPECT_EQ(lines_.back(), "connected to the broker after 104 failed attempts over 90 s");
}

TEST_F(BrokerLinkTest, AnAnnouncedPacketLimitBoundsMessages) {
  BrokerLink link = Make();
  EXPECT_EQ(link.message_bytes(), 262144u);
  LinkEvent up = LinkEvent::Up();
  up.max_packet_bytes = 65536;
  up.receive_maximum = 20;
  link.Report(up);
  EXPECT_EQ(link.message_bytes(), 65536u - BrokerLink::kPacketOverhead);
  EXPECT_EQ(lines_[0], "connected to the broker (it takes packets up to 65536 bytes, 20 unacknowledged)");
  EXPECT_NE(lines_[1].find("instead of max_message_bytes 262144"), std::string::npos) << lines_[1];
  // A limit above ours changes nothing; one below what we can work with is
  // an error, and we stay at the least we need.
  up.max_packet_bytes = 1 << 20;
  link.Report(up);
  EXPECT_EQ(link.message_bytes(), 65536u - BrokerLink::kPacketOverhead);
  up.max_packet_bytes = 4096;
  link.Report(up);
  EXPECT_EQ(link.message_bytes(), BrokerLink::kMinMessageBytes);
  EXPECT_NE(lines_.back().find("raise the broker's limit"), std::string::npos) << lines_.back();
}

TEST_F(BrokerLinkTest, PacketTooLargeHalvesMessagesAtOnce) {
  BrokerLink link = Make();
  link.Report(Dropped(kPacketTooLarge, 200000, 0));
  EXPECT_EQ(link.message_bytes(), 131072u);
  EXPECT_NE(lines_.back().find("max_message_bytes"), std::string::npos) << lines_.back();
  for (int i = 0; i < 10; ++i) link.Report(Dropped(kPacketTooLarge, 20000, 0));
  EXPECT_EQ(link.message_bytes(), BrokerLink::kMinMessageBytes);
}

TEST_F(BrokerLinkTest, SilentDropsHalveOnlyTwiceInARowWithNothingAsLargeGettingThrough) {
  BrokerLink link = Make();
  // A broker killed while a large message was in flight, after large ones
  // got through on that connection: no sign of a limit.
  for (int i = 0; i < 5; ++i) link.Report(Dropped(0, 262000, 262000));
  EXPECT_EQ(link.message_bytes(), 262144u);
  // Small messages lost: no sign either.
  for (int i = 0; i < 5; ++i) link.Report(Dropped(0, 1000, 0));
  EXPECT_EQ(link.message_bytes(), 262144u);
  // Dropped on a large message, twice, none as large acknowledged between.
  link.Report(Dropped(0, 262000, 0));
  EXPECT_EQ(link.message_bytes(), 262144u);
  link.Report(Dropped(0, 262000, 4000));
  EXPECT_EQ(link.message_bytes(), 131072u);
  EXPECT_NE(lines_.back().find("dropped the connection twice"), std::string::npos) << lines_.back();
}

}  // namespace
}  // namespace hubsync

namespace hubsync {
namespace {

TEST(StatusAsksTest, AtMostOneAnswerPerGapAndNoAskIsLost) {
  StatusAsks asks;
  EXPECT_EQ(asks.next(), INT64_MAX);
  EXPECT_TRUE(asks.OnAsk(1000));   // answered at once
  EXPECT_FALSE(asks.OnAsk(1050));  // inside the gap: later
  EXPECT_FALSE(asks.OnAsk(1100));  // a flood adds nothing
  EXPECT_EQ(asks.next(), 1000 + StatusAsks::kGapMs);
  EXPECT_FALSE(asks.Due(1150));
  EXPECT_TRUE(asks.Due(1200));     // one answer for both
  EXPECT_FALSE(asks.Due(1200));
  EXPECT_EQ(asks.next(), INT64_MAX);
  EXPECT_FALSE(asks.OnAsk(1300));  // the gap runs from the last answer
  EXPECT_TRUE(asks.Due(1400));
}

}  // namespace
}  // namespace hubsync
