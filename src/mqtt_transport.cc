// The Paho MQTT C++ adapter, the only file that includes <mqtt/...>.
// Paho runs every callback on its own thread; we only copy the message and
// pass it on. Paho exceptions become Status here.
#include <arpa/inet.h>
#include <dirent.h>
#include <mqtt/async_client.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

// host and port of tcp://HOST:PORT, ssl://[::1]:PORT, ...; false if none.
bool HostPort(const std::string& uri, std::string* host, std::string* port) {
  size_t scheme = uri.find("://");
  std::string rest = uri.substr(scheme == std::string::npos ? 0 : scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon + 1 == rest.size()) return false;
  *host = rest.substr(0, colon);
  *port = rest.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !host->empty();
}

// Whether a plain TCP connection to the broker's address opens within a
// second: tells "nothing listens there" from "something listens but did not
// speak MQTT 5 with us". "" when it opens, else why not.
std::string ProbeTcp(const std::string& uri) {
  std::string host, port;
  if (!HostPort(uri, &host, &port)) return "";  // cannot tell: assume it opens
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
  }
  std::string why = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 1000) == 1) {
          socklen_t len = sizeof err;
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        } else {
          err = ETIMEDOUT;
        }
      }
    }
    close(fd);
    if (err == 0) {
      freeaddrinfo(found);
      return "";
    }
    why = strerror(err);
  }
  freeaddrinfo(found);
  return why;
}

