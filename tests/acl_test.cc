// Proofs against the shipped broker configuration (broker-config/): the
// LAN listener refuses anonymous clients and keeps each backup to its own
// topics; the OOB topics are reachable only on the loopback OOB listener.
#include <gtest/gtest.h>

#include "harness.h"

namespace hubsync {
namespace {

using testing::Broker;
using testing::Recorder;
using testing::TempDir;

class AclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = tmp_.Sub("broker");
    lan_ = testing::FreePort();
    oob_ = testing::FreePort();
    std::string conf = testing::LockedBrokerConfig(HUBSYNC_SOURCE_DIR, dir, lan_, oob_,
                                                   "hub-p hub-a hub-b --reader hub-viewer "
                                                   "--admin hub-admin");
    ASSERT_FALSE(conf.empty());
    broker_ = std::make_unique<Broker>(dir, lan_, conf);
    ASSERT_TRUE(broker_->up()) << testing::ReadFile(dir + "/mosquitto.log");
  }
  std::string Lan() { return testing::LockedUri(lan_); }
  std::string Ca() { return tmp_.Sub("broker/ca.crt"); }
  std::string Oob() { return "tcp://127.0.0.1:" + std::to_string(oob_); }
  std::string Pass(const std::string& id) {
    std::string p = testing::ReadFile(tmp_.Sub("broker/" + id + ".pass"));
    while (!p.empty() && p.back() == '\n') p.pop_back();
    return p;
  }
  // One connection per account: the broker binds client ids to usernames.
  std::unique_ptr<Recorder> As(const std::string& id, std::vector<std::string> filters,
                               const std::string& client_id = "") {
    MqttOptions o = Recorder::Options(Lan(), id, Pass(id), Ca());
    o.client_id = client_id;
    auto r = std::make_unique<Recorder>(o, filters);
    EXPECT_TRUE(r->connected()) << id;
    return r;
  }
  Message Msg(const std::string& topic, const std::string& payload) {
    Message m;
    m.topic = topic;
    m.payload = payload;
    return m;
  }
  static constexpr char kGw[] = "hubsync/v1/home-1/gw/";

  TempDir tmp_;
  int lan_ = 0, oob_ = 0;
  std::unique_ptr<Broker> broker_;
};

TEST_F(AclTest, AnonymousAndWrongPasswordsAreRefused) {
  std::string out;
  std::string base = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(lan_) + " --cafile " +
                     Ca() + " -t hubsync/v1/home-1/events -m x";
  EXPECT_NE(std::system((base + " 2>/dev/null").c_str()), 0);
  EXPECT_NE(std::system((base + " -u hub-a -P wrong 2>/dev/null").c_str()), 0);
  EXPECT_EQ(std::system((base + " -u hub-a -P " + Pass("hub-a") + " 2>/dev/null").c_str()), 0);
}

TEST_F(AclTest, ABackupReceivesNothingOfAnotherBackupsDelta) {
  auto a = As("hub-a", {std::string(kGw) + "hub-b/delta", std::string(kGw) + "hub-a/delta"});
  auto b = As("hub-b", {std::string(kGw) + "hub-b/delta"});
  auto p = As("hub-p", {});
  ASSERT_TRUE(p->transport()->Publish(Msg(std::string(kGw) + "hub-b/delta", "for b")).ok());
  ASSERT_TRUE(p->transport()->Publish(Msg(std::string(kGw) + "hub-a/delta", "for a")).ok());
  ASSERT_TRUE(b->WaitForMessage(std::string(kGw) + "hub-b/delta", "for b"));
  // A's own delta was published after B's: had B's reached A, it would be first.
  ASSERT_TRUE(a->WaitForMessage(std::string(kGw) + "hub-a/delta", "for a"));
  EXPECT_FALSE(a->Saw(std::string(kGw) + "hub-b/delta"));
}

