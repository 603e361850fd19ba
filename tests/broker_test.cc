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

}  // namespace
}  // namespace testing
}  // namespace hubsync
