// ejabberd (Debian's package, mod_mqtt) on loopback: the second MQTT 5
// broker hubsync is tested against (issue 11). One node, or a cluster of
// nodes joined with join_cluster, each with its own MQTT port. The cluster
// runs its own epmd on loopback and a free port (never the system's 4369),
// which lives and dies with it; nodes are ejN@127.0.0.1 with a test cookie.
// Logins are anonymous (login_anon): any user name and password.
#ifndef HUBSYNC_TESTS_EJABBERD_H_
#define HUBSYNC_TESTS_EJABBERD_H_

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace hubsync {
namespace testing {

class EjabberdCluster {
 public:
  // Where Debian's ejabberd package puts its Erlang modules.
  static constexpr const char* kLibs = "/usr/lib/x86_64-linux-gnu";
  static bool Installed() {
    return access("/usr/bin/erl", X_OK) == 0 && access("/usr/sbin/ejabberdctl", X_OK) == 0;
  }

  // `extra_listener` is appended to the MQTT listener's options (e.g.
  // "    max_payload_size: 65536\n"). A non-empty `config` replaces the
  // whole configuration: its "@PORT@" becomes the node's MQTT port and
  // "@PORT2@" a second free port.
  EjabberdCluster(const std::string& dir, int nodes, const std::string& extra_listener = "",
                  const std::string& config = "")
      : dir_(dir), epmd_port_(FreePort()) {
    MkdirP(dir_);
    epmd_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/epmd", "-port", std::to_string(epmd_port_), "-address",
                                 "127.0.0.1"},
        dir_ + "/epmd.log");
    epmd_->Start();
    if (!WaitFor([&] { return PortOpen(epmd_port_); }, 10000)) return;
    for (int i = 0; i < nodes; ++i) {
      Node n;
      n.name = "ej" + std::to_string(i + 1) + "@127.0.0.1";
      n.dir = dir_ + "/ej" + std::to_string(i + 1);
      n.port = FreePort();
      MkdirP(n.dir + "/spool");
      if (!config.empty()) {
        WriteFile(n.dir + "/ejabberd.yml",
                  ReplaceAll(ReplaceAll(config, "@PORT@", std::to_string(n.port)), "@PORT2@",
                             std::to_string(FreePort())));
        nodes_.push_back(std::move(n));
        continue;
      }
      WriteFile(n.dir + "/ejabberd.yml",
                "hosts:\n  - \"localhost\"\nloglevel: info\n"
                "listen:\n  -\n    port: " + std::to_string(n.port) + "\n"
                "    ip: \"127.0.0.1\"\n    module: mod_mqtt\n" + extra_listener +
                "auth_method: [anonymous]\nanonymous_protocol: login_anon\n"
                "acl:\n  local:\n    user_regexp: \"\"\n"
                "access_rules:\n  local:\n    allow: all\n"
                "modules:\n  mod_mqtt: {}\n");
      nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) StartNode(i);
    up_ = true;
    for (size_t i = 0; i < nodes_.size(); ++i) up_ &= WaitUp(i);
    for (size_t i = 0; i < nodes_.size() && up_ && nodes_.size() > 1; ++i) up_ = WaitStarted(i);
    for (size_t i = 1; i < nodes_.size() && up_; ++i) {
      // A join made while either node is still starting ejabberd's other
      // parts can be refused (a loaded CI machine saw that): both nodes are
      // fully started first (above) and a refused join is tried again.
      up_ = WaitFor([&] {
              return Rpc("ok = rpc:call('" + nodes_[i].name + "', ejabberd_admin, join_cluster, [<<\"" +
                         nodes_[0].name + "\">>])");
            }, 60000) &&
            WaitUp(i) && WaitStarted(i);
    }
  }
  ~EjabberdCluster() {
    for (Node& n : nodes_) {
      if (n.proc) n.proc->Kill(SIGKILL);
    }
    if (epmd_) epmd_->Kill(SIGKILL);
  }

  bool up() const { return up_; }
  int port(size_t node = 0) const { return nodes_[node].port; }
  // Creates an account (auth_method internal), as `ejabberdctl register`.
  // A node whose port is open may still be starting the rest of ejabberd
  // (CI saw a registration refused then): tried again for 30 s, an account
  // an earlier try made counting as made.
  bool Register(const std::string& user, const std::string& host, const std::string& password) {
    return WaitFor([&] {
      return Rpc("ok = case rpc:call('" + nodes_[0].name + "', ejabberd_auth, try_register, [<<\"" +
                 user + "\">>, <<\"" + host + "\">>, <<\"" + password +
                 "\">>]) of ok -> ok; {error, exists} -> ok; Other -> Other end");
    }, 30000);
  }
  std::string uri(size_t node = 0) const {
    return "tcp://127.0.0.1:" + std::to_string(nodes_[node].port);
  }
  std::string Log(size_t node = 0) const { return ReadFile(nodes_[node].dir + "/ejabberd.log"); }
  // What a failed start leaves to read: each node's Erlang output and the
  // tail of its ejabberd log, and the last control command's output.
  std::string Diagnostics() const {
    std::string out = "last control command: " + ReadFile(dir_ + "/ctl.log");
    for (const Node& n : nodes_) {
      std::string log = ReadFile(n.dir + "/ejabberd.log");
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      out += "\n--- " + n.name + " erl:\n" + ReadFile(n.dir + "/erl.log") + "\n--- ejabberd.log (tail):\n" + log;
    }
    return out;
  }
  void StartNode(size_t i) {
    Node& n = nodes_[i];
    n.proc = std::make_unique<Process>(
        std::vector<std::string>{
            "/usr/bin/env", "EJABBERD_CONFIG_PATH=" + n.dir + "/ejabberd.yml",
            "EJABBERD_LOG_PATH=" + n.dir + "/ejabberd.log", Epmd(),
            "ERL_LIBS=" + std::string(kLibs), "ERL_INETRC=/etc/ejabberd/inetrc",
            "ERL_CRASH_DUMP=" + n.dir + "/erl_crash.dump", "HOME=" + n.dir, "/usr/bin/erl",
            "-name", n.name, "-setcookie", kCookie, "-noinput", "+K", "true", "-start_epmd",
            "false", "-kernel", "inet_dist_use_interface", "{127,0,0,1}", "-mnesia", "dir",
            "\"" + n.dir + "/spool\"", "-s", "ejabberd"},
        n.dir + "/erl.log");
    n.proc->Start();
  }
  bool WaitUp(size_t i) { return WaitFor([&] { return PortOpen(nodes_[i].port); }, 60000); }
  // True once node i's boot has finished and ejabberd runs there.
  bool WaitStarted(size_t i) {
    return WaitFor([&] {
      return Rpc("{started, _} = rpc:call('" + nodes_[i].name + "', init, get_status, []), true = "
                 "lists:keymember(ejabberd, 1, rpc:call('" + nodes_[i].name +
                 "', application, which_applications, []))");
    }, 60000);
  }
  void StopNode(size_t i) {
    if (nodes_[i].proc) nodes_[i].proc->Stop();
  }
  void KillNode(size_t i) {
    if (nodes_[i].proc) nodes_[i].proc->Kill(SIGKILL);
  }

 private:
  static constexpr const char* kCookie = "hubsync-test";
  struct Node {
    std::string name, dir;
    int port = 0;
    std::unique_ptr<Process> proc;
  };
  std::string Epmd() const { return "ERL_EPMD_PORT=" + std::to_string(epmd_port_); }
  // Runs `expr` on a throwaway node of the cluster; true if it matched.
  bool Rpc(const std::string& expr) {
    Process ctl({"/usr/bin/env", Epmd(), "HOME=" + dir_, "/usr/bin/erl", "-noinput", "-name",
                 "ctl" + std::to_string(++rpcs_) + "@127.0.0.1", "-setcookie", kCookie, "-start_epmd", "false", "-kernel",
                 "inet_dist_use_interface", "{127,0,0,1}", "-eval",
                 "try " + expr + ", halt(0) catch _:_ -> halt(1) end."},
                dir_ + "/ctl.log");
    ctl.Start();
    return ctl.Wait() == 0;
  }

  std::string dir_;
  int epmd_port_;
  std::unique_ptr<Process> epmd_;
  std::vector<Node> nodes_;
  bool up_ = false;
  int rpcs_ = 0;  // each control node has its own name: a halted one may linger in epmd
};

// One node of a cluster as a home test's broker.
class EjabberdBroker : public TestBroker {
 public:
  EjabberdBroker(std::shared_ptr<EjabberdCluster> cluster, size_t node)
      : cluster_(std::move(cluster)), node_(node) {}
  std::string uri() const override { return cluster_->uri(node_); }
  bool up() const override { return cluster_->up(); }
  void Start() override {
    cluster_->StartNode(node_);
    cluster_->WaitUp(node_);
  }
  void Stop() override { cluster_->StopNode(node_); }
  void Kill9() override { cluster_->KillNode(node_); }
  bool needs_login() const override { return true; }

 private:
  std::shared_ptr<EjabberdCluster> cluster_;
  size_t node_;
};

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_EJABBERD_H_
