// The framing the BLE bridge speaks over a message-oriented link (an L2CAP LE
// credit-based channel, or AF_UNIX SOCK_SEQPACKET in tests). Pure: no I/O;
// time comes in as arguments.
//
// A message (an MQTT topic and payload from the OOB broker) is split into
// frames of at most `mtu` bytes, each with a 13-byte header:
//   type(1: 1 data, 2 ack) id(4) index(2) count(2) total(4)
// The receiver reassembles (bounded in size, number and age), acknowledges a
// complete message, delivers it once, and re-acknowledges duplicates without
// delivering them again. The sender retransmits a message whose ack is late,
// a bounded number of times. A frame is never empty (the header is always
// there), which matters because a zero-length SEQPACKET record reads as EOF.
//
// Thread rule: one thread.
#ifndef HUBSYNC_BRIDGE_PROTOCOL_H_
#define HUBSYNC_BRIDGE_PROTOCOL_H_

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/status.h"

namespace hubsync {

inline constexpr size_t kFrameHeaderBytes = 13;

struct BridgeLimits {
  size_t mtu = 672;                      // bytes per frame (BT_SNDMTU on L2CAP)
  size_t max_message = 64 * 1024;        // OOB messages are small
  size_t max_partial = 8;                // messages being reassembled at once
  int64_t reassembly_timeout_ms = 5000;  // a partial message older than this is dropped
  int64_t retransmit_ms = 1000;
  int max_retries = 5;
  size_t dedup_window = 256;             // ids remembered as delivered
};

class BridgeProtocol {
 public:
  explicit BridgeProtocol(BridgeLimits limits = {});

  // Queues `message` and returns the frames to write now. InvalidArgument if
  // it is larger than max_message or the MTU cannot carry a header.
  Result<std::vector<std::string>> Send(std::string_view message, int64_t now_ms);

  // Handles one received frame: appends frames to write (acks) to `out` and
  // completed messages to `delivered`. Malformed frames are counted and
  // dropped (Corruption), never fatal to the link.
  Status OnFrame(std::string_view frame, int64_t now_ms, std::vector<std::string>* out,
                 std::vector<std::string>* delivered);

  // Retransmits late messages and drops stale partial ones; returns frames
  // to write. Messages out of retries are dropped and counted.
  std::vector<std::string> Tick(int64_t now_ms);

  // The link went down: partial messages are discarded; unacknowledged ones
  // are sent again (all their frames) by the first Tick after Reconnected.
  void OnDisconnect();
  std::vector<std::string> Reconnected(int64_t now_ms);

  size_t unacked() const { return pending_.size(); }
  uint64_t dropped() const { return dropped_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t duplicates() const { return duplicates_; }

 private:
  struct Outgoing {
    std::vector<std::string> frames;
    int64_t sent_ms = 0;
    int retries = 0;
  };
  struct Partial {
    uint16_t count = 0;
    uint32_t total = 0;
    int64_t started_ms = 0;
    std::map<uint16_t, std::string> parts;
    size_t bytes = 0;
  };
  std::string Ack(uint32_t id) const;

  BridgeLimits limits_;
  uint32_t next_id_;
  std::map<uint32_t, Outgoing> pending_;
  std::map<uint32_t, Partial> partial_;
  std::set<uint32_t> delivered_;
  std::deque<uint32_t> delivered_order_;
  uint64_t dropped_ = 0, malformed_ = 0, duplicates_ = 0;
};

// The bridge's message inside the framing: u16 topic length, topic, payload.
std::string EncodeBridgeMessage(const std::string& topic, std::string_view payload);
Status DecodeBridgeMessage(std::string_view m, std::string* topic, std::string* payload);

}  // namespace hubsync

#endif  // HUBSYNC_BRIDGE_PROTOCOL_H_
