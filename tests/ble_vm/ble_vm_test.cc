// Runs inside the QEMU VM that run-vm-test.sh boots: Debian's kernel, two
// virtual controllers from `btvirt -l2` (hci0, hci1) that reach each other
// over a simulated radio. The real L2CAP LE credit-based channel code of
// src/link.cc and the real bridge (src/bridge.cc) run across them:
//   - Just Works pairing (unauthenticated) cannot carry the link: HIGH is
//     refused;
//   - a wrong OOB confirm value fails pairing, and the link is refused;
//   - LE Secure Connections OOB pairing carries a link at the L2CAP MTU, and
//     two bridges carry a hubsync hello/welcome that both sides turn into
//     the same key.
// hci1 plays the primary's hub (listening bridge), hci0 the backup's.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "../fake_transport.h"  // TopicMatches
#include "hubsync/bridge.h"
#include "hubsync/link.h"
#include "hubsync/pairing.h"
#include "mgmt.h"

namespace hubsync {
namespace testing {
namespace {

constexpr int kPsm = 0x81;

Message Msg(std::string topic, std::string payload) {
  Message m;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  return m;
}

// A thread-safe in-memory stand-in for a hub's local OOB broker: delivers
// synchronously on the publisher's thread, never back to the publisher (as
// MQTT v5 "no local").
class DirectBroker {
 public:
  class Client : public Transport {
   public:
    explicit Client(DirectBroker* b) : broker_(b) {}
    ~Client() override { broker_->Remove(this); }
    void SetHandlers(MessageHandler m, ConnectionHandler c) override {
      on_message_ = std::move(m);
      on_connection_ = std::move(c);
    }
    Status Connect() override {
      broker_->Add(this);
      if (on_connection_) on_connection_(LinkEvent::Up());
      return Status::Ok();
    }
    Status Subscribe(const std::string& filter, int) override {
      std::lock_guard<std::mutex> l(broker_->mu_);
      filters_.push_back(filter);
      return Status::Ok();
    }
    Status Publish(const Message& m) override {
      broker_->Deliver(this, m);
      return Status::Ok();
    }
    size_t InFlight() const override { return 0; }
    void Disconnect(const Message*) override { broker_->Remove(this); }

   private:
    friend class DirectBroker;
    DirectBroker* broker_;
    MessageHandler on_message_;
    ConnectionHandler on_connection_;
    std::vector<std::string> filters_;  // guarded by broker_->mu_
  };

  std::unique_ptr<Client> NewClient() { return std::make_unique<Client>(this); }

 private:
  void Add(Client* c) {
    std::lock_guard<std::mutex> l(mu_);
    clients_.push_back(c);
  }
  void Remove(Client* c) {
    std::lock_guard<std::mutex> l(mu_);
    clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
  }
  void Deliver(Client* from, const Message& m) {
    std::vector<Transport::MessageHandler> to;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (Client* c : clients_) {
        if (c == from) continue;
        for (const auto& f : c->filters_) {
          if (TopicMatches(f, m.topic)) {
            to.push_back(c->on_message_);
            break;
          }
        }
      }
    }
    for (auto& h : to) h(m);
  }

  std::mutex mu_;
  std::vector<Client*> clients_;
};

// Messages a test client received, waited on with a deadline.
class Inbox {
 public:
  void Attach(Transport& t, const std::string& filter) {
    t.SetHandlers(
        [this](Message m) {
          std::lock_guard<std::mutex> l(mu_);
          messages_.push_back(std::move(m));
          cv_.notify_all();
        },
        nullptr);
    t.Connect();
    t.Subscribe(filter, 1);
  }
  // The first message on `topic`, or nullopt after timeout_ms.
  std::optional<Message> Wait(const std::string& topic, int timeout_ms) {
    std::unique_lock<std::mutex> l(mu_);
    std::optional<Message> found;
    cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] {
      for (const Message& m : messages_) {
        if (m.topic == topic) found = m;
      }
      return found.has_value();
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> messages_;
};

class BleVmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = Mgmt::Open();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    mgmt_ = std::move(m).value().release();
    ASSERT_TRUE(mgmt_->SetUpController(0, /*advertise=*/false).ok());
    Status s = mgmt_->SetUpController(1, /*advertise=*/true);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto a0 = mgmt_->Address(0), a1 = mgmt_->Address(1);
    ASSERT_TRUE(a0.ok() && a1.ok());
    backup_addr_ = *a0;
    primary_addr_ = *a1;
  }
  static void TearDownTestSuite() {
    delete mgmt_;
    mgmt_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(mgmt_, nullptr);
    ASSERT_TRUE(mgmt_->Forget(0, primary_addr_).ok());
    ASSERT_TRUE(mgmt_->Forget(1, backup_addr_).ok());
  }

