// Home Assistant MQTT discovery (optional, config homeassistant.discovery):
// each backup appears as a device with an "In sync" binary sensor and "Lag",
// "Last sync" and "Primary" (the one it follows) sensors, the primary as one
// with "Backups in sync", "State", "Held changes due", "Primary" and "Term"
// (SPEC 11: itself, or the hub that fenced it), all read from the gateway's retained status topic,
// available while that status is not "offline" (its LWT). Entity ids are set
// with default_entity_id (Home Assistant 2025.10 and later; object_id is no
// longer honoured since 2026.4). Built by the RapidJSON adapter
// (src/json.cc); published retained by the primary when it connects and
// whenever Home Assistant announces itself (<prefix>/status "online").
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
// The primary's own device (the config's gateway).
std::vector<Message> HomeAssistantPrimaryDiscovery(const Config& c);
// Empty retained payloads on `backup`'s config topics: Home Assistant removes
// a revoked backup's entities, and the broker forgets their configs.
std::vector<Message> HomeAssistantRemoval(const Config& c, const std::string& backup);

}  // namespace hubsync

#endif  // HUBSYNC_HA_DISCOVERY_H_
