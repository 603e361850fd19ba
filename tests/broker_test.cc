// How hubsync copes with the broker it is given (issue 11): reasons a person
// can act on when it refuses or cannot be reached, and a packet limit below
// max_message_bytes respected instead of a reconnect loop.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "home_fixture.h"

namespace hubsync {
namespace testing {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A TCP listener on loopback that never speaks MQTT: it either closes each
// connection at once (an MQTT 3.1.1-only broker does that to an MQTT 5
// CONNECT) or leaves it open and silent.
class FakeListener {
 public:
  explicit FakeListener(bool close_at_once) : close_(close_at_once) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 16);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) break;
        if (close_) close(c);
        else held_.push_back(c);
      }
    });
  }
  ~FakeListener() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
    for (int c : held_) close(c);
  }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  bool close_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> held_;  // the accepting thread's
  std::thread thread_;
};

TEST_F(LockedHomeTest, ARefusedLoginIsLoggedOnceWithItsReasonAndStatusSaysRefused) {
  MakeHome(1);
  Gateway& b1 = backups_["hub-b1"];
  std::string wrong = root_.Sub("wrong.pass");
  WriteFile(wrong, "not-the-password");
  std::string config = testing::ReadFile(b1.config);
  std::string right = root_.Sub("broker/hub-b1.pass");
  config.replace(config.find(right), right.size(), wrong);
  WriteFile(b1.config, config);
  Start(b1, "backup");
  // The broker turns it away again and again; the daemon says why once.
  std::string broker_log = root_.Sub("broker/mosquitto.log");
  ASSERT_TRUE(WaitFor([&] { return Count(testing::ReadFile(broker_log), "not authorised") >= 3; },
                      20000))
      << testing::ReadFile(broker_log);
  std::string log = b1.proc->Log();
  EXPECT_EQ(Count(log, "cannot connect: the broker refused the connection: "), 1u) << log;
  EXPECT_NE(log.find("(CONNACK 13"), std::string::npos) << log;  // 134 or 135
  EXPECT_NE(log.find("check broker.username and broker.password_file"), std::string::npos) << log;

  std::string out;
  EXPECT_EQ(Tool({"status", "-c", b1.config}, &out), 4) << out;
  EXPECT_NE(out.find("refused the connection"), std::string::npos) << out;
}

TEST_F(HomeTest, StatusTellsUnreachableFromSilentFromNotMqtt5) {
  MakeHome(1);
  std::string out;
  // Nothing listens on a port we just saw free.
  int port = testing::FreePort();
  EXPECT_EQ(Tool({"status", "-c", primary_.config, "--set",
                  "broker.uri=tcp://127.0.0.1:" + std::to_string(port)}, &out), 5) << out;
  EXPECT_NE(out.find("cannot reach the broker: Connection refused"), std::string::npos) << out;
  {
    FakeListener silent(false);
    EXPECT_EQ(Tool({"status", "-c", primary_.config, "--timeout", "1000", "--set",
                    "broker.uri=" + silent.uri()}, &out), 6) << out;
    EXPECT_NE(out.find("no answer from the broker"), std::string::npos) << out;
  }
  {
    FakeListener closes(true);
    EXPECT_EQ(Tool({"status", "-c", primary_.config, "--set", "broker.uri=" + closes.uri()}, &out),
              4) << out;
    EXPECT_NE(out.find("does this broker speak MQTT 5?"), std::string::npos) << out;
    // The daemon says the same, once however often it tries.
    Process daemon({HUBSYNC_BINARY, "primary", "-c", primary_.config, "--set",
                    "broker.uri=" + closes.uri()},
                   root_.Sub("closes.log"));
    daemon.Start();
    ASSERT_TRUE(WaitFor([&] { return daemon.Log().find("MQTT 5?") != std::string::npos; }, 10000));
    EXPECT_EQ(daemon.Stop(), 0);
    EXPECT_EQ(Count(daemon.Log(), "MQTT 5?"), 1u) << daemon.Log();
  }
}

class SmallPacketHomeTest : public HomeTest {
 protected:
  SmallPacketHomeTest() { broker_extra_ = "max_packet_size 65536\n"; }
};