// Why a CONNECT failed, from Paho's return code (a CONNACK reason code when
// the broker answered) and how long the attempt took.
LinkEvent ClassifyFailure(const MqttOptions& o, int rc, std::chrono::milliseconds took,
                          std::chrono::milliseconds timeout) {
  using Kind = LinkEvent::Kind;
  std::string where = " (" + o.uri + ")";
  if (rc == 1 || rc == 132) {  // MQTT 3.1.1's and MQTT 5's "unsupported protocol version"
    return LinkEvent::Down(Kind::kNotMqtt5, "the broker does not accept MQTT 5 (CONNACK " +
                                                std::to_string(rc) + "): hubsync needs an MQTT 5 broker" + where);
  }
  if (rc > 0) {
    std::string name = rc >= 128 ? MQTTReasonCode_toString(static_cast<MQTTReasonCodes>(rc))
                       : rc == 4 ? "Bad user name or password"
                       : rc == 5 ? "Not authorized"
                                 : "refused";
    return LinkEvent::Down(Kind::kRefused, "the broker refused the connection: " + name +
                                               " (CONNACK " + std::to_string(rc) +
                                               "); check broker.username and broker.password_file" + where);
  }
  std::string unreachable = ProbeTcp(o.uri);
  if (!unreachable.empty()) {
    return LinkEvent::Down(Kind::kUnreachable, "cannot reach the broker: " + unreachable + where);
  }
  if (took + std::chrono::milliseconds(500) >= timeout) {
    return LinkEvent::Down(Kind::kTimedOut, "the broker accepted a TCP connection but sent no CONNACK in " +
                                                std::to_string(timeout.count() / 1000) + " s" + where);
  }
  bool tls = o.uri.rfind("ssl://", 0) == 0 || o.uri.rfind("mqtts://", 0) == 0 ||
             o.uri.rfind("wss://", 0) == 0;
  std::string also;
  if (tls) also += " Or TLS failed: check broker.ca_file and the certificate's host name.";
  if (o.username.empty()) {
    also += " Or it wants a user name and password, as ejabberd does: set broker.username and "
            "broker.password_file.";
  }
  return LinkEvent::Down(Kind::kNotMqtt5,
                         "the connection was closed before the broker's CONNACK: does this broker "
                         "speak MQTT 5?" + where + also);
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
      LinkEvent e = LinkEvent::Up();
      e.max_packet_bytes = max_packet_.load();
      e.receive_maximum = receive_maximum_.load();
      largest_acked_ = 0;
      up_ = true;
      on_connection_(e);
    });
    client_.set_connection_lost_handler([this](const std::string& cause) {
      Lost(0, cause.empty() ? "the connection to the broker was lost" : "connection lost: " + cause);
    });
    client_.set_disconnected_handler([this](const mqtt::properties&, mqtt::ReasonCode rc) {
      int code = static_cast<int>(rc);
      Lost(code, "the broker closed the connection: " +
                     std::string(MQTTReasonCode_toString(static_cast<MQTTReasonCodes>(code))) +
                     " (DISCONNECT " + std::to_string(code) + ")");
    });
  }

  Status Connect() override {
    try {
      // We reconnect ourselves (RetryLoop) rather than through Paho's
      // automatic reconnect, which never says why an attempt failed.
      auto b = mqtt::connect_options_builder()
                   .mqtt_version(MQTTVERSION_5)
                   .clean_start(true)
                   .keep_alive_interval(std::chrono::seconds(10))
                   .connect_timeout(kConnectTimeout);
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
    // The broker's Receive Maximum bounds what may be unacknowledged.
    size_t window = options_.max_in_flight;
    if (uint32_t rm = receive_maximum_.load(); rm > 0) window = std::min<size_t>(window, rm);
    if (in_flight_.load() >= window) return Status::Unavailable("too many messages in flight");
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
      if (++in_flight_ == 1) largest_unacked_ = 0;
      size_t size = m.payload.size();
      if (size > largest_unacked_.load()) largest_unacked_ = size;
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
  static constexpr std::chrono::milliseconds kConnectTimeout{5000};
  static constexpr std::chrono::milliseconds kFirstRetry{250}, kMaxRetry{5000};

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
    void on_success(const mqtt::token& tok) override {
      --*n_;
      t_->AckNowToBroker();
      if (auto* d = dynamic_cast<const mqtt::delivery_token*>(&tok); d && d->get_message()) {
        size_t size = d->get_message()->get_payload().size();
        size_t seen = t_->largest_acked_.load();
        while (size > seen && !t_->largest_acked_.compare_exchange_weak(seen, size)) {
        }
      }
    }

   private:
    std::atomic<size_t>* n_;
    MqttTransport* t_;
  };

  class ConnectListener : public mqtt::iaction_listener {
   public:
    explicit ConnectListener(MqttTransport* t) : t_(t) {}
    void on_failure(const mqtt::token& tok) override { t_->AttemptFailed(tok.get_return_code()); }
    void on_success(const mqtt::token& tok) override {
      // The broker's limits from its CONNACK, read before the connected
      // handler reports them.
      uint32_t max_packet = 0, receive_maximum = 0;
      try {
        mqtt::connect_response r = tok.get_connect_response();
        const mqtt::properties& p = r.get_properties();
        if (p.contains(mqtt::property::MAXIMUM_PACKET_SIZE)) {
          max_packet = mqtt::get<uint32_t>(p, mqtt::property::MAXIMUM_PACKET_SIZE);
        }
        if (p.contains(mqtt::property::RECEIVE_MAXIMUM)) {
          receive_maximum = mqtt::get<uint16_t>(p, mqtt::property::RECEIVE_MAXIMUM);
        }
      } catch (const std::exception&) {
      }
      t_->max_packet_ = max_packet;
      t_->receive_maximum_ = receive_maximum;
      std::lock_guard<std::mutex> lock(t_->mu_);
      t_->backoff_ = kFirstRetry;
    }

   private:
    MqttTransport* t_;
  };

  void StartConnect() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt_start_ = std::chrono::steady_clock::now();
    }
    try {
      client_.connect(conn_opts_, nullptr, connect_listener_);
    } catch (const mqtt::exception& e) {
      AttemptFailed(e.get_return_code());
    }
  }

  // On a Paho thread: a connect attempt failed. The retry thread says why
  // and tries again, so the callback itself never blocks.
  void AttemptFailed(int rc) {
    std::lock_guard<std::mutex> lock(mu_);
    failed_rc_ = rc;
    failed_took_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - attempt_start_);
    failed_ = retry_ = true;
    cv_.notify_all();
  }

  // On a Paho thread: an established connection is gone (reported once).
  void Lost(int disconnect_code, const std::string& why) {
    if (!up_.exchange(false)) return;
    LinkEvent e = LinkEvent::Down(LinkEvent::Kind::kDropped, why);
    e.disconnect_code = disconnect_code;
    e.largest_unacked = in_flight_.load() > 0 ? largest_unacked_.load() : 0;
    e.largest_acked = largest_acked_.load();
    on_connection_(e);
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
      if (failed_) {
        failed_ = false;
        int rc = failed_rc_;
        auto took = failed_took_;
        lock.unlock();
        LinkEvent e = ClassifyFailure(options_, rc, took, kConnectTimeout);  // may probe: ~1 s
        on_connection_(e);
        lock.lock();
      }
      auto wait = backoff_;
      backoff_ = std::min(kMaxRetry, backoff_ * 2);
      cv_.wait_for(lock, wait, [this] { return stopping_.load(); });
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
  std::atomic<size_t> largest_unacked_{0};  // since in_flight_ was last 0
  std::atomic<size_t> largest_acked_{0};    // on this connection
  std::atomic<bool> up_{false};
  std::atomic<uint32_t> max_packet_{0}, receive_maximum_{0};  // from the last CONNACK
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool retry_ = false;   // guarded by mu_: the retry thread has work
  bool failed_ = false;  // guarded by mu_: an attempt failed, not yet reported
  int failed_rc_ = 0;    // guarded by mu_
  std::chrono::milliseconds failed_took_{0};                  // guarded by mu_
  std::chrono::steady_clock::time_point attempt_start_;       // guarded by mu_
  std::chrono::milliseconds backoff_ = kFirstRetry;           // guarded by mu_
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
