// Pairing admission on the primary, kept in its StateStore:
//   pairing-window    "<boot id> <deadline on the monotonic clock, ms>", opened
//                     by `hubsync pair --window S` (like a hub's pairing button)
//   revoked/<backup>  revoked by `hubsync unpair` (or by leaving the config):
//                     its hellos and messages are refused until it pairs again
//                     through a window
//   admitted/<backup> paired through a window although not in `backups`, so a
//                     restart keeps it
// The window runs on the monotonic clock (Clock::NowMs, system-wide) of the
// boot it was opened in: a wall-clock deadline reopened it when a hub booted
// with an earlier clock; after a reboot it is closed.
#ifndef HUBSYNC_ADMISSION_H_
#define HUBSYNC_ADMISSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "hubsync/state_store.h"
#include "hubsync/status.h"

namespace hubsync {

Status OpenPairingWindow(StateStore* store, int64_t seconds, int64_t now_mono_ms,
                         const std::string& boot_id);
bool PairingWindowOpen(const StateStore& store, int64_t now_mono_ms, const std::string& boot_id);

// Removes the backup's key and admission and marks it revoked.
Status Revoke(StateStore* store, const std::string& backup);
bool IsRevoked(const StateStore& store, const std::string& backup);
// Every backup marked revoked.
std::vector<std::string> RevokedBackups(const StateStore& store);
// A completed pairing: clears the revocation and, when `by_window`, records
// the admission.
Status Admit(StateStore* store, const std::string& backup, bool by_window);
bool IsAdmitted(const StateStore& store, const std::string& backup);

}  // namespace hubsync

#endif  // HUBSYNC_ADMISSION_H_
