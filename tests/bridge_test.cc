// Two hubs' OOB brokers joined by two `hubsync bridge` processes over an
// AF_UNIX SOCK_SEQPACKET link (the stand-in for the L2CAP channel).
#include <gtest/gtest.h>

#include "harness.h"

namespace hubsync {
namespace {

using testing::Broker;
using testing::Process;
using testing::Recorder;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_oob_ = std::make_unique<Broker>(tmp_.Sub("oob-primary"));
    backup_oob_ = std::make_unique<Broker>(tmp_.Sub("oob-backup"));
    ASSERT_TRUE(primary_oob_->up() && backup_oob_->up());
    link_ = "unix:" + tmp_.Sub("ble.sock");
    // The primary's bridge listens; the backup's connects. Both serve hub-b.
    primary_cfg_ = Config("hub-p", primary_oob_->uri(), true, "hub-b");
    backup_cfg_ = Config("hub-b", backup_oob_->uri(), false, "");
    StartPrimaryBridge();
    backup_bridge_ = Bridge(backup_cfg_, "bridge-b.log");
  }
  std::string Config(const std::string& id, const std::string& oob, bool listen,
                     const std::string& backup) {
    std::string dir = tmp_.Sub(id);
    testing::MkdirP(dir + "/data");
    std::string path = dir + "/config.json";
    WriteFile(path, R"({"home":"home-1","gateway_id":")" + id +
                        R"(","broker":{"uri":"tcp://127.0.0.1:1"},"oob":{"uri":")" + oob +
                        R"("},"data_dir":")" + dir + R"(/data","state_dir":")" + dir +
                        R"(/state","bridge":{"link":")" + link_ + R"(","listen":)" +
                        (listen ? "true" : "false") +
                        (backup.empty() ? "" : R"(,"backup":")" + backup + "\"") +
                        R"(},"log_level":"debug"})");
    return path;
  }
  std::unique_ptr<Process> Bridge(const std::string& config, const std::string& log) {
    auto p = std::make_unique<Process>(
        std::vector<std::string>{HUBSYNC_BINARY, "bridge", "-c", config}, tmp_.Sub(log));
    p->Start();
    return p;
  }
  void StartPrimaryBridge() { primary_bridge_ = Bridge(primary_cfg_, "bridge-p.log"); }
  // Publishes until it arrives (the bridges may still be connecting).
  bool Carried(Recorder& from, Recorder& to, const std::string& topic, const std::string& payload) {
    Message m;
    m.topic = topic;
    m.payload = payload;
    from.transport()->Publish(m);
    return to.WaitForMessage(topic, payload);
  }
  int Count(Recorder& r, const std::string& topic) {
    int n = 0;
    for (const auto& m : r.messages()) n += m.topic == topic;
    return n;
  }
  std::string Logs() {
    return testing::ReadFile(tmp_.Sub("bridge-p.log")) + testing::ReadFile(tmp_.Sub("bridge-b.log"));
  }

  TempDir tmp_;
  std::unique_ptr<Broker> primary_oob_, backup_oob_;
  std::string link_, primary_cfg_, backup_cfg_;
  std::unique_ptr<Process> primary_bridge_, backup_bridge_;
};

const char kHello[] = "hubsync/v1/home-1/oob/hub-b/hello";
const char kWelcome[] = "hubsync/v1/home-1/oob/hub-b/welcome";

TEST_F(BridgeTest, CarriesHelloAndWelcomeBothWaysWithoutLoops) {
  Recorder at_backup(Recorder::Options(backup_oob_->uri()), {"hubsync/#"});
  Recorder at_primary(Recorder::Options(primary_oob_->uri()), {"hubsync/#"});
  Recorder backup_pub(Recorder::Options(backup_oob_->uri()), {});
  Recorder primary_pub(Recorder::Options(primary_oob_->uri()), {});
  std::string big(5000, 'k');  // several frames at the 672-byte MTU
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, big)) << Logs();
  ASSERT_TRUE(Carried(primary_pub, at_backup, kWelcome, "welcome")) << Logs();
  // Exactly once on each side: the republished copy was not sent back.
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, "marker")) << Logs();
  EXPECT_EQ(Count(at_primary, kHello), 2);
  EXPECT_EQ(Count(at_backup, kHello), 2);  // its own two publishes, no echo
  EXPECT_EQ(Count(at_backup, kWelcome), 1);
  EXPECT_EQ(Count(at_primary, kWelcome), 1);
}

