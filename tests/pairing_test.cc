// Out-of-band pairing end to end: the primary's hub broker (LAN), each hub's
// own OOB broker, two `hubsync bridge` processes joined by an AF_UNIX link,
// and daemons that start with no key at all.
#include <gtest/gtest.h>

#include "harness.h"
#include "hubsync/keystore.h"

namespace hubsync {
namespace {

using testing::Broker;
using testing::Process;
using testing::Snapshot;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

class PairingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lan_ = std::make_unique<Broker>(tmp_.Sub("lan"));
    primary_oob_ = std::make_unique<Broker>(tmp_.Sub("oob-p"));
    backup_oob_ = std::make_unique<Broker>(tmp_.Sub("oob-b"));
    ASSERT_TRUE(lan_->up() && primary_oob_->up() && backup_oob_->up());
  }
  std::string Config(const std::string& id, const std::string& oob, const std::string& extra) {
    std::string dir = tmp_.Sub(id);
    testing::MkdirP(dir + "/data");
    std::string path = dir + "/config.json";
    WriteFile(path, R"({"home":"home-1","gateway_id":")" + id + R"(","broker":{"uri":")" +
                        lan_->uri() + R"("},"oob":{"uri":")" + oob + R"("},"data_dir":")" + dir +
                        R"(/data","state_dir":")" + dir + R"(/state","log_level":"debug")" +
                        extra + "}");
    return path;
  }
  std::unique_ptr<Process> Run(const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> argv = {HUBSYNC_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = std::make_unique<Process>(argv, tmp_.Sub(log));
    p->Start();
    return p;
  }
  int Tool(const std::vector<std::string>& args) { return Run(args, "tool.log")->Wait(); }
  // Bridges for backup `b` between the two OOB brokers.
  void Bridges(const std::string& b) { Bridges(b, "p", *primary_oob_, *backup_oob_); }
  // Bridges carrying backup `b`'s pairing between the hub `from` (whose OOB
  // broker is `near`) and b's hub (`far`).
  void Bridges(const std::string& b, const std::string& from, Broker& near, Broker& far) {
    std::string name = from + "-" + b;
    std::string link = "unix:" + tmp_.Sub("ble-" + name + ".sock");
    std::string pb = Config("bridge-" + name, near.uri(),
                            R"(,"bridge":{"link":")" + link + R"(","listen":true,"backup":")" + b + "\"}");
    std::string bb = Config("bridge-" + b + "-" + from, far.uri(),
                            R"(,"bridge":{"link":")" + link + R"(","listen":false,"backup":")" + b + "\"}");
    procs_.push_back(Run({"bridge", "-c", pb}, "bridge-" + name + ".log"));
    procs_.push_back(Run({"bridge", "-c", bb}, "bridge-" + b + "-" + from + ".log"));
  }
  std::string Data(const std::string& id) { return tmp_.Sub(id + "/data"); }
  bool Same(const std::string& b, int ms = 30000) {
    return WaitFor([&] { return Snapshot(Data("hub-p")) == Snapshot(Data(b)); }, ms);
  }
  std::string Logs(const std::string& b) {
    return "--- primary\n" + testing::ReadFile(tmp_.Sub("primary.log")) + "--- " + b + "\n" +
           testing::ReadFile(tmp_.Sub(b + ".log"));
  }

  TempDir tmp_;
  std::unique_ptr<Broker> lan_, primary_oob_, backup_oob_;
  std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(PairingTest, BackupWithoutAKeyPairsThroughTheBridgesAndSyncs) {
  std::string pc = Config("hub-p", primary_oob_->uri(), R"(,"backups":["hub-b1"])");
  std::string bc = Config("hub-b1", backup_oob_->uri(), "");
  WriteFile(Data("hub-p") + "/devices/lamp.json", "{}");
  Bridges("hub-b1");
  procs_.push_back(Run({"primary", "-c", pc}, "primary.log"));
  procs_.push_back(Run({"backup", "-c", bc}, "hub-b1.log"));
  ASSERT_TRUE(Same("hub-b1")) << Logs("hub-b1");
  // Both hold the same key; no key file was ever copied by hand.
  auto kp = testing::KeysIn(tmp_.Sub("hub-p/state"), "hub-b1");
  auto kb = testing::KeysIn(tmp_.Sub("hub-b1/state"), "hub-b1");
  ASSERT_TRUE(kp.ok() && kb.ok());
  EXPECT_EQ(kp->back().key, kb->back().key);
  EXPECT_EQ(kp->back().epoch, 1u);

  // Rotation with `hubsync pair` on the backup, under a running sync.
  WriteFile(Data("hub-p") + "/db/big.bin", std::string(8 << 20, 'r'));
  ASSERT_EQ(Tool({"pair", "-c", bc, "--timeout", "30"}), 0)
      << testing::ReadFile(tmp_.Sub("tool.log")) << Logs("hub-b1");
  WriteFile(Data("hub-p") + "/after-rotation.json", "2");
  ASSERT_TRUE(Same("hub-b1")) << Logs("hub-b1");
  kp = testing::KeysIn(tmp_.Sub("hub-p/state"), "hub-b1");
  kb = testing::KeysIn(tmp_.Sub("hub-b1/state"), "hub-b1");
  EXPECT_EQ(kp->back().epoch, 2u);
  EXPECT_EQ(kp->back().key, kb->back().key);

  // Revocation: no more data for it. The primary says so when the change
  // comes (positive evidence, not only a timeout), and nothing arrives.
  ASSERT_EQ(Tool({"unpair", "-c", pc, "hub-b1"}), 0);
  EXPECT_FALSE(testing::KeysIn(tmp_.Sub("hub-p/state"), "hub-b1").ok());
  WriteFile(Data("hub-p") + "/after-unpair.json", "secret");
  ASSERT_TRUE(testing::WaitFor([&] {
    return testing::ReadFile(tmp_.Sub("primary.log")).find("no usable key for backup hub-b1") !=
           std::string::npos;
  }, 10000)) << Logs("hub-b1");
  WriteFile(Data("hub-p") + "/marker.json", "x");
  EXPECT_FALSE(Same("hub-b1", 3000));
  EXPECT_EQ(access((Data("hub-b1") + "/after-unpair.json").c_str(), F_OK), -1);
}

