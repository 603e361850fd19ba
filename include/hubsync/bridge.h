// `hubsync bridge`: carries the out-of-band pairing topics between two hubs'
// local OOB brokers over a Link (BLE L2CAP in production).
//
// It subscribes to hubsync/v1/<home>/oob/<backup>/# on its local OOB broker
// (config oob.uri) and sends each message to the peer through the
// BridgeProtocol framing; what the peer sends is republished locally. The
// subscription is "no local", so a message the bridge republishes never comes
// back to it and is never sent back where it came from. A link serves one
// backup's pairing: messages outside oob/<backup>/ are neither sent nor
// accepted. The bridge reconnects the link and the broker by itself.
//
// Threads: Paho's callback thread only queues messages; everything else runs
// on the bridge's own loop.
#ifndef HUBSYNC_BRIDGE_H_
#define HUBSYNC_BRIDGE_H_

#include "hubsync/config.h"

namespace hubsync {

// Runs until SIGINT/SIGTERM; returns the exit code.
int RunBridge(const Config& config);

}  // namespace hubsync

#endif  // HUBSYNC_BRIDGE_H_
