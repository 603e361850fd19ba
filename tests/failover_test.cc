// Failover (SPEC 11, issue 13), end to end with real hubsync processes and
// Mosquitto: a backup promoted while the primary is down, the old primary
// fenced when it returns (its tree kept aside, never pushed), split brain,
// promotion during an apply, and promotion refused when behind.
#include <gtest/gtest.h>
#include <signal.h>

#include "home_fixture.h"

namespace hubsync {
namespace testing {
namespace {

class FailoverTest : public HomeTest {
 protected:
  // P serves b1 and b2; b1 may take over and then serves b2 and P (keys
  // b1 made, installed on b2 and P); with `both_standby`, b2 may too.
  void MakeFailoverHome(bool both_standby = false) {
    primary_ = MakeGateway("hub-p", {"hub-b1", "hub-b2"});
    backups_["hub-b1"] = MakeGateway("hub-b1", {"hub-b2", "hub-p"});
    backups_["hub-b2"] = MakeGateway("hub-b2", both_standby ? std::vector<std::string>{"hub-b1", "hub-p"}
                                                            : std::vector<std::string>{});
    Provision(primary_, backups_["hub-b1"]);
    Provision(primary_, backups_["hub-b2"]);
    Provision(backups_["hub-b1"], backups_["hub-b2"]);
    Provision(backups_["hub-b1"], primary_);
    if (both_standby) {
      Provision(backups_["hub-b2"], backups_["hub-b1"]);
      Provision(backups_["hub-b2"], primary_);
    }
  }
  // `maker` makes a key for `peer` (keygen) which `peer` installs (keyimport).
  void Provision(const Gateway& maker, const Gateway& peer) {
    std::string key = root_.Sub(maker.id + "-for-" + peer.id + ".key");
    std::string out;
    ASSERT_EQ(Tool({"keygen", "-c", maker.config, "--backup", peer.id, "--out", key}, &out), 0) << out;
    ASSERT_EQ(Tool({"keyimport", "-c", peer.config, key}, &out), 0) << out;
    EXPECT_NE(out.find("with " + maker.id), std::string::npos) << out;
  }
  Gateway& b1() { return backups_["hub-b1"]; }
  Gateway& b2() { return backups_["hub-b2"]; }
  bool SameTree(const Gateway& a, const Gateway& b, int timeout_ms = kConvergeMs) {
    return WaitFor([&] { return Replicated(a.data) == Replicated(b.data); }, timeout_ms);
  }
  bool Logs(const Gateway& g, const std::string& text, int timeout_ms = kConvergeMs) {
    return WaitFor([&] { return g.proc->Log().find(text) != std::string::npos; }, timeout_ms);
  }
  int Promote(const Gateway& g, std::string* out, bool force = false) {
    std::vector<std::string> args = {"promote", "-c", g.config, "--timeout", "30"};
    if (force) args.push_back("--force");
    return Tool(args, out);
  }
};

TEST_F(FailoverTest, APromotedBackupServesTheOtherAndTheReturningPrimaryIsFencedAndKeptAside) {
  MakeFailoverHome();
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());

  // The primary fails.
  primary_.proc->Kill(SIGKILL);
  primary_.proc->Wait();
  std::string out;
  ASSERT_EQ(Promote(b1(), &out), 0) << out << b1().proc->Log();
  EXPECT_NE(out.find("hub-b1 is the primary of home home-1 in term 2"), std::string::npos) << out;
  ASSERT_TRUE(Logs(b1(), "now primary (was backup)")) << b1().proc->Log();

  // It serves b2 under the standby key, in term 2.
  WriteFile(b1().data + "/scenes/after-failover.json", "b1");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b2().data + "/scenes/after-failover.json") == "b1"; },
                      kConvergeMs))
      << b1().proc->Log() << b2().proc->Log();
  ASSERT_TRUE(Logs(b2(), "following term 2 of hub-b1")) << b2().proc->Log();

  // The old primary comes back with its old config, holding a change made
  // while it was cut off: it is refused everywhere, fenced, keeps its tree
  // aside and becomes b1's backup.
  WriteFile(primary_.data + "/devices/cut-off.json", "made while cut off");
  auto b1_before = Replicated(b1().data);
  Start(primary_, "primary");
  ASSERT_TRUE(Logs(primary_, "fenced: ")) << primary_.proc->Log();
  ASSERT_TRUE(Logs(primary_, "now backup (was primary)")) << primary_.proc->Log();
  ASSERT_TRUE(SameTree(b1(), primary_)) << primary_.proc->Log() << b1().proc->Log();
  EXPECT_EQ(ReadFile(primary_.data + "/.hubsync/kept/term-1/devices/cut-off.json"), "made while cut off")
      << "the change made while cut off is kept aside";
  EXPECT_NE(primary_.proc->Log().find("kept aside"), std::string::npos);
  EXPECT_EQ(access((b1().data + "/devices/cut-off.json").c_str(), F_OK), -1) << "never pushed";
  EXPECT_EQ(access((b2().data + "/devices/cut-off.json").c_str(), F_OK), -1) << "never pushed";
  EXPECT_EQ(Replicated(b1().data), b1_before) << "the old primary never changed the new one";

  // Status, from the new primary's side: b1 primary in term 2, P and b2 its
  // backups, all in sync.
  ASSERT_TRUE(WaitFor([&] { return Tool({"status", "-c", b1().config}, &out) == 0; }, kConvergeMs)) << out;
  EXPECT_NE(out.find("primary: hub-b1 (term 2)"), std::string::npos) << out;
  EXPECT_EQ(out.find("WARNING"), std::string::npos) << out;
  std::printf("status after the failover:\n%s", out.c_str());
  // A restart of the old primary with its old config stays a follower: its
  // stored term is b1's.
  primary_.proc->Stop();
  primary_.proc->Wait();
  Start(primary_, "primary");
  ASSERT_TRUE(Logs(primary_, "not serving: this hub knows term 2 of hub-b1")) << primary_.proc->Log();
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
