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

#include <atomic>

#include "hubsync/config.h"
#include "hubsync/engine.h"
#include "hubsync/transport.h"

namespace hubsync {

// Runs until SIGINT/SIGTERM on a Paho client of config.oob.uri; returns the
// exit code (2 for an unusable config).
int RunBridge(const Config& config);

// The same bridge over `local`, a Transport to the local OOB broker that is
// not connected yet (it must not deliver a client's own publishes back to
// it, as MQTT v5 "no local"). Runs on the calling thread until `stop`;
// returns 0, or 1 when the broker or the link cannot be set up.
int RunBridgeOn(const Config& config, Transport& local, const std::atomic<bool>& stop, LogFn log);

}  // namespace hubsync

#endif  // HUBSYNC_BRIDGE_H_
