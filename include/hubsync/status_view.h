// What `hubsync status` shows: every gateway's retained status as a table
// people read at a glance (a progress bar under a backup that is syncing),
// or as JSON for scripts. Pure formatting; no I/O.
#ifndef HUBSYNC_STATUS_VIEW_H_
#define HUBSYNC_STATUS_VIEW_H_

#include <cstdint>
#include <map>
#include <string>

#include "hubsync/messages.h"

namespace hubsync {

using StatusRows = std::map<std::string, GatewayStatus>;  // gateway id -> status

// True when there is at least one backup and every backup is in_sync.
bool AllBackupsInSync(const StatusRows& rows);

// The table: a header, one row per gateway (primary first), a progress line
// under each gateway that reports progress, an error line under each that
// reports an error, and a summary line.
std::string FormatStatusTable(const StatusRows& rows);

// "[#########-----------]  45%" for done of total (total > 0).
std::string ProgressBar(int64_t done, int64_t total, int width);
// 1536 -> "1.5 KiB"; 0 -> "0 B".
std::string HumanBytes(int64_t bytes);
// 0 -> "0 s", 1500 -> "1.5 s", 125000 -> "2 min", 7200000 -> "2 h".
std::string HumanDuration(int64_t ms);

// {"in_sync":bool,"gateways":{"<id>":<status object as on the broker>,...}}
// (RapidJSON adapter, src/json.cc).
std::string EncodeStatusReport(const StatusRows& rows);

}  // namespace hubsync

#endif  // HUBSYNC_STATUS_VIEW_H_
