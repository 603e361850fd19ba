// The home every end-to-end test runs: a real mosquitto (plain, or the
// shipped hub.conf with passwords and ACL), a primary and backups as real
// hubsync processes over temporary directories.
#ifndef HUBSYNC_TESTS_HOME_FIXTURE_H_
#define HUBSYNC_TESTS_HOME_FIXTURE_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

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
    if (locked_) {
      // The shipped hub configuration: passwords, per-gateway ACL.
      int port = testing::FreePort();
      std::string conf = testing::LockedBrokerConfig(
          HUBSYNC_SOURCE_DIR, root_.Sub("broker"), port, testing::FreePort(), "hub-p hub-b1 hub-b2 --reader hub-viewer");
      ASSERT_FALSE(conf.empty());
      broker_ = std::make_unique<Broker>(root_.Sub("broker"), port, conf);
      lan_uri_ = LockedUri(port);
    } else {
      broker_ = std::make_unique<Broker>(root_.Sub("broker"), broker_extra_);
    }
    ASSERT_TRUE(broker_->up()) << testing::ReadFile(root_.Sub("broker/mosquitto.log"));
    if (getenv("HUBSYNC_TEST_VERBOSE")) std::printf("broker dir %s\n", root_.Sub("broker").c_str());
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
  std::string broker_extra_;  // !locked_: lines appended to the test broker's config
  std::string lan_uri_;   // locked_: the TLS LAN listener
  TempDir root_;
  std::unique_ptr<Broker> broker_;
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
