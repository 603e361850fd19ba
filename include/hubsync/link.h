// The bridge's message-oriented link to the peer hub: one SOCK_SEQPACKET
// socket, record boundaries kept. Two ways to make it, the same code above:
//   l2cap:BDADDR/PSM  an L2CAP LE credit-based channel (AF_BLUETOOTH,
//                     BTPROTO_L2CAP) at security level HIGH, so only an
//                     authenticated (OOB or passkey) pairing can carry it; the
//                     MTU comes from BT_SNDMTU. BDADDR is the peer to connect
//                     to, or the local adapter to listen on (00:00:00:00:00:00
//                     for any).
//   unix:PATH         AF_UNIX SOCK_SEQPACKET at PATH (tests, and hosts without
//                     Bluetooth), MTU 672 like an LE CoC default.
//
// Thread rule: one thread per Link.
#ifndef HUBSYNC_LINK_H_
#define HUBSYNC_LINK_H_

#include <memory>
#include <string>
#include <string_view>

#include "hubsync/status.h"

namespace hubsync {

class Link {
 public:
  virtual ~Link() = default;
  // Writes one record (never empty). Unavailable when the peer is gone.
  virtual Status Send(std::string_view record) = 0;
  // Waits up to timeout_ms for one record: the record, "" on timeout (records
  // are never empty), or Unavailable when the peer closed the link.
  virtual Result<std::string> Receive(int timeout_ms) = 0;
  virtual size_t mtu() const = 0;
};

// A listening endpoint; Accept waits for the peer.
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  // A connected link, or "" status Unavailable on timeout.
  virtual Result<std::unique_ptr<Link>> Accept(int timeout_ms) = 0;
};

// Parses "unix:PATH" or "l2cap:AA:BB:CC:DD:EE:FF/PSM"; InvalidArgument names
// what is wrong.
Status ValidateLinkSpec(const std::string& spec);
Result<std::unique_ptr<LinkListener>> ListenLink(const std::string& spec);
Result<std::unique_ptr<Link>> ConnectLink(const std::string& spec);

}  // namespace hubsync

#endif  // HUBSYNC_LINK_H_