TEST_F(SmallPacketHomeTest, ABrokerPacketLimitBelowMaxMessageBytesIsRespected) {
  MakeHome(1);
  HubData(primary_.data);
  WriteFile(primary_.data + "/db/big.bin", RandomBytesString(1 << 20, 7));
  StartAll();
  ASSERT_TRUE(AllConverged());
  std::string log = primary_.proc->Log();
  EXPECT_NE(log.find("it takes packets up to 65536 bytes"), std::string::npos) << log;
  EXPECT_NE(log.find("messages of 65024 bytes instead of max_message_bytes 262144"),
            std::string::npos) << log;
  for (const Gateway* g : {&primary_, &backups_["hub-b1"]}) {
    EXPECT_EQ(g->proc->Log().find("lost the broker"), std::string::npos) << g->proc->Log();
  }
}


// The core scenario on any broker (issue 11): initial sync, edits, a
// deletion, a rename, a large file, a policy, a backup killed, the primary
// killed, and the status command, on Mosquitto and on ejabberd's mod_mqtt.
class ScenarioTest : public HomeTest {
 protected:
  std::string Status(int* code) {
    std::string out;
    std::vector<std::string> args = {"status", "-c", primary_.config, "--set", "broker.username=hub-viewer"};
    if (locked_) {
      args.insert(args.end(), {"--set", "broker.password_file=" + root_.Sub("broker/hub-viewer.pass")});
    }
    *code = Tool(args, &out);
    return out;
  }

