// Failover (SPEC 11, issue 13), end to end with real hubsync processes and
// Mosquitto: a backup promoted while the primary is down, the old primary
// fenced when it returns (its tree kept aside, never pushed), split brain,
// promotion during an apply, and promotion refused when behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

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
  // The home in sync, then the primary killed (-9).
  void InSyncThenThePrimaryDies(bool both_standby = false) {
    MakeFailoverHome(both_standby);
    HubData(primary_.data);
    StartAll();
    ASSERT_TRUE(AllConverged());
    primary_.proc->Kill(SIGKILL);
    primary_.proc->Wait();
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
  InSyncThenThePrimaryDies();
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
  ASSERT_TRUE(Logs(primary_, "fenced: term 2 of hub-b1 beats our term 1 of hub-p")) << primary_.proc->Log();
  ASSERT_TRUE(Logs(primary_, "now backup (was primary)")) << primary_.proc->Log();
  ASSERT_TRUE(SameTree(b1(), primary_)) << primary_.proc->Log() << b1().proc->Log();
  EXPECT_EQ(ReadFile(primary_.data + "/.hubsync/kept/fenced-by-term-2-hub-b1/devices/cut-off.json"), "made while cut off")
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
  // Restarts keep the roles: the old primary, started again with its old
  // config, follows b1 at once (its stored term is b1's); b1, started again
  // by its backup unit, serves as primary (the term is its own).
  primary_.proc->Stop();
  primary_.proc->Wait();
  b1().proc->Stop();
  b1().proc->Wait();
  Start(primary_, "primary");
  Start(b1(), "backup");
  ASSERT_TRUE(Logs(primary_, "not serving: this hub knows term 2 of hub-b1; following it as its backup"))
      << primary_.proc->Log();
  ASSERT_TRUE(Logs(b1(), "this hub is the primary of term 2 of hub-b1 (promoted)")) << b1().proc->Log();
  WriteFile(b1().data + "/scenes/after-restarts.json", "still b1");
  for (Gateway* g : {&primary_, &b2()}) {
    ASSERT_TRUE(WaitFor([&] { return ReadFile(g->data + "/scenes/after-restarts.json") == "still b1"; },
                        kConvergeMs))
        << g->id << "\n" << g->proc->Log() << b1().proc->Log();
  }
  EXPECT_EQ(ReadFile(primary_.data + "/.hubsync/kept/fenced-by-term-2-hub-b1/devices/cut-off.json"),
            "made while cut off") << "kept once, at the fencing";
}

// Fencing alone, deterministic: the backup already follows term 2 (as
// after a failover the old primary missed); the old primary's request is
// refused with a sealed answer naming that term, and it stops at once:
// nothing of its tree reaches the backup, its status says fenced, and it
// stays fenced after a restart. (No key from hub-x: it stays idle.)
TEST_F(FailoverTest, ABackupOnAHigherTermRefusesTheOldPrimaryWhichStopsServing) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  WriteFile(primary_.data + "/devices/lamp.json", "from the old primary");
  testing::MkdirP(b.state);
  WriteFile(b.state + "/term", "hubsync-term v1\n2 hub-x\n");
  chmod((b.state + "/term").c_str(), 0600);
  Recorder events(Recorder::Options(broker_->uri()), {"hubsync/v1/home-1/events"});
  StartAll();
  ASSERT_TRUE(Logs(primary_, "fenced: term 2 of hub-x beats our term 1 of hub-p; this hub serves no more"))
      << primary_.proc->Log() << b.proc->Log();
  ASSERT_TRUE(Logs(primary_, "no key made by hub-x for us: idle"));
  EXPECT_TRUE(Logs(b, "from term 1 of hub-p, below term 2 of hub-x")) << b.proc->Log();
  ASSERT_TRUE(events.WaitForPayloadWith({"\"type\":\"fenced\"", "\"primary\":\"hub-x\""}, 10000));
  WriteFile(primary_.data + "/devices/later.json", "after the fencing");
  std::string out;
  ASSERT_TRUE(WaitFor([&] { Tool({"status", "-c", primary_.config, "--json"}, &out);
                            return out.find("\"state\":\"fenced\"") != std::string::npos; }, 10000)) << out;
  EXPECT_FALSE(WaitFor([&] { return access((b.data + "/devices/lamp.json").c_str(), F_OK) == 0 ||
                                    access((b.data + "/devices/later.json").c_str(), F_OK) == 0; }, 1500))
      << "nothing of the old primary's tree reached the backup";
  primary_.proc->Stop();
  primary_.proc->Wait();
  Start(primary_, "primary");
  ASSERT_TRUE(Logs(primary_, "not serving: this hub knows term 2 of hub-x; it stays idle")) << primary_.proc->Log();
}