// A backup's hub with a link to its primary and one to a standby (SPEC 11)
// runs two bridges for the same backup under the same account: both stay
// connected, and its hello reaches both hubs.
TEST_F(BridgeTest, TwoLinksOfOneHubForOneBackupStaySideBySide) {
  Broker standby_oob(tmp_.Sub("oob-standby"));
  ASSERT_TRUE(standby_oob.up());
  std::string link2 = "unix:" + tmp_.Sub("ble-standby.sock");
  std::string standby_cfg = Config("hub-s", standby_oob.uri(), true, "hub-b");
  auto standby_bridge = std::make_unique<Process>(
      std::vector<std::string>{HUBSYNC_BINARY, "bridge", "-c", standby_cfg, "--set",
                               "bridge.link=" + link2},
      tmp_.Sub("bridge-s.log"));
  standby_bridge->Start();
  auto second = std::make_unique<Process>(
      std::vector<std::string>{HUBSYNC_BINARY, "bridge", "-c", backup_cfg_, "--set",
                               "bridge.link=" + link2},
      tmp_.Sub("bridge-b2.log"));
  second->Start();
  Recorder at_primary(Recorder::Options(primary_oob_->uri()), {"hubsync/#"});
  Recorder at_standby(Recorder::Options(standby_oob.uri()), {"hubsync/#"});
  Recorder at_backup(Recorder::Options(backup_oob_->uri()), {"hubsync/#"});
  Recorder backup_pub(Recorder::Options(backup_oob_->uri()), {});
  Recorder standby_pub(Recorder::Options(standby_oob.uri()), {});
  std::string logs = tmp_.Sub("bridge-b2.log");
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, "one")) << Logs();
  ASSERT_TRUE(Carried(backup_pub, at_standby, kHello, "two")) << testing::ReadFile(logs);
  ASSERT_TRUE(Carried(standby_pub, at_backup, kWelcome, "from the standby"))
      << testing::ReadFile(logs);
  // Neither bridge took the other's session.
  std::string all = Logs() + testing::ReadFile(logs);
  EXPECT_EQ(all.find("lost the OOB broker"), std::string::npos) << all;
}

TEST_F(BridgeTest, OnlyThisBackupsTopicsCross) {
  Recorder at_primary(Recorder::Options(primary_oob_->uri()), {"hubsync/#"});
  Recorder backup_pub(Recorder::Options(backup_oob_->uri()), {});
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, "first")) << Logs();
  Message other;
  other.topic = "hubsync/v1/home-1/oob/hub-other/hello";
  other.payload = "impersonation";
  backup_pub.transport()->Publish(other);
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, "after")) << Logs();
  EXPECT_EQ(Count(at_primary, other.topic), 0);
}

TEST_F(BridgeTest, ReconnectsAfterThePeerBridgeRestarts) {
  Recorder at_primary(Recorder::Options(primary_oob_->uri()), {"hubsync/#"});
  Recorder backup_pub(Recorder::Options(backup_oob_->uri()), {});
  ASSERT_TRUE(Carried(backup_pub, at_primary, kHello, "before")) << Logs();
  primary_bridge_->Kill(SIGKILL);
  StartPrimaryBridge();
  EXPECT_TRUE(WaitFor([&] {
    Message m;
    m.topic = kHello;
    m.payload = "after restart";
    backup_pub.transport()->Publish(m);
    return testing::WaitFor([&] { return at_primary.Saw(kHello, "after restart"); }, 300);
  }, 15000)) << Logs();
}

TEST_F(BridgeTest, MissingOrBadSettingsExitTwo) {
  std::string bad = tmp_.Sub("bad.json");
  WriteFile(bad, R"({"home":"home-1","gateway_id":"x","broker":{"uri":"tcp://127.0.0.1:1"},)"
                 R"("data_dir":")" + tmp_.path() + R"(","state_dir":")" + tmp_.Sub("s") +
                 R"(","bridge":{"link":"l2cap:nonsense"},"oob":{"uri":"tcp://127.0.0.1:2"}})");
  Process p({HUBSYNC_BINARY, "bridge", "-c", bad}, tmp_.Sub("bad.log"));
  p.Start();
  EXPECT_EQ(p.Wait(), 2);
  EXPECT_NE(testing::ReadFile(tmp_.Sub("bad.log")).find("bridge.link"), std::string::npos);
}

}  // namespace
}  // namespace hubsync
