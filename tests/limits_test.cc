// Issue 8, finding 9: the queues between the network and the engine are
// bounded, so a flood or a broker that stays away cannot grow a daemon.
#include <gtest/gtest.h>

#include <climits>

#include "fake_transport.h"
#include "hubsync/engine.h"
#include "hubsync/event_loop.h"

namespace hubsync {
namespace {

TEST(OutboxTest, ABrokerThatStaysAwayCannotGrowTheQueue) {
  testing::RecordingTransport t;
  t.up = false;
  Outbox out(&t);
  Message m;
  m.topic = "t";
  m.payload = std::string(1000, 'x');
  for (size_t i = 0; i < Outbox::kMaxMessages + 500; ++i) out.Send(m);
  EXPECT_EQ(out.size(), Outbox::kMaxMessages);
  EXPECT_EQ(out.dropped(), 500u);
  t.up = true;
  out.Flush();
  EXPECT_EQ(out.size(), 0u);
}

TEST(EventLoopTest, MessagesBeyondTheByteLimitAreDroppedUntilTheQueueDrains) {
  EventLoop loop(RealClock(), 10000);
  int ran = 0;
  EXPECT_TRUE(loop.PostBounded(6000, [&] { ++ran; }));
  EXPECT_TRUE(loop.PostBounded(4000, [&] { ++ran; }));
  EXPECT_FALSE(loop.PostBounded(1, [&] { ++ran; }));
  EXPECT_EQ(loop.dropped(), 1u);
  loop.Post([&] { loop.Stop(); });
  loop.Run([](int64_t) { return INT64_MAX; });
  EXPECT_EQ(ran, 2);
  // Drained: room again.
  EXPECT_TRUE(loop.PostBounded(10000, [&] { ++ran; }));
}

}  // namespace
}  // namespace hubsync
