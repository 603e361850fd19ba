#include "hubsync/bridge.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "hubsync/bridge_protocol.h"
#include "hubsync/clock.h"
#include "hubsync/crypto.h"
#include "hubsync/daemon.h"
#include "hubsync/engine.h"
#include "hubsync/link.h"
#include "hubsync/transport.h"

namespace hubsync {
namespace {

class Bridge {
 public:
  Bridge(const Config& c, Transport& local, LogFn log)
      : config_(c),
        transport_(local),
        log_(std::move(log)),
        backup_(c.bridge.backup.empty() ? c.gateway_id : c.bridge.backup),
        scope_(c.TopicPrefix() + "oob/" + backup_ + "/") {}

  int Run(const std::atomic<bool>& stop) {
    transport_.SetHandlers(
        [this](Message m) {
          std::lock_guard<std::mutex> l(mu_);
          inbox_.push_back(std::move(m));
        },
        [this](const LinkEvent& e) {
          if (e.up()) transport_.Subscribe(scope_ + "#", 1);
          std::lock_guard<std::mutex> l(broker_mu_);  // reports come from two threads
          broker_.Report(e);
        });
    Status s = transport_.Connect();
    if (!s.ok()) {
      log_(LogLevel::kError, "oob.uri: " + s.ToString());
      return 1;
    }
    std::unique_ptr<LinkListener> listener;
    if (config_.bridge.listen) {
      auto l = ListenLink(config_.bridge.link);
      if (!l.ok()) {
        log_(LogLevel::kError, "bridge.link: " + l.status().ToString());
        return 1;
      }
      listener = std::move(l).value();
    }
    log_(LogLevel::kInfo, "bridging " + scope_ + "# over " + config_.bridge.link +
                              (config_.bridge.listen ? " (listening)" : " (connecting)"));
    int64_t next_connect = 0;
    while (!stop.load()) {
      int64_t now = RealClock()->NowMs();
      if (!link_) {
        if (listener) {
          auto link = listener->Accept(100);
          if (link.ok()) Up(std::move(link).value(), now);
        } else if (now >= next_connect) {
          auto link = ConnectLink(config_.bridge.link);
          if (link.ok()) {
            Up(std::move(link).value(), now);
          } else {
            next_connect = now + 500;
            if (link.status().code() == Status::Code::kRejected) {
              log_(LogLevel::kError, link.status().message());
            }
          }
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      ForwardLocalMessages(now);
      if (link_) {
        auto record = link_->Receive(20);
        if (!record.ok()) {
          Down(record.status().message());
          continue;
        }
        if (!record->empty()) OnRecord(*record, now);
        Write(protocol_->Tick(now));
      }
    }
    transport_.Disconnect(nullptr);
    return 0;
  }

 private:
  void Up(std::unique_ptr<Link> link, int64_t now) {
    size_t mtu = link->mtu();
    link_ = std::move(link);
    log_(LogLevel::kInfo, "link up (MTU " + std::to_string(mtu) + ")");
    if (protocol_ && mtu_ == mtu) {
      Write(protocol_->Reconnected(now));  // what the peer did not acknowledge
    } else {
      // Frames are cut for one MTU: a new link with another MTU starts afresh.
      BridgeLimits limits;
      limits.mtu = mtu_ = mtu;
      protocol_ = std::make_unique<BridgeProtocol>(limits);
    }
    std::deque<std::string> waiting;
    waiting.swap(waiting_);
    for (const std::string& m : waiting) SendToPeer(m, now);
  }

  void SendToPeer(const std::string& encoded, int64_t now) {
    if (!link_) {
      if (waiting_.size() >= kMaxWaiting) waiting_.pop_front();  // oldest first
      waiting_.push_back(encoded);
      return;
    }
    auto frames = protocol_->Send(encoded, now);
    if (!frames.ok()) {
      log_(LogLevel::kWarn, "not bridged: " + frames.status().message());
      return;
    }
    Write(*frames);
  }

  void Down(const std::string& why) {
    log_(LogLevel::kWarn, "link down: " + why);
    link_.reset();
    if (protocol_) protocol_->OnDisconnect();
  }

  void Write(const std::vector<std::string>& frames) {
    for (const auto& f : frames) {
      if (!link_) return;
      Status s = link_->Send(f);
      if (!s.ok()) return Down(s.message());
    }
  }

  void ForwardLocalMessages(int64_t now) {
    std::deque<Message> batch;
    {
      std::lock_guard<std::mutex> l(mu_);
      batch.swap(inbox_);
    }
    for (const Message& m : batch) {
      if (m.topic.compare(0, scope_.size(), scope_) != 0) continue;
      log_(LogLevel::kDebug, "to peer: " + m.topic);
      SendToPeer(EncodeBridgeMessage(m.topic, m.payload), now);
    }
  }

  void OnRecord(const std::string& record, int64_t now) {
    std::vector<std::string> out, delivered;
    Status s = protocol_->OnFrame(record, now, &out, &delivered);
    if (!s.ok()) log_(LogLevel::kWarn, "dropped a frame: " + s.message());
    Write(out);
    for (const std::string& d : delivered) {
      Message m;
      if (!DecodeBridgeMessage(d, &m.topic, &m.payload).ok()) continue;
      // The peer may only speak for this link's backup.
      if (m.topic.compare(0, scope_.size(), scope_) != 0) {
        log_(LogLevel::kWarn, "refused a message from the peer outside " + scope_);
        continue;
      }
      log_(LogLevel::kDebug, "from peer: " + m.topic);
      if (!transport_.Publish(m).ok()) log_(LogLevel::kWarn, "could not republish locally");
    }
  }

  Config config_;
  Transport& transport_;
  LogFn log_;
  std::string backup_, scope_;
  std::unique_ptr<Link> link_;
  std::unique_ptr<BridgeProtocol> protocol_;
  size_t mtu_ = 0;
  static constexpr size_t kMaxWaiting = 64;
  std::deque<std::string> waiting_;  // encoded messages for a link not up yet
  std::mutex mu_;
  std::deque<Message> inbox_;  // guarded by mu_
  std::mutex broker_mu_;
  BrokerLink broker_{"the OOB broker", config_, RealClock(), log_};  // guarded by broker_mu_
};

}  // namespace

int RunBridgeOn(const Config& config, Transport& local, const std::atomic<bool>& stop, LogFn log) {
  Bridge bridge(config, local, std::move(log));
  return bridge.Run(stop);
}

int RunBridge(const Config& config) {
  LogFn log = StderrLogger("bridge/" + config.gateway_id, config.log_level);
  if (config.oob.uri.empty()) {
    log(LogLevel::kError, "oob.uri: required for hubsync bridge");
    return 2;
  }
  if (config.bridge.link.empty()) {
    log(LogLevel::kError, "bridge.link: required for hubsync bridge");
    return 2;
  }
  Status s = ValidateLinkSpec(config.bridge.link);
  if (!s.ok()) {
    log(LogLevel::kError, s.message());
    return 2;
  }
  std::atomic<bool> stop{false};
  std::thread signals([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    stop = true;
  });
  // One bridge per link: two bridges of one hub (a backup's to its primary
  // and to a standby, which carry the same backup's topics) must not share
  // a client id, or each would take the other's session. The link names it.
  Digest link = Sha256Of(config.bridge.link);
  MqttOptions mo = OobMqttOptions(config, "hubsync-bridge-" + config.home + "-" +
                                              config.gateway_id +
                                              (config.bridge.backup.empty() ? "" : "-" + config.bridge.backup) +
                                              "-" + ToHex(link.data(), 4));
  std::unique_ptr<Transport> local = NewMqttTransport(mo);
  int rc = RunBridgeOn(config, *local, stop, log);
  if (!stop) kill(getpid(), SIGTERM);  // release the signal thread on a fatal error
  signals.join();
  log(LogLevel::kInfo, "stopped");
  return rc;
}

}  // namespace hubsync