// Two backups promoted while cut off from each other (the broker is down;
// each may take over and holds a key the other made): both take term 2.
// When they hear of each other the tie goes to the smaller id; the other
// stops serving, keeps its tree (with what it changed meanwhile) aside and
// follows. Status names the winner.
TEST_F(FailoverTest, TwoPromotionsAtOnceEndWithOnePrimaryTheSmallerIdOnATie) {
  InSyncThenThePrimaryDies(/*both_standby=*/true);
  broker_->Kill9();
  std::string out;
  ASSERT_EQ(Promote(b1(), &out), 0) << out << b1().proc->Log();
  ASSERT_EQ(Promote(b2(), &out), 0) << out << b2().proc->Log();
  EXPECT_NE(out.find("hub-b2 is the primary of home home-1 in term 2"), std::string::npos) << out;
  WriteFile(b2().data + "/scenes/during-split.json", "b2");
  ASSERT_TRUE(Logs(b2(), "now primary (was backup)"));
  broker_->Start();
  ASSERT_TRUE(Logs(b2(), "fenced: term 2 of hub-b1 beats our term 2 of hub-b2")) << b2().proc->Log();
  ASSERT_TRUE(Logs(b2(), "now backup (was primary)")) << b2().proc->Log();
  EXPECT_EQ(b1().proc->Log().find("fenced"), std::string::npos) << b1().proc->Log();
  EXPECT_EQ(ReadFile(b2().data + "/.hubsync/kept/fenced-by-term-2-hub-b1/scenes/during-split.json"), "b2");
  WriteFile(b1().data + "/scenes/winner.json", "b1");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b2().data + "/scenes/winner.json") == "b1"; }, kConvergeMs))
      << b1().proc->Log() << b2().proc->Log();
  EXPECT_EQ(access((b1().data + "/scenes/during-split.json").c_str(), F_OK), -1) << "never pushed";
  EXPECT_EQ(access((b2().data + "/scenes/during-split.json").c_str(), F_OK), -1) << "b1's tree won";
  ASSERT_TRUE(WaitFor([&] {
    // 3: P, configured on b1, is down.
    return Tool({"status", "-c", b1().config}, &out) == 3 &&
           out.find("primary: hub-b1 (term 2)") != std::string::npos &&
           out.find("hub-b2               backup   in_sync      2") != std::string::npos &&
           out.find("WARNING") == std::string::npos;
  }, kConvergeMs)) << out;
  std::printf("status after the split:\n%s", out.c_str());
}

// Promotion refused when the backup knows it is behind its primary's last
// announced root (a policy held a change back); --force promotes it and
// says what is lost.
TEST_F(FailoverTest, APromotionBehindThePrimaryIsRefusedAndForceSaysWhatIsLost) {
  MakeFailoverHome();
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  PublishPolicy("db", R"({"paths":["db/**"],"delay_ms":86400000})");
  ASSERT_TRUE(PrimaryLogs("policy db applied"));
  WriteFile(primary_.data + "/db/held.sqlite", "held back a day");
  ASSERT_TRUE(WaitFor([&] { std::string out; Tool({"status", "-c", primary_.config}, &out);
                            return out.find("hub-b1               backup   pending") != std::string::npos; },
                      kConvergeMs)) << b1().proc->Log();
  primary_.proc->Kill(SIGKILL);
  primary_.proc->Wait();
  // What the backup knows survives its daemon's restart (after the primary
  // died, nothing announces the root again).
  b1().proc->Stop();
  Start(b1(), "backup");
  ASSERT_TRUE(WaitFor([&] {
    std::string log = b1().proc->Log();
    size_t first = log.find("started as backup");
    return first != std::string::npos && log.find("started as backup", first + 1) != std::string::npos;
  }, kConvergeMs)) << b1().proc->Log();
  std::string out;
  EXPECT_EQ(Promote(b1(), &out), 1) << out;
  EXPECT_NE(out.find("refused: this hub is behind hub-p"), std::string::npos) << out;
  EXPECT_NE(out.find("--force"), std::string::npos) << out;
  EXPECT_EQ(b1().proc->Log().find("now primary"), std::string::npos) << "still a backup";
  ASSERT_EQ(Promote(b1(), &out, /*force=*/true), 0) << out << b1().proc->Log();
  EXPECT_NE(out.find("forced: this hub is behind hub-p"), std::string::npos) << out;
  EXPECT_NE(out.find("the changes it lacked are lost"), std::string::npos) << out;
  ASSERT_TRUE(Logs(b1(), "forced although this hub is behind hub-p")) << b1().proc->Log();
  ASSERT_TRUE(Logs(b1(), "now primary (was backup)"));
  WriteFile(b1().data + "/scenes/forced.json", "yes");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b2().data + "/scenes/forced.json") == "yes"; }, kConvergeMs));
  EXPECT_EQ(access((b2().data + "/db/held.sqlite").c_str(), F_OK), -1) << "lost with the old primary";
}

