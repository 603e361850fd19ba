// The Paho MQTT C++ adapter, the only file that includes <mqtt/...>.
// Paho runs every callback on its own thread; we only copy the message and
// pass it on. Paho exceptions become Status here.
#include <arpa/inet.h>
#include <dirent.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "hubsync/config.h"
#include "hubsync/transport.h"

namespace hubsync {
namespace {

int PortOf(const std::string& uri) {
  size_t colon = uri.rfind(':');
  return colon == std::string::npos ? -1 : std::atoi(uri.c_str() + colon + 1);
}

// Paho C leaves Nagle's algorithm on, and an MQTT exchange is a train of
// small writes (PUBACK, then our next PUBLISH): with Nagle and delayed ACKs
// each round trip stalls ~40 ms. Paho has no socket option hook, so after a
// connect we find our TCP sockets to the broker's port and set TCP_NODELAY.
// Setting it on a sibling client's socket to the same broker is harmless.
// Returns the sockets found.
std::vector<int> DisableNagleTowards(int port) {
  std::vector<int> found;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return found;
  while (struct dirent* de = readdir(d)) {
    int fd = std::atoi(de->d_name);
    if (fd <= 2) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    sockaddr_storage peer{};
    len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    int peer_port = -1;
    if (peer.ss_family == AF_INET) {
      peer_port = ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      peer_port = ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port);
    }
    if (peer_port != port) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    found.push_back(fd);
  }
  closedir(d);
  return found;
}

// A stock broker keeps Nagle on its side: after it writes us a small packet
// (a PUBACK), its next one (the message we wait for) waits until we ACK the
// first, and Linux delays that ACK up to ~40 ms. Setting TCP_QUICKACK sends
// an ACK that is being delayed at once; we do it whenever Paho has just read
// from the broker (a message, a PUBACK), so the broker's next write is never
// held for us (issue 10: one round trip on a stock broker).
void AckNow(const std::vector<int>& fds) {
  int one = 1;
  for (int fd : fds) setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

class MqttTransport : public Transport {
 public:
  explicit MqttTransport(const MqttOptions& o)
      : options_(o), client_(o.uri, o.client_id, mqtt::create_options(MQTTVERSION_5)) {}

  ~MqttTransport() override {
    StopRetries();
    try {
      client_.disable_callbacks();
      if (client_.is_connected()) client_.disconnect(100)->wait_for(std::chrono::seconds(1));
    } catch (const mqtt::exception&) {
    }
  }

  void SetHandlers(MessageHandler on_message, ConnectionHandler on_connection) override {
    on_message_ = std::move(on_message);
    on_connection_ = std::move(on_connection);
    client_.set_message_callback([this](mqtt::const_message_ptr msg) {
      Message m;
      m.topic = msg->get_topic();
      m.payload = msg->get_payload_str();
      m.qos = msg->get_qos();
      m.retained = msg->is_retained();
      const auto& props = msg->get_properties();
      try {
        if (props.contains(mqtt::property::RESPONSE_TOPIC)) {
          m.response_topic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
        }
        if (props.contains(mqtt::property::CORRELATION_DATA)) {
          m.correlation = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
        }
      } catch (const std::exception&) {
      }
      AckNowToBroker();
      on_message_(std::move(m));
    });
    client_.set_connected_handler([this](const std::string&) {
      std::vector<int> fds = DisableNagleTowards(PortOf(options_.uri));
      {
        std::lock_guard<std::mutex> lock(fds_mu_);
        broker_fds_ = std::move(fds);
      }
      on_connection_(true);
    });
    client_.set_connection_lost_handler([this](const std::string&) { on_connection_(false); });
  }

  Status Connect() override {
    try {
      auto b = mqtt::connect_options_builder()
                   .mqtt_version(MQTTVERSION_5)
                   .clean_start(true)
                   .keep_alive_interval(std::chrono::seconds(10))
                   .connect_timeout(std::chrono::seconds(5))
                   .automatic_reconnect(std::chrono::milliseconds(200), std::chrono::seconds(5));
      if (!options_.username.empty()) b.user_name(options_.username);
      if (!options_.password.empty()) b.password(options_.password);
      if (!options_.will.topic.empty()) {
        b.will(mqtt::message(options_.will.topic, options_.will.payload, options_.will.qos,
                             options_.will.retained));
      }
      bool tls = false;
      for (const char* s : {"ssl://", "mqtts://", "wss://"}) tls |= options_.uri.rfind(s, 0) == 0;
      if (tls) {
        // The chain must lead to the trust file (or the system's roots when
        // none is set) and the certificate must name the host we dialled.
        auto ssl = mqtt::ssl_options_builder();
        ssl.enable_server_cert_auth(true).verify(true);
        if (!options_.ca_file.empty()) ssl.trust_store(options_.ca_file);
        b.ssl(ssl.finalize());
      }
      conn_opts_ = b.finalize();
      retry_thread_ = std::thread([this] { RetryLoop(); });
      // The first attempt may fail (broker not up yet); keep trying in the
      // background until it works, like automatic reconnect does later.
      StartConnect();
      return Status::Ok();
    } catch (const mqtt::exception& e) {
      return Status::InvalidArgument(std::string("mqtt: ") + e.what());
    }
  }

  Status Subscribe(const std::string& filter, int qos) override {
    try {
      // No local: never see our own publishes.
      client_.subscribe(filter, qos, mqtt::subscribe_options(true));
      return Status::Ok();
    } catch (const mqtt::exception& e) {
      return Status::Unavailable(std::string("subscribe: ") + e.what());
    }
  }

  Status SubscribeAndWait(const std::string& filter, int qos) override {
    try {
      mqtt::subscribe_options so(true);
      mqtt::token_ptr tok = client_.subscribe(filter, qos, so);
      if (!tok->wait_for(std::chrono::seconds(5))) {
        return Status::Unavailable("subscribe " + filter + ": no answer from the broker in 5 s");
      }
      mqtt::subscribe_response granted = tok->get_subscribe_response();
      for (mqtt::ReasonCode rc : granted.get_reason_codes()) {
        if (rc >= mqtt::ReasonCode::UNSPECIFIED_ERROR) {
          return Status::Rejected("subscribe " + filter + ": the broker refused it (reason code " +
                                  std::to_string(static_cast<int>(rc)) + ")");
        }
      }
      return Status::Ok();
    } catch (const mqtt::exception& e) {
      return Status::Unavailable(std::string("subscribe: ") + e.what());
    }
  }

  Status Publish(const Message& m) override {
    if (!client_.is_connected()) return Status::Unavailable("not connected to the broker");
    if (in_flight_.load() >= options_.max_in_flight) {
      return Status::Unavailable("too many messages in flight");
    }
    try {
      mqtt::message_ptr_builder b;
      b.topic(m.topic).payload(m.payload).qos(m.qos).retained(m.retained);
      if (!m.response_topic.empty() || !m.correlation.empty()) {
        mqtt::properties props;
        if (!m.response_topic.empty()) {
          props.add(mqtt::property(mqtt::property::RESPONSE_TOPIC, m.response_topic));
        }
        if (!m.correlation.empty()) {
          props.add(mqtt::property(mqtt::property::CORRELATION_DATA, m.correlation));
        }
        b.properties(props);
      }
      ++in_flight_;
      client_.publish(b.finalize(), nullptr, listener_);
      return Status::Ok();
    } catch (const mqtt::exception& e) {
      --in_flight_;
      return Status::Unavailable(std::string("publish: ") + e.what());
    }
  }

  size_t InFlight() const override { return in_flight_.load(); }

  void Disconnect(const Message* final_message) override {
    StopRetries();
    try {
      if (final_message && client_.is_connected()) {
        auto tok = client_.publish(final_message->topic, final_message->payload.data(),
                                   final_message->payload.size(), final_message->qos,
                                   final_message->retained);
        tok->wait_for(std::chrono::seconds(2));
      }
      client_.disable_callbacks();
      if (client_.is_connected()) client_.disconnect(100)->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception&) {
    }
  }

 private:
  void AckNowToBroker() {
    std::lock_guard<std::mutex> lock(fds_mu_);
    AckNow(broker_fds_);
  }

  // Counts completions so Publish can bound what is in flight; a completion
  // is a PUBACK just read, so it is ACKed at once (AckNow).
  class Listener : public mqtt::iaction_listener {
   public:
    Listener(std::atomic<size_t>* n, MqttTransport* t) : n_(n), t_(t) {}
    void on_failure(const mqtt::token&) override { --*n_; }
    void on_success(const mqtt::token&) override {
      --*n_;
      t_->AckNowToBroker();
    }

   private:
    std::atomic<size_t>* n_;
    MqttTransport* t_;
  };

  class ConnectListener : public mqtt::iaction_listener {
   public:
    explicit ConnectListener(MqttTransport* t) : t_(t) {}
    void on_failure(const mqtt::token&) override { t_->RetryConnectLater(); }
    void on_success(const mqtt::token&) override {}

   private:
    MqttTransport* t_;
  };

  void StartConnect() {
    try {
      client_.connect(conn_opts_, nullptr, connect_listener_);
    } catch (const mqtt::exception&) {
      RetryConnectLater();
    }
  }

  // Called on a Paho thread when a connect attempt failed: a helper thread
  // retries, so the callback itself never blocks.
  void RetryConnectLater() {
    std::lock_guard<std::mutex> lock(mu_);
    retry_ = true;
    cv_.notify_all();
  }

  void RetryLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait(lock, [this] { return retry_ || stopping_; });
      if (stopping_) break;
      retry_ = false;
      cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_.load(); });
      if (stopping_) break;
      lock.unlock();
      StartConnect();
      lock.lock();
    }
  }

  void StopRetries() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (retry_thread_.joinable()) retry_thread_.join();
  }

  MqttOptions options_;
  mqtt::async_client client_;
  mqtt::connect_options conn_opts_;
  MessageHandler on_message_;
  ConnectionHandler on_connection_;
  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool retry_ = false;  // guarded by mu_
  std::thread retry_thread_;
  std::mutex fds_mu_;
  std::vector<int> broker_fds_;  // guarded by fds_mu_: our sockets to the broker
  Listener listener_{&in_flight_, this};
  ConnectListener connect_listener_{this};
};

}  // namespace

MqttOptions OobMqttOptions(const Config& c, const std::string& client_id) {
  MqttOptions mo;
  mo.uri = c.oob.uri;
  mo.client_id = client_id;
  mo.username = c.oob.username;
  mo.password = c.oob.password;
  return mo;
}

MqttOptions LanMqttOptions(const Config& c, const std::string& client_id) {
  MqttOptions mo;
  mo.uri = c.broker.uri;
  mo.client_id = client_id;
  mo.username = c.broker.username;
  mo.password = c.broker.password;
  mo.ca_file = c.broker.ca_file;
  return mo;
}

std::unique_ptr<Transport> NewMqttTransport(const MqttOptions& options) {
  return std::make_unique<MqttTransport>(options);
}

}  // namespace hubsync