TEST_F(AclTest, ABackupCannotPublishAnotherBackupsAckOrStatusOrRequests) {
  auto p = As("hub-p", {std::string(kGw) + "+/ack", std::string(kGw) + "+/status"});
  auto b = As("hub-b", {std::string(kGw) + "hub-b/manifest/req", std::string(kGw) + "hub-b/delta"});
  auto a = As("hub-a", {});
  Transport* t = a->transport();
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-b/ack", "forged ack")).ok());
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-b/status", "forged status")).ok());
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-b/manifest/req", "forged req")).ok());
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-b/delta", "forged delta")).ok());
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-a/status", "own status")).ok());
  ASSERT_TRUE(t->Publish(Msg(std::string(kGw) + "hub-a/ack", "own ack")).ok());
  ASSERT_TRUE(p->WaitForMessage(std::string(kGw) + "hub-a/ack", "own ack"));
  EXPECT_TRUE(p->Saw(std::string(kGw) + "hub-a/status", "own status"));
  EXPECT_FALSE(p->Saw(std::string(kGw) + "hub-b/ack"));
  EXPECT_FALSE(p->Saw(std::string(kGw) + "hub-b/status"));
  // B then gets a genuine request from the primary: the forged ones would be ahead of it.
  ASSERT_TRUE(p->transport()->Publish(Msg(std::string(kGw) + "hub-b/manifest/req", "real")).ok());
  ASSERT_TRUE(b->WaitForMessage(std::string(kGw) + "hub-b/manifest/req", "real"));
  EXPECT_FALSE(b->Saw(std::string(kGw) + "hub-b/manifest/req", "forged req"));
  EXPECT_FALSE(b->Saw(std::string(kGw) + "hub-b/delta"));
}

TEST_F(AclTest, LanClientsCannotTouchTheOobTopics) {
  const std::string hello = "hubsync/v1/home-1/oob/hub-a/hello";
  auto oob_side = std::make_unique<Recorder>(Recorder::Options(Oob(), "hub-p", Pass("hub-p")),
                                             std::vector<std::string>{"hubsync/v1/+/oob/#"});
  ASSERT_TRUE(oob_side->connected());
  auto lan_reader = As("hub-a", {"hubsync/v1/+/oob/#", std::string(kGw) + "hub-a/status",
                                 std::string(kGw) + "hub-a/delta"});
  auto lan_writer = As("hub-p", {});
  // From the LAN: an OOB publish that must go nowhere, then a control.
  ASSERT_TRUE(lan_writer->transport()->Publish(Msg(hello, "from the LAN")).ok());
  ASSERT_TRUE(lan_reader->transport()->Publish(Msg(std::string(kGw) + "hub-a/status", "c")).ok());
  // On the OOB listener: a genuine hello, which the LAN reader must not see.
  auto oob_writer = std::make_unique<Recorder>(Recorder::Options(Oob(), "hub-a", Pass("hub-a")),
                                               std::vector<std::string>{});
  ASSERT_TRUE(oob_writer->transport()->Publish(Msg(hello, "from the bridge")).ok());
  ASSERT_TRUE(oob_side->WaitForMessage(hello, "from the bridge"));
  EXPECT_FALSE(oob_side->Saw(hello, "from the LAN"));
  EXPECT_FALSE(lan_reader->Saw(hello));
  // The OOB listener carries nothing else: an anonymous publish there of a
  // LAN topic reaches neither a LAN subscriber nor an OOB one (both exist
  // before it is sent; the control message is published after it).
  Recorder* a_delta = lan_reader.get();
  auto oob_all = std::make_unique<Recorder>(Recorder::Options(Oob(), "hub-b", Pass("hub-b")),
                                            std::vector<std::string>{"#"});
  ASSERT_TRUE(oob_all->connected());
  ASSERT_TRUE(oob_writer->transport()->Publish(Msg(std::string(kGw) + "hub-a/delta", "x")).ok());
  ASSERT_TRUE(oob_writer->transport()->Publish(Msg(hello, "second")).ok());
  ASSERT_TRUE(oob_side->WaitForMessage(hello, "second"));
  ASSERT_TRUE(lan_writer->transport()->Publish(Msg(std::string(kGw) + "hub-a/delta", "lan")).ok());
  ASSERT_TRUE(a_delta->WaitForMessage(std::string(kGw) + "hub-a/delta", "lan"));
  EXPECT_FALSE(a_delta->Saw(std::string(kGw) + "hub-a/delta", "x"));
  EXPECT_FALSE(oob_all->Saw(std::string(kGw) + "hub-a/delta"));
}

