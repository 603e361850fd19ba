#include "hubsync/admission.h"

#include <cstdlib>

#include "hubsync/config.h"
#include "hubsync/keystore.h"

namespace hubsync {
namespace {

constexpr char kWindow[] = "pairing-window";
std::string RevokedName(const std::string& b) { return "revoked/" + b; }
std::string AdmittedName(const std::string& b) { return "admitted/" + b; }

}  // namespace

Status OpenPairingWindow(StateStore* store, int64_t seconds, int64_t now_mono_ms,
                         const std::string& boot_id) {
  return store->Put(kWindow, boot_id + " " + std::to_string(now_mono_ms + seconds * 1000) + "\n");
}

bool PairingWindowOpen(const StateStore& store, int64_t now_mono_ms, const std::string& boot_id) {
  auto text = store.Get(kWindow);
  if (!text.ok()) return false;
  size_t space = text->find(' ');
  if (space == std::string::npos || text->substr(0, space) != boot_id) return false;
  return std::atoll(text->c_str() + space + 1) > now_mono_ms;
}

Status Revoke(StateStore* store, const std::string& backup) {
  if (!IsValidId(backup)) return Status::InvalidArgument("bad backup id");
  HUBSYNC_RETURN_IF_ERROR(store->Put(RevokedName(backup), "revoked\n"));
  HUBSYNC_RETURN_IF_ERROR(store->Remove(AdmittedName(backup)));
  return KeyStore(store).Remove(backup);
}

bool IsRevoked(const StateStore& store, const std::string& backup) {
  return IsValidId(backup) && store.Has(RevokedName(backup));
}

std::vector<std::string> RevokedBackups(const StateStore& store) {
  std::vector<std::string> out;
  for (const std::string& id : store.List("revoked")) {
    if (IsValidId(id)) out.push_back(id);
  }
  return out;
}

Status Admit(StateStore* store, const std::string& backup, bool by_window) {
  if (!IsValidId(backup)) return Status::InvalidArgument("bad backup id");
  HUBSYNC_RETURN_IF_ERROR(store->Remove(RevokedName(backup)));
  return by_window ? store->Put(AdmittedName(backup), "admitted\n") : Status::Ok();
}

bool IsAdmitted(const StateStore& store, const std::string& backup) {
  return IsValidId(backup) && store.Has(AdmittedName(backup));
}

}  // namespace hubsync
