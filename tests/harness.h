// Integration-test harness: a real mosquitto on a free loopback port with a
// config written per test, real hubsync processes, and waiting on conditions
// with a deadline (never a bare sleep).
#ifndef HUBSYNC_TESTS_HARNESS_H_
#define HUBSYNC_TESTS_HARNESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hubsync/keystore.h"
#include "hubsync/state_store.h"
#include "hubsync/transport.h"
#include "test_util.h"

namespace hubsync {
namespace testing {

// Polls `cond` every 10 ms until it holds or `timeout_ms` passes.
inline bool WaitFor(const std::function<bool()>& cond, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A child process with stdout+stderr captured in `log_path`.
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path)
      : argv_(std::move(argv)), log_path_(std::move(log_path)) {}
  ~Process() { Kill(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  // Sends `sig` and reaps; returns the exit status (or -1 if not running).
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    return Wait();
  }
  int Stop() { return Kill(SIGTERM); }
  int Wait() {
    if (pid_ <= 0) return -1;
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  bool Exited(int* code) {
    if (pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    pid_ = -1;
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return true;
  }
  pid_t pid() const { return pid_; }
  std::string Log() const { return ReadFile(log_path_); }
  // Peak resident memory (VmHWM) in KiB, from /proc.
  long PeakRssKb() const {
    std::string s = ReadFile("/proc/" + std::to_string(pid_) + "/status");
    size_t at = s.find("VmHWM:");
    return at == std::string::npos ? -1 : std::stol(s.substr(at + 6));
  }

 private:
  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
};

inline std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// The shipped hub broker (broker-config/hub.conf) for a test: passwords and
// ACL made by make-passwords.sh and TLS material by make-certs.sh (for
// 127.0.0.1 and localhost) into `dir` for `ids` (the first is the primary);
// the TLS LAN listener on `lan_port` (clients: LockedUri, dir + "/ca.crt"),
// the loopback plaintext one on a free port, OOB on `oob_port`. Returns the
// mosquitto config text.
inline std::string LockedBrokerConfig(const std::string& source_dir, const std::string& dir,
                                      int lan_port, int oob_port,
                                      const std::string& ids) {
  std::string cmd = source_dir + "/broker-config/make-passwords.sh '" + dir + "' " + ids +
                    " 2>/dev/null && " + source_dir + "/broker-config/make-certs.sh '" + dir +
                    "' 127.0.0.1 localhost 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) return "";
  std::string conf = ReadFile(source_dir + "/broker-config/hub.conf");
  conf = ReplaceAll(conf, "listener 8883\n",
                    "listener " + std::to_string(lan_port) + " 127.0.0.1\n");
  conf = ReplaceAll(conf, "listener 1883 127.0.0.1\n",
                    "listener " + std::to_string(FreePort()) + " 127.0.0.1\n");
  conf = ReplaceAll(conf, "listener 1884 127.0.0.1",
                    "listener " + std::to_string(oob_port) + " 127.0.0.1");
  conf = ReplaceAll(conf, "/etc/hubsync/broker/", dir + "/");
  return conf + "user root\n";
}

// How clients reach the LockedBrokerConfig LAN listener.
inline std::string LockedUri(int lan_port) {
  return "ssl://127.0.0.1:" + std::to_string(lan_port);
}

// What a home test needs of its broker, whichever it is.
class TestBroker {
 public:
  virtual ~TestBroker() = default;
  virtual std::string uri() const = 0;
  virtual bool up() const = 0;
  virtual void Start() = 0;
  virtual void Stop() = 0;
  virtual void Kill9() = 0;
  // Gateways log in with an account (ejabberd refuses a CONNECT without).
  virtual bool needs_login() const { return false; }
};

// A mosquitto broker on 127.0.0.1:port with a config written for the test.
class Broker : public TestBroker {
 public:
  // A broker whose whole configuration is `config`, listening on `port`.
  Broker(const std::string& dir, int port, const std::string& config) : dir_(dir), port_(port) {
    MkdirP(dir_);
    WriteFile(dir_ + "/mosquitto.conf", config);
    Start();
  }
  Broker(const std::string& dir, const std::string& extra_config = "")
      : dir_(dir), port_(FreePort()) {
    WriteFile(dir_ + "/mosquitto.conf",
              "listener " + std::to_string(port_) + " 127.0.0.1\n"
              "allow_anonymous true\n"
              "max_packet_size 1048576\n"
              "set_tcp_nodelay true\n"
              "user root\n" + extra_config);
    Start();
  }
  void Start() override {
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/mosquitto", "-c", dir_ + "/mosquitto.conf"},
        dir_ + "/mosquitto.log");
    proc_->Start();
    up_ = WaitFor([&] { return PortOpen(port_); }, 10000);
  }
  void Kill9() override { proc_->Kill(SIGKILL); }
  void Stop() override { proc_->Stop(); }
  bool up() const override { return up_; }
  int port() const { return port_; }
  std::string uri() const override { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string dir_;
  int port_;
  bool up_ = false;
  std::unique_ptr<Process> proc_;
};

// A client subscribed to hubsync/# that keeps everything it sees, as
// `mosquitto_sub -t 'hubsync/#'` would; `on_message` (optional) also sees
// each message, on Paho's thread.
class Recorder {
 public:
  explicit Recorder(const std::string& uri,
                    std::function<void(const Message&)> on_message = nullptr,
                    bool keep = true)
      : Recorder(Options(uri), {"hubsync/#"}, std::move(on_message), keep) {}

  static MqttOptions Options(const std::string& uri, const std::string& user = "",
                             const std::string& password = "", const std::string& ca_file = "") {
    MqttOptions o;
    o.uri = uri;
    o.username = user;
    o.password = password;
    o.ca_file = ca_file;
    return o;
  }

  // A client with credentials and its own subscriptions.
  // Waits up to `connect_ms` for the connection (connected() tells).
  Recorder(MqttOptions o, std::vector<std::string> filters,
           std::function<void(const Message&)> on_message = nullptr, bool keep = true,
           int connect_ms = 10000)
      : on_message_(std::move(on_message)), keep_(keep), filters_(std::move(filters)) {
    if (o.client_id.empty()) {
      o.client_id = "test-recorder-" + std::to_string(getpid()) + "-" +
                    std::to_string(reinterpret_cast<uintptr_t>(this));
    }
    t_ = NewMqttTransport(o);
    t_->SetHandlers(
        [this](Message m) {
          if (on_message_) on_message_(m);
          if (!keep_) return;
          std::lock_guard<std::mutex> l(mu_);
          messages_.push_back(std::move(m));
        },
        [this](const LinkEvent& e) {
          bool up = e.up();
          if (up) {
            for (const auto& f : filters_) t_->Subscribe(f, 1);
          }
          std::lock_guard<std::mutex> l(mu_);
          if (up_ && !up) ++drops_;
          up_ = up;
        });
    t_->Connect();
    testing::WaitFor([&] { std::lock_guard<std::mutex> l(mu_); return up_; }, connect_ms);
  }
  ~Recorder() { t_->Disconnect(nullptr); }
  bool connected() {
    std::lock_guard<std::mutex> l(mu_);
    return up_;
  }
  // How often the connection was lost since it was first made.
  int drops() {
    std::lock_guard<std::mutex> l(mu_);
    return drops_;
  }
  bool Saw(const std::string& topic, const std::string& payload = "") {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& m : messages_) {
      if (m.topic == topic && (payload.empty() || m.payload == payload)) return true;
    }
    return false;
  }
  bool WaitForMessage(const std::string& topic, const std::string& payload = "") {
    return testing::WaitFor([&] { return Saw(topic, payload); }, 10000);
  }
  // Waits for a message whose payload contains every one of `parts`.
  bool WaitForPayloadWith(const std::vector<std::string>& parts, int timeout_ms) {
    return testing::WaitFor([&] {
      for (const Message& m : messages()) {
        bool all = true;
        for (const auto& part : parts) all &= m.payload.find(part) != std::string::npos;
        if (all) return true;
      }
      return false;
    }, timeout_ms);
  }
  std::vector<Message> messages() {
    std::lock_guard<std::mutex> l(mu_);
    return messages_;
  }
  Transport* transport() { return t_.get(); }

 private:
  std::function<void(const Message&)> on_message_;
  bool keep_;
  std::vector<std::string> filters_;
  std::unique_ptr<Transport> t_;
  std::mutex mu_;
  bool up_ = false;
  int drops_ = 0;
  std::vector<Message> messages_;
};

// The keys for `backup` a hub keeps in the state_dir at `dir`, as its
// daemon left them.
inline Result<std::vector<KeyEntry>> KeysIn(const std::string& dir, const std::string& backup) {
  auto store = NewPosixStateStore(dir);
  return KeyStore(store.get()).Load(backup);
}

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_HARNESS_H_