TEST_F(PairingTest, TakingABackupOutOfTheConfigRevokesItsKey) {
  std::string pc = Config("hub-p", primary_oob_->uri(), R"(,"backups":["hub-b1"])");
  std::string bc = Config("hub-b1", backup_oob_->uri(), "");
  WriteFile(Data("hub-p") + "/a.json", "{}");
  Bridges("hub-b1");
  procs_.push_back(Run({"primary", "-c", pc}, "primary.log"));
  procs_.push_back(Run({"backup", "-c", bc}, "hub-b1.log"));
  ASSERT_TRUE(Same("hub-b1")) << Logs("hub-b1");
  procs_[2]->Stop();  // the primary
  pc = Config("hub-p", primary_oob_->uri(), R"(,"backups":[])");
  procs_.push_back(Run({"primary", "-c", pc}, "primary2.log"));
  ASSERT_TRUE(WaitFor([&] {
    return !testing::KeysIn(tmp_.Sub("hub-p/state"), "hub-b1").ok();
  }, 10000));
  WriteFile(Data("hub-p") + "/b.json", "not for hub-b1 any more");
  EXPECT_FALSE(Same("hub-b1", 3000));
}

TEST_F(PairingTest, AnUnlistedBackupIsRefusedUntilAWindowOpens) {
  std::string pc = Config("hub-p", primary_oob_->uri(), R"(,"backups":[])");
  std::string bc = Config("hub-new", backup_oob_->uri(), "");
  WriteFile(Data("hub-p") + "/scene.json", "{}");
  Bridges("hub-new");
  procs_.push_back(Run({"primary", "-c", pc}, "primary.log"));
  procs_.push_back(Run({"backup", "-c", bc}, "hub-new.log"));
  ASSERT_TRUE(WaitFor([&] {
    return testing::ReadFile(tmp_.Sub("primary.log")).find("refused pairing with hub-new") !=
           std::string::npos;
  }, 20000)) << Logs("hub-new");
  EXPECT_FALSE(testing::KeysIn(tmp_.Sub("hub-new/state"), "hub-new").ok());
  // The pairing button: the backup's next hello is accepted.
  ASSERT_EQ(Tool({"pair", "-c", pc, "--window", "60"}), 0);
  ASSERT_TRUE(Same("hub-new")) << Logs("hub-new");
}