  void CoreScenario() {
    MakeHome(2);
    HubData(primary_.data);
    WriteFile(primary_.data + "/db/big.bin", RandomBytesString(3 << 20, 11));
    StartAll();
    ASSERT_TRUE(AllConverged()) << "initial sync";

    WriteFile(primary_.data + "/devices/lamp-1.json", R"({"type":"lamp","room":"kitchen"})");
    unlink((primary_.data + "/devices/sensor-7.json").c_str());
    ASSERT_EQ(rename((primary_.data + "/scenes/evening.json").c_str(),
                     (primary_.data + "/scenes/night.json").c_str()), 0);
    WriteFile(primary_.data + "/users/bob.json", R"({"role":"guest"})");
    ASSERT_TRUE(AllConverged()) << "edit, deletion, rename, new file";

    // A policy holds the database back; other changes go at once.
    PublishPolicy("db", R"({"paths":["db/**"],"delay_ms":86400000})");
    ASSERT_TRUE(PrimaryLogs("policy db applied")) << primary_.proc->Log();
    WriteFile(primary_.data + "/db/hub.sqlite", "held");
    WriteFile(primary_.data + "/config/hub.json", R"({"tz":"UTC"})");
    for (auto& [id, b] : backups_) {
      ASSERT_TRUE(WaitFor([&] { return testing::ReadFile(b.data + "/config/hub.json") == R"({"tz":"UTC"})"; },
                          kConvergeMs));
    }
    int code = 0;
    std::string out;
    ASSERT_TRUE(WaitFor([&] { out = Status(&code); return code == 3 && out.find("2 pending") != std::string::npos; },
                        kConvergeMs)) << out;
    for (auto& [id, b] : backups_) EXPECT_NE(testing::ReadFile(b.data + "/db/hub.sqlite"), "held");
    PublishPolicy("db", "");  // removed: its held change is due at once
    ASSERT_TRUE(AllConverged()) << "the held change after the policy's removal";

    // A backup killed, changes meanwhile, then back.
    Gateway& b2 = backups_["hub-b2"];
    b2.proc->Kill(SIGKILL);
    WriteFile(primary_.data + "/devices/while-b2-away.json", "x");
    ASSERT_TRUE(Converged(backups_["hub-b1"]));
    Start(b2, "backup");
    ASSERT_TRUE(AllConverged()) << "a killed backup catches up";

    // The primary killed, a change while it is down, then back.
    primary_.proc->Kill(SIGKILL);
    WriteFile(primary_.data + "/devices/while-primary-away.json", "y");
    Start(primary_, "primary");
    ASSERT_TRUE(AllConverged()) << "a killed primary resyncs";

    ASSERT_TRUE(WaitFor([&] { out = Status(&code); return code == 0; }, kConvergeMs)) << out;
    EXPECT_NE(out.find("2 backups: 2 in sync"), std::string::npos) << out;
  }
};

TEST_F(ScenarioTest, CoreScenarioOnMosquitto) { CoreScenario(); }

class EjabberdScenarioTest : public ScenarioTest {
 protected:
  EjabberdScenarioTest() { ejabberd_nodes_ = 1; }
};

TEST_F(EjabberdScenarioTest, CoreScenarioOnEjabberd) { CoreScenario(); }

// A 2-node ejabberd cluster: live messages cross nodes, retained ones stay on
// the node that received them. The primary on node 1, a backup on node 2.
class EjabberdClusterTest : public ScenarioTest {
 protected:
  EjabberdClusterTest() { ejabberd_nodes_ = 2; }
};

TEST_F(EjabberdClusterTest, StatusAndPoliciesStayTrueAcrossNodes) {
  MakeHome(1);
  Gateway& b1 = backups_["hub-b1"];
  WriteFile(b1.config, ReplaceAll(testing::ReadFile(b1.config), ejabberd_->uri(0), ejabberd_->uri(1)));
  HubData(primary_.data);
  // The backup first: its birth, retained, stays on node 2 where the
  // primary never sees it.
  Start(b1, "backup");
  ASSERT_TRUE(WaitFor([&] { return b1.proc->Log().find("connected to the broker") != std::string::npos; },
                      10000));
  Start(primary_, "primary");
  ASSERT_TRUE(AllConverged());
  EXPECT_NE(primary_.proc->Log().find("no status seen from backup hub-b1 since connecting: asking it directly"),
            std::string::npos) << primary_.proc->Log();

  // Through either node, the status command sees both gateways (they answer
  // its request live) and says in sync. (Without the request it would wait
  // for a gateway's 30 s refresh to cross nodes.)
  std::string out;
  int code = 0;
  ASSERT_TRUE(WaitFor([&] { out = Status(&code); return code == 0; }, 10000)) << out;
  EXPECT_NE(out.find("1 backup: 1 in sync"), std::string::npos) << out;
  code = Tool({"status", "-c", b1.config, "--set", "broker.username=hub-viewer"}, &out);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("hub-p                primary  in_sync"), std::string::npos) << out;
  EXPECT_NE(out.find("hub-b1               backup   in_sync"), std::string::npos) << out;

  // A policy published on node 2 is in force for the primary on node 1.
  const MqttOptions node2 = Recorder::Options(ejabberd_->uri(1), "hub-admin", "any");
  PublishPolicy("db", R"({"paths":["db/**"],"delay_ms":86400000})", node2);
  ASSERT_TRUE(PrimaryLogs("policy db applied")) << primary_.proc->Log();
  WriteFile(primary_.data + "/db/hub.sqlite", "held");
  ASSERT_TRUE(WaitFor([&] {
    code = Tool({"status", "-c", b1.config, "--set", "broker.username=hub-viewer"}, &out);
    return code == 3 && out.find("hub-b1               backup   pending") != std::string::npos;
  }, kConvergeMs)) << out;
  EXPECT_NE(testing::ReadFile(b1.data + "/db/hub.sqlite"), "held");
  PublishPolicy("db", "", node2);  // removed on node 2: the held change goes
  ASSERT_TRUE(AllConverged());
  ASSERT_TRUE(WaitFor([&] { out = Status(&code); return code == 0; }, kConvergeMs)) << out;
}

// ejabberd does not announce its payload limit; a message over it closes
// the session. hubsync must notice and send smaller messages, not reconnect
// forever.
class EjabberdSmallPayloadTest : public HomeTest {
 protected:
  EjabberdSmallPayloadTest() {
    ejabberd_nodes_ = 1;
    broker_extra_ = "    max_payload_size: 65536\n";
  }
};

TEST_F(EjabberdSmallPayloadTest, AnUnannouncedPayloadLimitIsFoundAndRespected) {
  MakeHome(1);
  HubData(primary_.data);
  WriteFile(primary_.data + "/db/big.bin", RandomBytesString(1 << 20, 5));
  StartAll();
  ASSERT_TRUE(AllConverged());
  std::string log = primary_.proc->Log();
  EXPECT_NE(log.find("bytes from now on instead of 262144 (set max_message_bytes below the "
                     "broker's limit"),
            std::string::npos) << log;
}


// broker-config/ejabberd.yml as shipped (TLS, accounts, access rules), with
// its accounts renamed for the test home: the scenario works through it, and
// its access rules refuse what the Mosquitto ACL refuses.
class EjabberdLockedTest : public ScenarioTest {
 protected:
  EjabberdLockedTest() {
    ejabberd_nodes_ = 1;
    locked_ = true;
  }
};

TEST_F(EjabberdLockedTest, TheShippedConfigCarriesTheScenarioAndRefusesTheRest) {
  CoreScenario();
  // The read-only account cannot set a policy nor pose as a gateway.
  Recorder viewer(Client("hub-viewer"), {});
  ASSERT_TRUE(WaitFor([&] { return viewer.connected(); }, 10000));
  for (const std::string& topic : {std::string("hubsync/v1/home-1/policy/db"),
                                   std::string("hubsync/v1/home-1/gw/hub-b1/status")}) {
    Message m;
    m.topic = topic;
    m.payload = R"({"paths":["**"],"delay_ms":86400000})";
    m.retained = true;
    viewer.transport()->Publish(m);
  }
  // A backup cannot read another backup's deltas.
  Recorder b1(Client("hub-b1"), {});
  ASSERT_TRUE(WaitFor([&] { return b1.connected(); }, 10000));
  EXPECT_FALSE(b1.transport()->SubscribeAndWait("hubsync/v1/home-1/gw/hub-b2/delta", 1).ok());
  EXPECT_TRUE(b1.transport()->SubscribeAndWait("hubsync/v1/home-1/gw/hub-b1/delta", 1).ok());
  WriteFile(primary_.data + "/devices/after.json", "z");
  ASSERT_TRUE(AllConverged()) << "no policy was set by the viewer";
  Recorder admin(Client("hub-admin"), {"hubsync/v1/home-1/gw/+/status", "hubsync/v1/home-1/policy/+"});
  ASSERT_TRUE(admin.WaitForMessage("hubsync/v1/home-1/gw/hub-p/status"));
  // (Retained messages arrive in no set order: each is waited for.)
  EXPECT_TRUE(admin.WaitForMessage("hubsync/v1/home-1/gw/hub-b1/status"));
  EXPECT_FALSE(admin.Saw("hubsync/v1/home-1/policy/db")) << "the viewer's policy was refused";
  EXPECT_EQ(Count(primary_.proc->Log(), "policy db applied"), 1u) << "only the admin's, earlier";
  EXPECT_EQ(testing::ReadFile(backups_["hub-b1"].data + "/devices/after.json"), "z");
}

// Found by the compose test: `hubsync status` run with the primary's own
// config, on the shipped hub.conf (client id = username), took the daemon's
// session; `--watch` would have kept it off the broker. It now warns, naming
// the way out; under a reader account it does not.
TEST_F(LockedHomeTest, StatusUnderTheDaemonsOwnAccountWarnsAndAReaderDoesNot) {
  MakeHome(1);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  std::string out;
  // (Aimed at a closed port: the warning comes before connecting, and the
  // daemon is not disconnected by the check itself.)
  EXPECT_EQ(Tool({"status", "-c", primary_.config, "--timeout", "500", "--set",
                  "broker.uri=ssl://127.0.0.1:" + std::to_string(testing::FreePort())},
                 &out),
            5) << out;
  EXPECT_NE(out.find("is the config of the running daemon"), std::string::npos) << out;
  EXPECT_NE(out.find("use a reader account"), std::string::npos) << out;
  ASSERT_TRUE(WaitFor([&] {
    return Tool({"status", "-c", primary_.config, "--set", "broker.username=hub-viewer", "--set",
                 "broker.password_file=" + root_.Sub("broker/hub-viewer.pass")},
                &out) == 0;
  }, kConvergeMs)) << out << primary_.proc->Log();
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
