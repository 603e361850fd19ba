// Plaintext JSON messages on the broker: gateway status, events and the
// out-of-band pairing messages (SPEC 5, 6 and 8). None of them carries a file name, file content or key.
// Encoding and decoding live in the RapidJSON adapter (src/json.cc).
#ifndef HUBSYNC_MESSAGES_H_
#define HUBSYNC_MESSAGES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hubsync/status.h"

namespace hubsync {

// Every plaintext JSON message (status, policy, request, pairing) is bounded
// before it is parsed: at most this many bytes and 16 levels of nesting.
// Anything else is refused with Status::Rejected, never parsed.
inline constexpr size_t kMaxJsonMessageBytes = 64 * 1024;

// gw/<id>/status, retained.
struct GatewayStatus {
  std::string role;    // "primary" | "backup"
  std::string state;   // in_sync | syncing | pending | behind | error | offline | unknown
  std::string root;
  int64_t files = 0;
  int64_t bytes = 0;
  std::string last_sync;  // ISO-8601 UTC, "" if never
  int64_t lag_ms = 0;
  uint32_t key_epoch = 0;
  // SPEC 11: a primary's own term and id; a backup's highest seen term and
  // the primary of it (0 and "" before any).
  uint64_t term = 0;
  std::string primary;
  // During a sync (backup): bytes and entries (files, directories, links,
  // deletions) applied so far of the delta's totals; -1 when not syncing.
  int64_t progress_done = -1;
  int64_t progress_total = -1;
  int64_t progress_files_done = -1;
  int64_t progress_files_total = -1;
  // Policies applied (primary): module (or "default") -> PolicyHash.
  std::map<std::string, std::string> policies;
  std::string error;  // "" means null
  // Changes a policy holds back are due then (ISO-8601 UTC); "" when none
  // are held. The primary's; `hubsync status` copies it to pending backups.
  std::string due;
};
std::string EncodeStatus(const GatewayStatus& s);
Result<GatewayStatus> DecodeStatus(const std::string& json);

// One line on hubsync/v1/<home>/events.
struct Event {
  std::string type;   // sync | error | rejected | ...
  std::string gw;     // gateway that reports it
  std::map<std::string, int64_t> counts;
  std::map<std::string, std::string> fields;
};
std::string EncodeEvent(const Event& e);

// The `rejected` event for an input refused before anything acted on it:
// where it came from (`source`: "status", "policy", "manifest/req", "hello",
// ...), why, and its size; never its content.
inline Event RejectedEvent(const std::string& gw, const std::string& source,
                           const std::string& reason, size_t bytes) {
  return Event{"rejected", gw, {{"bytes", static_cast<int64_t>(bytes)}},
               {{"source", source}, {"reason", reason}}};
}
Result<Event> DecodeEvent(const std::string& json);

// Out-of-band pairing (SPEC 6), on hubsync/v1/<home>/oob/<backup>/hello and
// .../welcome, carried only by the OOB brokers and the BLE bridge.
struct PairHello {
  std::string backup;
  std::string pub;    // X25519 public key, hex
  std::string nonce;  // hex; echoed in the welcome
};
std::string EncodePairHello(const PairHello& h);
Result<PairHello> DecodePairHello(const std::string& json);

struct PairWelcome {
  std::string backup;
  std::string primary;  // the hub answering: the primary, or a standby
  std::string pub;
  std::string nonce;
  uint32_t epoch = 0;
  // Answered by a standby (SPEC 11): a hub that would serve `backup` if
  // promoted; the key is then `backup`'s record made by `primary`.
  bool standby = false;
};
std::string EncodePairWelcome(const PairWelcome& w);
Result<PairWelcome> DecodePairWelcome(const std::string& json);

// gw/<id>/promote (SPEC 11): hub software asks a backup to take over, as
// `hubsync promote` does. {"force":bool} (optional); never retained.
struct PromoteRequest {
  bool force = false;
};
Result<PromoteRequest> DecodePromoteRequest(const std::string& json);

}  // namespace hubsync

#endif  // HUBSYNC_MESSAGES_H_