// SPEC 11: a standby (a backup that lists the hubs it would serve) agrees
// its keys with them through the bridges like a primary does, and serves
// them with those keys once promoted.
TEST_F(PairingTest, AStandbyAgreesKeysThroughTheBridgesAndServesWithThemWhenPromoted) {
  Broker standby_oob(tmp_.Sub("oob-s"));
  ASSERT_TRUE(standby_oob.up());
  std::string pc = Config("hub-p", primary_oob_->uri(), R"(,"backups":["hub-b1","hub-b2"])");
  std::string sc = Config("hub-b1", standby_oob.uri(), R"(,"backups":["hub-b2"])");
  std::string bc = Config("hub-b2", backup_oob_->uri(), "");
  WriteFile(Data("hub-p") + "/devices/lamp.json", "{}");
  Bridges("hub-b1", "p", *primary_oob_, standby_oob);
  Bridges("hub-b2", "p", *primary_oob_, *backup_oob_);
  Bridges("hub-b2", "s", standby_oob, *backup_oob_);
  procs_.push_back(Run({"primary", "-c", pc}, "primary.log"));
  procs_.push_back(Run({"backup", "-c", sc}, "hub-b1.log"));
  ASSERT_TRUE(Same("hub-b1")) << Logs("hub-b1");
  procs_.push_back(Run({"backup", "-c", bc}, "hub-b2.log"));
  ASSERT_TRUE(Same("hub-b2")) << Logs("hub-b2");
  // `hubsync pair` on hub-b2: one round, answered by its primary and by the
  // standby, each key proven by the hub that made it.
  std::string pair_log = tmp_.Sub("pair.log");
  ASSERT_EQ(Run({"pair", "-c", bc, "--timeout", "30"}, "pair.log")->Wait(), 0)
      << testing::ReadFile(pair_log) << Logs("hub-b2") << "--- hub-b1\n"
      << testing::ReadFile(tmp_.Sub("hub-b1.log"));
  EXPECT_NE(testing::ReadFile(pair_log).find("with hub-b1"), std::string::npos)
      << testing::ReadFile(pair_log);
  auto made = testing::KeysIn(tmp_.Sub("hub-b1/state"), "hub-b2");
  auto held = testing::KeysIn(tmp_.Sub("hub-b2/state"), "hub-b2.from-hub-b1");
  ASSERT_TRUE(made.ok() && held.ok()) << Logs("hub-b2");
  EXPECT_EQ(made->back().key, held->back().key);
  // The primary's key moved on too (the round rotated it), and differs.
  auto with_p = testing::KeysIn(tmp_.Sub("hub-b2/state"), "hub-b2");
  ASSERT_TRUE(with_p.ok());
  EXPECT_EQ(with_p->back().epoch, 2u);
  EXPECT_NE(with_p->back().key, held->back().key);
  // No key file was copied: the primary fails, the standby takes over and
  // reaches hub-b2 with the key they agreed.
  procs_[6]->Kill(SIGKILL);  // the primary
  std::string promote_log = tmp_.Sub("promote.log");
  ASSERT_EQ(Run({"promote", "-c", sc, "--timeout", "30"}, "promote.log")->Wait(), 0)
      << testing::ReadFile(promote_log) << testing::ReadFile(tmp_.Sub("hub-b1.log"));
  // Promoted, it is a primary: `hubsync pair` there opens the window.
  std::string window_log = tmp_.Sub("window.log");
  ASSERT_EQ(Run({"pair", "-c", sc, "--timeout", "5"}, "window.log")->Wait(), 0)
      << testing::ReadFile(window_log);
  EXPECT_NE(testing::ReadFile(window_log).find("pairing window open"), std::string::npos)
      << testing::ReadFile(window_log);
  WriteFile(Data("hub-b1") + "/scenes/evening.json", "{\"lights\":\"dim\"}");
  ASSERT_TRUE(WaitFor([&] { return Snapshot(Data("hub-b1")) == Snapshot(Data("hub-b2")); }, 30000))
      << Logs("hub-b2") << "--- hub-b1\n" << testing::ReadFile(tmp_.Sub("hub-b1.log"));
}

}  // namespace
}  // namespace hubsync
