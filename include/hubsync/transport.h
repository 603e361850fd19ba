// The Transport seam: the few things hubsync needs from MQTT.
//
// Real implementation: the Paho MQTT C++ adapter (src/mqtt_transport.cc, MQTT
// v5). Handlers run on the transport's own thread and must not block: they
// hand work to the engine's thread (see EventLoop). Publish only queues; it
// fails fast (Unavailable) when disconnected or when too many messages are
// in flight, and the engines recover end to end instead of relying on the
// broker to keep anything.
#ifndef HUBSYNC_TRANSPORT_H_
#define HUBSYNC_TRANSPORT_H_

#include <functional>
#include <memory>
#include <string>

#include "hubsync/status.h"

namespace hubsync {

struct Message {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retained = false;
  std::string response_topic;  // MQTT v5 property, "" if none
  std::string correlation;     // MQTT v5 correlation data, "" if none
};

class Transport {
 public:
  using MessageHandler = std::function<void(Message)>;
  using ConnectionHandler = std::function<void(bool connected)>;
  virtual ~Transport() = default;
  // Set before Connect.
  virtual void SetHandlers(MessageHandler on_message, ConnectionHandler on_connection) = 0;
  // Starts connecting and keeps reconnecting until Disconnect. Returns an
  // error only for unusable options.
  virtual Status Connect() = 0;
  // Subscriptions do not survive a reconnect: resubscribe on connected.
  // Asks for a subscription and returns at once (fine in a handler).
  virtual Status Subscribe(const std::string& filter, int qos) = 0;
  // Returns once the broker has granted the subscription (so a message
  // published after that and matching it is delivered), or says why not:
  // refused (Rejected, with the broker's reason), no answer, not connected.
  // Waits for the broker (up to 5 s): never call it in a handler. A
  // transport whose Subscribe completes at once need not override it.
  virtual Status SubscribeAndWait(const std::string& filter, int qos) {
    return Subscribe(filter, qos);
  }
  virtual Status Publish(const Message& m) = 0;
  virtual size_t InFlight() const = 0;
  // Publishes `final_message` (if any) and disconnects; blocks up to 2 s.
  virtual void Disconnect(const Message* final_message) = 0;
};

struct MqttOptions {
  std::string uri;
  std::string client_id;
  std::string username;
  std::string password;
  std::string ca_file;       // ssl:// URIs: trust file (empty: system roots); chain and
                             // host name are always verified
  Message will;              // topic "" means no will
  size_t max_in_flight = 64;
};

std::unique_ptr<Transport> NewMqttTransport(const MqttOptions& options);

struct Config;
// Options for the hub (LAN) broker from a config: URI and credentials.
MqttOptions LanMqttOptions(const Config& c, const std::string& client_id);
// Options for this hub's OOB listener (oob.uri and its account).
MqttOptions OobMqttOptions(const Config& c, const std::string& client_id);

}  // namespace hubsync

#endif  // HUBSYNC_TRANSPORT_H_