TEST_F(AclTest, TheReaderAccountSeesStatusAndEventsOnly) {
  auto viewer = As("hub-viewer", {"hubsync/#"});
  auto a = As("hub-a", {});
  ASSERT_TRUE(a->transport()->Publish(Msg(std::string(kGw) + "hub-a/ack", "secret-ish")).ok());
  ASSERT_TRUE(a->transport()->Publish(Msg(std::string(kGw) + "hub-a/status", "s")).ok());
  ASSERT_TRUE(viewer->WaitForMessage(std::string(kGw) + "hub-a/status", "s"));
  EXPECT_FALSE(viewer->Saw(std::string(kGw) + "hub-a/ack"));
}

// Issue 8, finding 3: the OOB listener was anonymous, so any local process
// could read a backup's hello and answer it. Now it takes only the hub's
// gateway accounts; anonymous clients and the reader get nothing.
TEST_F(AclTest, TheOobListenerTakesOnlyGatewayAccounts) {
  const std::string hello = "hubsync/v1/home-1/oob/hub-a/hello";
  std::string anon = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(oob_) + " -t " + hello +
                     " -m x 2>/dev/null";
  EXPECT_NE(std::system(anon.c_str()), 0) << "anonymous access to the OOB listener";
  Recorder anonymous(Recorder::Options(Oob()), {"hubsync/#"}, nullptr, true, 3000);
  EXPECT_FALSE(anonymous.connected());
  auto gateway = std::make_unique<Recorder>(Recorder::Options(Oob(), "hub-p", Pass("hub-p")),
                                            std::vector<std::string>{"hubsync/v1/+/oob/#"});
  auto viewer = std::make_unique<Recorder>(
      Recorder::Options(Oob(), "hub-viewer", Pass("hub-viewer")),
      std::vector<std::string>{"hubsync/v1/+/oob/#"});
  ASSERT_TRUE(gateway->connected());
  ASSERT_TRUE(viewer->transport()->Publish(Msg(hello, "from the reader")).ok());
  auto backup = std::make_unique<Recorder>(Recorder::Options(Oob(), "hub-a", Pass("hub-a")),
                                           std::vector<std::string>{});
  ASSERT_TRUE(backup->transport()->Publish(Msg(hello, "from hub-a")).ok());
  ASSERT_TRUE(gateway->WaitForMessage(hello, "from hub-a"));
  EXPECT_FALSE(gateway->Saw(hello, "from the reader"));
  EXPECT_FALSE(viewer->Saw(hello));
}

// Issue 8: the `pattern` lines applied to every account, so the reader
// could write a status of its own (and any account a policy, had a pattern
// allowed it). Now the reader writes nothing, a backup writes no policy, and
// only the admin account does.
TEST_F(AclTest, TheReaderWritesNothingAndOnlyTheAdminWritesPolicies) {
  auto p = As("hub-p", {std::string(kGw) + "+/status", "hubsync/v1/+/policy/#"});
  auto admin = As("hub-admin", {"hubsync/v1/+/events"});
  auto viewer = As("hub-viewer", {});
  auto a = As("hub-a", {});
  const std::string policy = "hubsync/v1/home-1/policy/";
  ASSERT_TRUE(viewer->transport()->Publish(Msg(std::string(kGw) + "hub-viewer/status", "v")).ok());
  ASSERT_TRUE(viewer->transport()->Publish(Msg("hubsync/v1/home-1/events", "v")).ok());
  ASSERT_TRUE(viewer->transport()->Publish(Msg(policy + "viewer", "v")).ok());
  ASSERT_TRUE(viewer->transport()->Publish(Msg(std::string(kGw) + "hub-a/delta", "v")).ok());
  ASSERT_TRUE(a->transport()->Publish(Msg(policy + "backup", "a")).ok());
  // Controls, published after: what is allowed arrives.
  ASSERT_TRUE(admin->transport()->Publish(Msg(policy + "admin", "ok")).ok());
  ASSERT_TRUE(a->transport()->Publish(Msg("hubsync/v1/home-1/events", "a-event")).ok());
  ASSERT_TRUE(a->transport()->Publish(Msg(std::string(kGw) + "hub-a/status", "a-status")).ok());
  ASSERT_TRUE(p->WaitForMessage(policy + "admin", "ok"));
  ASSERT_TRUE(admin->WaitForMessage("hubsync/v1/home-1/events", "a-event"));
  ASSERT_TRUE(p->WaitForMessage(std::string(kGw) + "hub-a/status", "a-status"));
  EXPECT_FALSE(p->Saw(std::string(kGw) + "hub-viewer/status"));
  EXPECT_FALSE(p->Saw(policy + "viewer"));
  EXPECT_FALSE(p->Saw(policy + "backup"));
  EXPECT_FALSE(admin->Saw("hubsync/v1/home-1/events", "v"));
}

