// What `hubsync status` shows: every gateway's retained status as a table
// people read at a glance (a progress bar under a backup that is syncing),
// or as JSON for scripts. Pure formatting; no I/O.
#ifndef HUBSYNC_STATUS_VIEW_H_
#define HUBSYNC_STATUS_VIEW_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hubsync/messages.h"

namespace hubsync {

using StatusRows = std::map<std::string, GatewayStatus>;  // gateway id -> status

// Exit codes of `hubsync status` (README "Status at a glance"); 1 and 2 are
// every command's "fatal error" and "bad usage or configuration".
enum StatusExit {
  kStatusInSync = 0,             // every backup holds the primary's current tree
  kStatusNotInSync = 3,          // a backup is syncing, pending, behind, in error, offline or unknown
  kStatusBrokerRefused = 4,      // the broker answered and refused us (login, ACL, not MQTT 5)
  kStatusBrokerUnreachable = 5,  // nothing accepted a connection at broker.uri
  kStatusBrokerTimedOut = 6,     // the broker accepted a connection but never answered
};

// What the statuses on the broker say, checked against each other and the
// config: every backup in `configured` that has no status gets one whose
// state is "unknown", and one whose last status was as a primary no longer
// serving (offline or fenced, after a failover) is shown as a backup in
// that state; a backup that says in_sync but does not hold the
// primary's root is "pending" (with the primary's `due`) when the primary
// holds changes back by policy, else "behind". Without a primary's status a
// backup's claim cannot be checked and stays as it is (AllBackupsInSync
// then says false).
void ReconcileStatus(StatusRows* rows, const std::vector<std::string>& configured);

// The hubs that say they serve as primary now (role primary, neither
// offline nor fenced): more than one is a split brain (SPEC 11).
std::vector<std::string> Claimants(const StatusRows& rows);
// The primary whose claim wins (highest term, then smallest id) among the
// claimants, else among primaries heard of; null when there is none.
const StatusRows::value_type* CurrentPrimary(const StatusRows& rows);

// True when exactly one hub claims to be primary (or one has a status and
// none is live), there is at least one backup and every backup is in_sync.
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

// {"in_sync":bool,"primary":"<id>"|null,"term":N,"gateways":{"<id>":<status
// object as on the broker>,...}}
// (RapidJSON adapter, src/json.cc).
std::string EncodeStatusReport(const StatusRows& rows);

}  // namespace hubsync

#endif  // HUBSYNC_STATUS_VIEW_H_