  static std::string LinkSpec() {
    return "l2cap:" + AddrString(primary_addr_) + "/" + std::to_string(kPsm);
  }

  // Exchanges OOB data both ways (as the hubs' pairing UI would) and pairs.
  // `corrupt` flips a bit of the confirm value hci0 is given.
  uint8_t PairOob(bool corrupt) {
    auto d0 = mgmt_->ReadLocalLeOob(0), d1 = mgmt_->ReadLocalLeOob(1);
    EXPECT_TRUE(d0.ok() && d1.ok());
    if (!d0.ok() || !d1.ok()) return 0xff;
    LeOobData peer = *d1;
    if (corrupt) peer.confirm[0] ^= 1;
    EXPECT_TRUE(mgmt_->AddRemoteLeOob(0, primary_addr_, peer).ok());
    EXPECT_TRUE(mgmt_->AddRemoteLeOob(1, backup_addr_, *d0).ok());
    auto st = mgmt_->Pair(0, primary_addr_);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return st.ok() ? *st : 0xff;
  }

  // Connects hci0 → hci1 with the link code while hci1 listens; returns the
  // connect result (the accepted side is dropped).
  static Status TryLink() {
    auto listener = ListenLink(LinkSpec());
    if (!listener.ok()) return listener.status();
    std::atomic<bool> done{false};
    std::thread accept([&] {
      while (!done) (*listener)->Accept(100);
    });
    auto link = ConnectLink(LinkSpec());
    done = true;
    accept.join();
    return link.status();
  }

  static Mgmt* mgmt_;
  static bdaddr_t backup_addr_, primary_addr_;
};
Mgmt* BleVmTest::mgmt_ = nullptr;
bdaddr_t BleVmTest::backup_addr_{}, BleVmTest::primary_addr_{};

TEST_F(BleVmTest, JustWorksPairingCannotCarryTheLink) {
  auto st = mgmt_->Pair(0, primary_addr_);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_EQ(*st, 0) << "Just Works pairing itself succeeds (unauthenticated key)";
  Status link = TryLink();
  EXPECT_EQ(link.code(), Status::Code::kRejected) << link.ToString();
}

TEST_F(BleVmTest, WrongOobConfirmValueFailsPairingAndTheLink) {
  EXPECT_EQ(PairOob(/*corrupt=*/true), kMgmtAuthFailed);
  Status link = TryLink();
  EXPECT_FALSE(link.ok());
  EXPECT_EQ(link.code(), Status::Code::kRejected) << link.ToString();
}

TEST_F(BleVmTest, OobPairedLinkCarriesRecordsUpToTheMtu) {
  ASSERT_EQ(PairOob(/*corrupt=*/false), 0);
  auto listener = ListenLink(LinkSpec());
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  std::unique_ptr<Link> server;
  std::thread accept([&] {
    for (int i = 0; i < 200 && !server; ++i) {
      auto l = (*listener)->Accept(100);
      if (l.ok()) server = std::move(l).value();
    }
  });
  auto client = ConnectLink(LinkSpec());
  accept.join();
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE(server);
  Link& c = **client;
  std::printf("L2CAP BT_SNDMTU: %zu / %zu\n", c.mtu(), server->mtu());
  ASSERT_GE(c.mtu(), 23u);
  for (size_t n : {size_t{1}, size_t{23}, c.mtu() - 1, c.mtu()}) {
    std::string record(n, static_cast<char>('a' + n % 26));
    ASSERT_TRUE(c.Send(record).ok()) << n;
    auto got = server->Receive(10000);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, record) << n;
  }
  EXPECT_EQ(c.Send(std::string(c.mtu() + 1, 'x')).code(), Status::Code::kInvalidArgument);
  server.reset();  // the peer goes away: the client sees the end of the link
  auto end = c.Receive(10000);
  EXPECT_FALSE(end.ok());
}