// The primary dies while a large delta is being applied: promotion discards
// the unfinished apply (the tree stays exactly old, nothing partial, staging
// empty) and the new primary brings the other backup to its own tree.
TEST_F(FailoverTest, APromotionDuringAnApplyLeavesTheTreeExactlyOldAndServesFromThere) {
  MakeFailoverHome();
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  auto old_tree = Replicated(b1().data);
  std::string big(96 << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  WriteFile(primary_.data + "/db/big.sqlite", big);
  ASSERT_TRUE(WaitFor([&] {
    for (auto& [p, v] : Snapshot(b1().data + "/.hubsync/staging")) {
      if (v.size() > 1000) return true;  // bytes staged
    }
    return false;
  }, kConvergeMs)) << b1().proc->Log();
  primary_.proc->Kill(SIGKILL);
  primary_.proc->Wait();
  std::string out;
  EXPECT_EQ(Promote(b1(), &out), 1) << "behind: the delta announced a newer root\n" << out;
  ASSERT_EQ(Promote(b1(), &out, /*force=*/true), 0) << out << b1().proc->Log();
  EXPECT_EQ(Replicated(b1().data), old_tree) << "exactly the old tree";
  EXPECT_TRUE(Snapshot(b1().data + "/.hubsync/staging").empty()) << "nothing staged is left";
  ASSERT_TRUE(SameTree(b1(), b2())) << b1().proc->Log() << b2().proc->Log();
  EXPECT_EQ(access((b2().data + "/db/big.sqlite").c_str(), F_OK), -1);
}

// The shipped broker setup (hub.conf, passwords, ACL, TLS) with b1 as a
// standby (make-passwords.sh --standby): the hub software promotes b1 over
// the broker, on the admin-only topic; a retained request is refused, and
// a read-only account cannot ask at all.
class LockedFailoverTest : public FailoverTest {
 protected:
  LockedFailoverTest() {
    locked_ = true;
    locked_accounts_ = "hub-p hub-b2 --standby hub-b1 --reader hub-viewer --admin hub-admin";
  }
  void AskToPromote(const std::string& account, const std::string& gw, bool retained) {
    Recorder client(Client(account), {});
    ASSERT_TRUE(WaitFor([&] { return client.connected(); }, 10000));
    Message m;
    m.topic = "hubsync/v1/home-1/gw/" + gw + "/promote";
    m.payload = R"({"v":1,"force":false})";
    m.retained = retained;
    client.transport()->Publish(m);
    ASSERT_TRUE(WaitFor([&] { return client.transport()->InFlight() == 0; }, 10000));
  }
};

TEST_F(LockedFailoverTest, TheHubSoftwarePromotesABackupOverTheBrokerAndTheOldPrimaryFollows) {
  InSyncThenThePrimaryDies();
  AskToPromote("hub-viewer", "hub-b1", false);  // refused by the ACL: never arrives
  // A retained request left on the broker does not promote a hub that
  // (re)starts later.
  b1().proc->Stop();
  b1().proc->Wait();
  AskToPromote("hub-admin", "hub-b1", true);
  Start(b1(), "backup");
  ASSERT_TRUE(Logs(b1(), "a retained promotion request")) << b1().proc->Log();
  EXPECT_EQ(b1().proc->Log().find("promotion asked for"), std::string::npos) << b1().proc->Log();
  {  // (the retained request is cleared, as hub software would)
    Recorder admin(Client("hub-admin"), {});
    ASSERT_TRUE(WaitFor([&] { return admin.connected(); }, 10000));
    Message clear;
    clear.topic = "hubsync/v1/home-1/gw/hub-b1/promote";
    clear.retained = true;
    admin.transport()->Publish(clear);
    ASSERT_TRUE(WaitFor([&] { return admin.transport()->InFlight() == 0; }, 10000));
  }
  AskToPromote("hub-admin", "hub-b1", false);
  ASSERT_TRUE(Logs(b1(), "now primary (was backup)")) << b1().proc->Log();
  WriteFile(b1().data + "/scenes/locked.json", "b1");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b2().data + "/scenes/locked.json") == "b1"; }, kConvergeMs))
      << b1().proc->Log() << b2().proc->Log();
  Start(primary_, "primary");
  ASSERT_TRUE(Logs(primary_, "now backup (was primary)")) << primary_.proc->Log();
  ASSERT_TRUE(SameTree(b1(), primary_)) << primary_.proc->Log() << b1().proc->Log();
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    return Tool({"status", "-c", b1().config, "--set", "broker.username=hub-viewer", "--set",
                 "broker.password_file=" + root_.Sub("broker/hub-viewer.pass")}, &out) == 0 &&
           out.find("primary: hub-b1 (term 2)") != std::string::npos;
  }, kConvergeMs)) << out << b1().proc->Log();
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