// Issue 8, finding 6: client ids were not bound to accounts, so the reader
// connecting with the primary's client id kicked the primary off. The LAN
// listener now takes the username as the client id.
TEST_F(AclTest, NoAccountCanTakeAnotherAccountsSession) {
  auto primary = As("hub-p", {std::string(kGw) + "hub-a/status"}, "hubsync-home-1-hub-p");
  ASSERT_TRUE(primary->connected());
  auto thief = As("hub-viewer", {}, "hubsync-home-1-hub-p");
  auto thief2 = As("hub-a", {}, "hubsync-home-1-hub-p");
  ASSERT_TRUE(thief->connected());
  ASSERT_TRUE(thief2->connected());
  ASSERT_TRUE(thief2->transport()->Publish(Msg(std::string(kGw) + "hub-a/status", "after")).ok());
  ASSERT_TRUE(primary->WaitForMessage(std::string(kGw) + "hub-a/status", "after"));
  EXPECT_EQ(primary->drops(), 0);
  EXPECT_TRUE(primary->connected());
  EXPECT_EQ(thief->drops(), 0);
}

// Issue 8, finding 4: the shipped LAN listener was plaintext, so every
// broker password crossed the LAN in clear, and the client did not check the
// server's name. Now the LAN listener speaks TLS only, and the client
// verifies the chain and the host name.
TEST_F(AclTest, TheLanListenerSpeaksOnlyTlsAndTheClientVerifiesIt) {
  // Plaintext to the LAN port: no session (the password is never sent in clear).
  std::string plain = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(lan_) + " -u hub-a -P " +
                      Pass("hub-a") + " -t hubsync/v1/home-1/events -m x 2>/dev/null";
  EXPECT_NE(std::system(plain.c_str()), 0);
  Recorder plain_client(Recorder::Options("tcp://127.0.0.1:" + std::to_string(lan_), "hub-a",
                                          Pass("hub-a")),
                        {}, nullptr, true, 3000);
  EXPECT_FALSE(plain_client.connected());

  // A broker whose certificate names another host, and a CA we do not trust.
  testing::TempDir other;
  ASSERT_EQ(std::system((std::string(HUBSYNC_SOURCE_DIR) + "/broker-config/make-certs.sh '" +
                         other.path() + "' hub-elsewhere.local 2>/dev/null").c_str()), 0);
  int port = testing::FreePort();
  Broker wrong_name(other.Sub("broker"), port,
                    "listener " + std::to_string(port) + " 127.0.0.1\nallow_anonymous true\n"
                    "cafile " + other.Sub("ca.crt") + "\ncertfile " + other.Sub("server.crt") +
                    "\nkeyfile " + other.Sub("server.key") + "\nuser root\n");
  ASSERT_TRUE(wrong_name.up());
  Recorder by_ip(Recorder::Options(testing::LockedUri(port), "", "", other.Sub("ca.crt")), {},
                 nullptr, true, 3000);
  EXPECT_FALSE(by_ip.connected()) << "the certificate names hub-elsewhere.local, not 127.0.0.1";
  Recorder untrusted(Recorder::Options(Lan(), "hub-a", Pass("hub-a"), other.Sub("ca.crt")), {},
                     nullptr, true, 3000);
  EXPECT_FALSE(untrusted.connected()) << "the hub's certificate is not signed by that CA";
  // The right CA and name: connected.
  auto good = As("hub-a", {});
  EXPECT_TRUE(good->connected());
}

}  // namespace
}  // namespace hubsync
