// The home every end-to-end test runs: a real mosquitto (plain, or the
// shipped hub.conf with passwords and ACL), a primary and backups as real
// hubsync processes over temporary directories.
#ifndef HUBSYNC_TESTS_HOME_FIXTURE_H_
#define HUBSYNC_TESTS_HOME_FIXTURE_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ejabberd.h"
#include "harness.h"
#include "hubsync/paths.h"

namespace hubsync {
namespace testing {

constexpr int kConvergeMs = 30000;

struct Gateway {
  std::string id, data, state, config;
  std::unique_ptr<Process> proc;
};

class HomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ejabberd_nodes_ > 0) {
      StartEjabberd();
    } else if (locked_) {
      // The shipped hub configuration: passwords, per-gateway ACL.
      int port = testing::FreePort();
      std::string conf = testing::LockedBrokerConfig(
          HUBSYNC_SOURCE_DIR, root_.Sub("broker"), port, testing::FreePort(), locked_accounts_);
      ASSERT_FALSE(conf.empty());
      broker_ = std::make_unique<Broker>(root_.Sub("broker"), port, conf);
      lan_uri_ = LockedUri(port);
    } else {
      broker_ = std::make_unique<Broker>(root_.Sub("broker"), broker_extra_);
    }
    ASSERT_TRUE(broker_->up()) << (ejabberd_ ? ejabberd_->Diagnostics()
                                              : testing::ReadFile(root_.Sub("broker/mosquitto.log")));
    if (getenv("HUBSYNC_TEST_VERBOSE")) std::printf("broker dir %s\n", root_.Sub("broker").c_str());
  }
  // An ejabberd cluster of ejabberd_nodes_; with locked_, on the shipped
  // example (broker-config/ejabberd.yml: TLS, accounts, access rules) for
  // hub-p, hub-b1, hub-b2, hub-viewer and hub-admin.
  void StartEjabberd() {
    ASSERT_TRUE(EjabberdCluster::Installed()) << "ejabberd is not installed: run docker/install-deps.sh";
    std::string dir = root_.Sub("broker"), config;
    const std::vector<std::string> accounts = {"hub-p", "hub-b1", "hub-b2", "hub-viewer", "hub-admin"};
    if (locked_) {
      std::string cmd = std::string(HUBSYNC_SOURCE_DIR) + "/broker-config/make-passwords.sh '" + dir +
                        "' hub-p hub-b1 hub-b2 --reader hub-viewer --admin hub-admin >/dev/null 2>&1 && " +
                        HUBSYNC_SOURCE_DIR + "/broker-config/make-certs.sh '" + dir +
                        "' 127.0.0.1 localhost >/dev/null 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0);
      WriteFile(dir + "/server.pem", testing::ReadFile(dir + "/server.crt") + testing::ReadFile(dir + "/server.key"));
      config = testing::ReadFile(std::string(HUBSYNC_SOURCE_DIR) + "/broker-config/ejabberd.yml");
      config = ReplaceAll(config, "port: 8883", "port: @PORT@");
      config = ReplaceAll(config, "port: 1883", "port: @PORT2@");
      config = ReplaceAll(config, "ip: \"::\"", "ip: \"127.0.0.1\"");
      config = ReplaceAll(config, "/etc/hubsync/broker/", dir + "/");
      config = ReplaceAll(config, "hub-living-room", "hub-p");
      config = ReplaceAll(config, "hub-kitchen", "hub-b1");
      config = ReplaceAll(config, "hub-bedroom", "hub-b2");
      config = ReplaceAll(config, "hub-software", "hub-admin");
      ASSERT_NE(config.find("@PORT@"), std::string::npos);
    }
    ejabberd_ = std::make_shared<EjabberdCluster>(dir, ejabberd_nodes_, broker_extra_, config);
    broker_ = std::make_unique<EjabberdBroker>(ejabberd_, 0);
    if (!locked_ || !ejabberd_->up()) return;
    for (const std::string& id : accounts) {
      ASSERT_TRUE(ejabberd_->Register(id, "hub.home", testing::ReadFile(dir + "/" + id + ".pass").substr(
                                                          0, testing::ReadFile(dir + "/" + id + ".pass").find('\n'))))
          << id;
    }
    lan_uri_ = "ssl://127.0.0.1:" + std::to_string(ejabberd_->port(0));
  }

  void TearDown() override {
    if (!getenv("HUBSYNC_TEST_VERBOSE")) return;
    for (const Gateway* g : {&primary_}) {
      if (g->proc) std::printf("--- %s\n%s", g->id.c_str(), g->proc->Log().c_str());
    }
    for (const auto& [id, b] : backups_) {
      if (b.proc) std::printf("--- %s\n%s", id.c_str(), b.proc->Log().c_str());
    }
  }
  Gateway MakeGateway(const std::string& id, const std::vector<std::string>& backups,
                      const std::string& extra = "") {
    Gateway g;
    g.id = id;
    g.data = root_.Sub(id + "/data");
    g.state = root_.Sub(id + "/state");
    g.config = root_.Sub(id + "/config.json");
    testing::MkdirP(g.data);
    std::string list;
    for (const auto& b : backups) list += (list.empty() ? "\"" : ",\"") + b + "\"";
    std::string creds;
    if (broker_->needs_login()) {
      WriteFile(root_.Sub("login.pass"), "any");
      creds = R"(,"username":")" + id + R"(","password_file":")" + root_.Sub("login.pass") + "\"";
    }
    if (locked_) {
      creds = R"(,"username":")" + id + R"(","password_file":")" + root_.Sub("broker/" + id + ".pass") +
              R"(","ca_file":")" + root_.Sub("broker/ca.crt") + "\"";
    }
    WriteFile(g.config, R"({"home":"home-1","gateway_id":")" + id +
                            R"(","broker":{"uri":")" + (locked_ ? lan_uri_ : broker_->uri()) + "\"" + creds +
                            R"(},"data_dir":")" +
                            g.data + R"(","state_dir":")" + g.state + R"(","backups":[)" + list +
                            R"(],"exclude":["cache/**","**/*.tmp"],"log_level":"debug")" + extra +
                            "}");
    return g;
  }

  // A primary and `n` backups, keys provisioned with keygen/keyimport.
  void MakeHome(int n, const std::string& primary_extra = "") {
    std::vector<std::string> ids;
    for (int i = 1; i <= n; ++i) ids.push_back("hub-b" + std::to_string(i));
    primary_ = MakeGateway("hub-p", ids, primary_extra);
    for (const auto& id : ids) {
      backups_[id] = MakeGateway(id, {});
      std::string key = root_.Sub(id + ".key");
      ASSERT_EQ(Tool({"keygen", "-c", primary_.config, "--backup", id, "--out", key}), 0);
      ASSERT_EQ(Tool({"keyimport", "-c", backups_[id].config, key}), 0);
    }
  }

  // A client of the test's broker, logged in as `name` where it needs one.
  MqttOptions Client(const std::string& name) const {
    if (locked_) {
      std::string pass = testing::ReadFile(root_.Sub("broker/" + name + ".pass"));
      return Recorder::Options(lan_uri_, name, pass.substr(0, pass.find('\n')), root_.Sub("broker/ca.crt"));
    }
    bool login = broker_->needs_login();
    return Recorder::Options(broker_->uri(), login ? name : "", login ? "any" : "");
  }

  // Publishes a retained policy (empty `json`: removes it) as the hub
  // software would, through `via` (default: the admin account on the test's
  // broker), and waits until the broker has it.
  void PublishPolicy(const std::string& module, const std::string& json,
                     std::optional<MqttOptions> via = std::nullopt) {
    Recorder admin(via ? *via : Client("hub-admin"), {});
    ASSERT_TRUE(WaitFor([&] { return admin.connected(); }, 10000));
    Message m;
    m.topic = "hubsync/v1/home-1/policy/" + module;
    m.payload = json;
    m.retained = true;
    ASSERT_TRUE(admin.transport()->Publish(m).ok());
    ASSERT_TRUE(WaitFor([&] { return admin.transport()->InFlight() == 0; }, 10000));
  }
  // Waits until the primary's log says `text`.
  bool PrimaryLogs(const std::string& text, int timeout_ms = 10000) {
    return WaitFor([&] { return primary_.proc->Log().find(text) != std::string::npos; }, timeout_ms);
  }

  int Tool(std::vector<std::string> args, std::string* output = nullptr) {
    args.insert(args.begin(), HUBSYNC_BINARY);
    std::string log = root_.Sub("tool.log");
    unlink(log.c_str());
    Process p(args, log);
    p.Start();
    int rc = p.Wait();
    if (output) *output = testing::ReadFile(log);
    return rc;
  }

  void Start(Gateway& g, const std::string& role) {
    g.proc = std::make_unique<Process>(
        std::vector<std::string>{HUBSYNC_BINARY, role, "-c", g.config},
        root_.Sub(g.id + ".log"));
    g.proc->Start();
  }
  void StartAll() {
    Start(primary_, "primary");
    for (auto& [id, b] : backups_) Start(b, "backup");
  }

  // A tree as replication sees it: without what the config excludes.
  static std::map<std::string, std::string> Replicated(const std::string& dir) {
    PathFilter filter({"cache/**", "**/*.tmp"});
    auto snap = Snapshot(dir);
    for (auto it = snap.begin(); it != snap.end();) {
      bool is_dir = it->second.rfind("D:", 0) == 0;
      it = filter.Excluded(it->first, is_dir) ? snap.erase(it) : std::next(it);
    }
    return snap;
  }
  bool Converged(const Gateway& b, int timeout_ms = kConvergeMs) {
    return WaitFor([&] { return Replicated(primary_.data) == Replicated(b.data); }, timeout_ms);
  }
  ::testing::AssertionResult AllConverged() {
    for (auto& [id, b] : backups_) {
      if (!Converged(b)) {
        return ::testing::AssertionFailure()
               << id << " did not converge\n--- primary log:\n" << primary_.proc->Log()
               << "\n--- " << id << " log:\n" << b.proc->Log();
      }
    }
    return ::testing::AssertionSuccess();
  }

  bool locked_ = false;  // run on broker-config/hub.conf with passwords, ACL and TLS
  // locked_: the accounts, as make-passwords.sh takes them
  std::string locked_accounts_ = "hub-p hub-b1 hub-b2 --reader hub-viewer";
  int ejabberd_nodes_ = 0;  // > 0: an ejabberd cluster of that many nodes instead of mosquitto
  std::string broker_extra_;  // !locked_: lines appended to the test broker's config
                              // (ejabberd: to its MQTT listener's options)
  std::shared_ptr<EjabberdCluster> ejabberd_;
  std::string lan_uri_;   // locked_: the TLS LAN listener
  TempDir root_;
  std::unique_ptr<TestBroker> broker_;
  Gateway primary_;
  std::map<std::string, Gateway> backups_;
};

void HubData(const std::string& d) {
  WriteFile(d + "/devices/lamp-1.json", R"({"type":"lamp","room":"living"})");
  WriteFile(d + "/devices/sensor-7.json", R"({"type":"motion"})");
  WriteFile(d + "/scenes/evening.json", R"({"lamp-1":{"on":true,"level":40}})");
  WriteFile(d + "/users/alice.json", R"({"role":"owner"})");
  WriteFile(d + "/config/hub.json", R"({"tz":"Europe/Paris"})");
  WriteFile(d + "/db/hub.sqlite", std::string(2 << 20, 'D'));
  WriteFile(d + "/cache/thumbs.bin", "never synced");
}

class LockedHomeTest : public HomeTest {
 protected:
  LockedHomeTest() { locked_ = true; }
};

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_HOME_FIXTURE_H_
