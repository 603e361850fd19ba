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

// What became of the link to the broker. Every failed attempt and every
// loss is reported with its reason, so people can act on it (SPEC 3: status
// tells "refused" from "unreachable").
struct LinkEvent {
  enum class Kind {
    kUp,           // connected; the limits below are what the broker announced
    kRefused,      // the broker answered CONNECT with an error (bad login, banned, ...)
    kUnreachable,  // no TCP connection to the broker's address
    kTimedOut,     // TCP connected, but no CONNACK came in time
    kNotMqtt5,     // the broker closed the connection before its CONNACK, or
                   // refused the protocol version: it may speak only MQTT 3.1.1
    kDropped,      // an established connection was lost or closed by the broker
  };
  Kind kind = Kind::kUp;
  std::string reason;  // one line for a log, e.g. "refused: Not authorized (CONNACK 135)"
  // kUp: the broker's Maximum Packet Size and Receive Maximum from its
  // CONNACK; 0 when it announced none.
  uint32_t max_packet_bytes = 0;
  uint32_t receive_maximum = 0;
  // kDropped: the reason code of the broker's DISCONNECT (0 when the
  // connection just closed), the largest of our messages that was still
  // unacknowledged, and the largest the broker acknowledged on that
  // connection (a broker that does not announce its packet limit drops the
  // connection on a message over it).
  int disconnect_code = 0;
  size_t largest_unacked = 0;
  size_t largest_acked = 0;

  bool up() const { return kind == Kind::kUp; }
  static LinkEvent Up() { return LinkEvent(); }
  static LinkEvent Down(Kind k, std::string why) {
    LinkEvent e;
    e.kind = k;
    e.reason = std::move(why);
    return e;
  }
};

// The MQTT 5 reason code 0x95: the broker closes a connection that sent it a
// packet over its limit.
constexpr int kPacketTooLarge = 149;

class Transport {
 public:
  using MessageHandler = std::function<void(Message)>;
  using ConnectionHandler = std::function<void(const LinkEvent&)>;
  virtual ~Transport() = default;
  // Set before Connect.
  virtual void SetHandlers(MessageHandler on_message, ConnectionHandler on_connection) = 0;
  // Starts connecting and keeps reconnecting (backing off from 250 ms to
  // 5 s) until Disconnect, reporting each failed attempt and each loss to the
  // connection handler. Returns an error only for unusable options.
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