TEST_F(BleVmTest, TwoBridgesCarryHelloAndWelcomeOverOobPairedL2cap) {
  ASSERT_EQ(PairOob(/*corrupt=*/false), 0);
  const std::string home = "vmhome", backup = "b1";
  Config primary_cfg, backup_cfg;
  primary_cfg.home = backup_cfg.home = home;
  primary_cfg.gateway_id = "primary";
  backup_cfg.gateway_id = backup;
  primary_cfg.bridge.backup = backup_cfg.bridge.backup = backup;
  primary_cfg.bridge.link = backup_cfg.bridge.link = LinkSpec();
  primary_cfg.bridge.listen = true;
  backup_cfg.bridge.listen = false;
  const std::string scope = primary_cfg.TopicPrefix() + "oob/" + backup + "/";

  DirectBroker primary_oob, backup_oob;
  auto primary_bridge_client = primary_oob.NewClient();
  auto backup_bridge_client = backup_oob.NewClient();
  std::mutex log_mu;
  std::vector<std::string> logs;
  auto logger = [&](const std::string& who) {
    return [&, who](LogLevel, const std::string& m) {
      std::lock_guard<std::mutex> l(log_mu);
      logs.push_back(who + ": " + m);
      std::printf("%s: %s\n", who.c_str(), m.c_str());
    };
  };
  std::atomic<bool> stop{false};
  std::vector<std::thread> bridges;
  struct StopAtExit {  // a failed ASSERT returns early: stop the bridges first
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~StopAtExit() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } stop_at_exit{stop, bridges};
  bridges.emplace_back(
      [&] { RunBridgeOn(primary_cfg, *primary_bridge_client, stop, logger("primary bridge")); });
  bridges.emplace_back(
      [&] { RunBridgeOn(backup_cfg, *backup_bridge_client, stop, logger("backup bridge")); });

  // The primary's side: answers a hello it receives.
  auto primary = primary_oob.NewClient();
  Inbox at_primary;
  at_primary.Attach(*primary, primary_cfg.TopicPrefix() + "oob/#");
  // The backup's side: publishes its hello (again until the link is up, as
  // the backup daemon does) and waits for the welcome.
  auto backup_client = backup_oob.NewClient();
  Inbox at_backup;
  at_backup.Attach(*backup_client, scope + "#");
  auto request = PairingRequest::Create(home, backup);
  ASSERT_TRUE(request.ok());
  std::optional<Message> hello;
  for (int i = 0; i < 30 && !hello; ++i) {
    backup_client->Publish(Msg(scope + "hello", EncodePairHello(request->hello())));
    hello = at_primary.Wait(scope + "hello", 1000);
  }
  ASSERT_TRUE(hello) << "the hello never crossed the L2CAP link";
  auto h = DecodePairHello(hello->payload);
  ASSERT_TRUE(h.ok());
  auto offer = AnswerHello(*h, home, "primary", 7);
  ASSERT_TRUE(offer.ok()) << offer.status().ToString();
  primary->Publish(Msg(scope + "welcome", EncodePairWelcome(offer->welcome)));
  auto welcome = at_backup.Wait(scope + "welcome", 20000);
  ASSERT_TRUE(welcome) << "the welcome never crossed the L2CAP link";
  auto w = DecodePairWelcome(welcome->payload);
  ASSERT_TRUE(w.ok());
  auto key = request->Finish(*w);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->epoch, 7u);
  EXPECT_EQ(key->key, offer->entry.key) << "both hubs derive the same key";

  // A message several MTUs long crosses in frames and arrives whole.
  std::string big(3000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  backup_client->Publish(Msg(scope + "big", big));
  auto got = at_primary.Wait(scope + "big", 20000);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, big);
  // A topic outside this link's backup is not carried.
  backup_client->Publish(Msg(primary_cfg.TopicPrefix() + "oob/b2/hello", "x"));
  backup_client->Publish(Msg(scope + "after", "y"));
  ASSERT_TRUE(at_primary.Wait(scope + "after", 20000));
  EXPECT_FALSE(at_primary.Wait(primary_cfg.TopicPrefix() + "oob/b2/hello", 0));

  std::lock_guard<std::mutex> l(log_mu);
  bool saw_mtu = false;
  for (const auto& l : logs) saw_mtu |= l.find("link up (MTU") != std::string::npos;
  EXPECT_TRUE(saw_mtu);
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
