// Home Assistant MQTT discovery (optional, config homeassistant.discovery):
// each backup appears as a device with an "In sync" binary sensor and "Lag" and
// "Last sync" sensors, all read from its retained status topic, available
// while that status is not "offline" (its LWT). Built by the RapidJSON adapter
// (src/json.cc); published retained by the primary.
#ifndef HUBSYNC_HA_DISCOVERY_H_
#define HUBSYNC_HA_DISCOVERY_H_

#include <string>
#include <vector>

#include "hubsync/config.h"
#include "hubsync/transport.h"

namespace hubsync {

// The retained config messages for `backup`, on
// <prefix>/<component>/hubsync_<home>_<backup>/<object>/config.
std::vector<Message> HomeAssistantDiscovery(const Config& c, const std::string& backup);

}  // namespace hubsync

#endif  // HUBSYNC_HA_DISCOVERY_H_
