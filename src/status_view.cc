#include "hubsync/status_view.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "hubsync/term.h"

namespace hubsync {
namespace {

std::string Fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

// Primary first, then backups, each by id.
std::vector<const StatusRows::value_type*> Ordered(const StatusRows& rows) {
  std::vector<const StatusRows::value_type*> out;
  for (const auto& r : rows) {
    if (r.second.role == "primary") out.push_back(&r);
  }
  for (const auto& r : rows) {
    if (r.second.role != "primary") out.push_back(&r);
  }
  return out;
}

// Status strings come from the broker, where any gateway writes its own:
// only printable ASCII reaches the terminal (no escape sequences), cut to
// `max` bytes.
std::string Printable(const std::string& s, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() == max) break;
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

}  // namespace

std::vector<std::string> Claimants(const StatusRows& rows) {
  std::vector<std::string> out;
  for (const auto& [id, st] : rows) {
    if (st.role == "primary" && st.state != "offline" && st.state != "fenced") out.push_back(id);
  }
  return out;
}

const StatusRows::value_type* CurrentPrimary(const StatusRows& rows) {
  const StatusRows::value_type* best = nullptr;
  auto claim = [](const StatusRows::value_type& r) { return Claim{std::max<uint64_t>(r.second.term, 1), r.first}; };
  for (const std::string& id : Claimants(rows)) {
    const auto& r = *rows.find(id);
    if (!best || Beats(claim(r), claim(*best))) best = &r;
  }
  if (best) return best;
  for (const auto& r : rows) {  // none live: the last one heard of
    if (r.second.role == "primary" && r.second.state != "fenced" &&
        (!best || Beats(claim(r), claim(*best)))) {
      best = &r;
    }
  }
  return best;
}

void ReconcileStatus(StatusRows* rows, const std::vector<std::string>& configured) {
  const auto* current = CurrentPrimary(*rows);
  const GatewayStatus* primary = current ? &current->second : nullptr;
  for (auto& [id, st] : *rows) {
    if (!primary || st.role != "backup" || st.state != "in_sync" || st.root == primary->root) continue;
    st.state = primary->due.empty() ? "behind" : "pending";
    st.due = primary->due;
  }
  std::vector<std::string> claimants = Claimants(*rows);
  for (const std::string& id : configured) {
    auto it = rows->find(id);
    if (it != rows->end() && it->second.role == "primary" &&
        std::find(claimants.begin(), claimants.end(), id) == claimants.end()) {
      // A configured backup whose last word was as a primary (an old
      // primary, offline or fenced, after a failover): a backup not in sync.
      it->second.role = "backup";
      continue;
    }
    if (it != rows->end()) continue;
    GatewayStatus unknown;
    unknown.role = "backup";
    unknown.state = "unknown";
    (*rows)[id] = unknown;
  }
}

bool AllBackupsInSync(const StatusRows& rows) {
  int backups = 0, primaries = 0;
  if (Claimants(rows).size() > 1) return false;  // split brain
  for (const auto& [id, st] : rows) {
    if (st.role == "primary" && st.state != "fenced") ++primaries;
    if (st.role != "backup") continue;
    ++backups;
    if (st.state != "in_sync") return false;
  }
  return backups > 0 && primaries > 0;
}

std::string HumanBytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return std::to_string(bytes) + " B";
  return Fmt(v < 10 ? "%.1f " : "%.0f ", v) + kUnits[u];
}

std::string HumanDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 10000) return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : Fmt("%.1f s", ms / 1000.0);
  if (ms < 120000) return std::to_string(ms / 1000) + " s";
  if (ms < 7200000) return std::to_string(ms / 60000) + " min";
  if (ms < 172800000) return std::to_string(ms / 3600000) + " h";
  return std::to_string(ms / 86400000) + " d";
}

std::string ProgressBar(int64_t done, int64_t total, int width) {
  if (total <= 0) total = 1;
  if (done < 0) done = 0;
  if (done > total) done = total;
  int filled = static_cast<int>(done * width / total);
  int percent = static_cast<int>(done * 100 / total);
  char pct[8];
  std::snprintf(pct, sizeof pct, "%3d%%", percent);
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] " + pct;
}

std::string FormatStatusTable(const StatusRows& rows) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-20s %-8s %-8s %5s %7s %10s  %-20s %8s %5s\n", "GATEWAY", "ROLE",
                "STATE", "TERM", "FILES", "BYTES", "LAST SYNC", "LAG", "KEY");
  out += line;
  int backups = 0, in_sync = 0, syncing = 0, pending = 0, unknown = 0, other = 0, primaries = 0;
  const auto* current = CurrentPrimary(rows);
  for (const auto* r : Ordered(rows)) {
    const std::string id = Printable(r->first, 64);
    const GatewayStatus& st = r->second;
    bool backup = st.role == "backup";
    std::string last = st.last_sync.empty() ? "never" : Printable(st.last_sync, 40);
    if (last.size() > 20) last = last.substr(0, 19) + "Z";  // drop sub-seconds
    std::string lag = backup && st.state != "offline" ? HumanDuration(st.lag_ms) : "-";
    std::string key = backup && st.key_epoch ? "e" + std::to_string(st.key_epoch) : "-";
    std::string term = st.term ? std::to_string(st.term) : "-";
    std::snprintf(line, sizeof line, "%-20s %-8s %-8s %5s %7lld %10s  %-20s %8s %5s\n", id.c_str(),
                  Printable(st.role, 16).c_str(), Printable(st.state, 16).c_str(), term.c_str(),
                  static_cast<long long>(st.files),
                  HumanBytes(st.bytes).c_str(), last.c_str(), lag.c_str(), key.c_str());
    out += line;
    if (st.progress_files_total > 0 || st.progress_total > 0) {
      bool by_bytes = st.progress_total > 0;
      out += "    " +
             ProgressBar(by_bytes ? st.progress_done : st.progress_files_done,
                         by_bytes ? st.progress_total : st.progress_files_total, 30) +
             "  " + HumanBytes(std::max<int64_t>(st.progress_done, 0)) + " of " +
             HumanBytes(std::max<int64_t>(st.progress_total, 0)) + ", " +
             std::to_string(std::max<int64_t>(st.progress_files_done, 0)) + " of " +
             std::to_string(std::max<int64_t>(st.progress_files_total, 0)) + " entries\n";
    }
    if (!st.error.empty()) out += "    error: " + Printable(st.error, 200) + "\n";
    if (st.state == "pending" && !st.due.empty()) {
      out += "    changes held back by a policy, due " + Printable(st.due, 40).substr(0, 19) + "Z\n";
    }
    if (st.state == "unknown") {
      out += "    configured, but no status heard from it (not running, or on another broker node)\n";
    }
    if (backup && !st.primary.empty() && current && st.primary != current->first) {
      out += "    follows " + Printable(st.primary, 64) + " (term " + std::to_string(st.term) + ")\n";
    }
    if (st.role == "primary" && st.state != "fenced") ++primaries;
    if (!backup) continue;
    ++backups;
    if (st.state == "in_sync") ++in_sync;
    else if (st.state == "syncing") ++syncing;
    else if (st.state == "pending") ++pending;
    else if (st.state == "unknown") ++unknown;
    else ++other;
  }
  if (rows.empty()) return out + "(no gateway has published a status yet)\n";
  out += std::to_string(backups) + (backups == 1 ? " backup: " : " backups: ") +
         std::to_string(in_sync) + " in sync, " + std::to_string(syncing) + " syncing, " +
         (pending ? std::to_string(pending) + " pending, " : "") +
         (unknown ? std::to_string(unknown) + " unknown, " : "") + std::to_string(other) +
         " not in sync" + (backups == 0 ? " (none known)" : "") +
         (primaries == 0 ? " (no primary has published a status)" : "") + "\n";
  if (current) {
    out += "primary: " + Printable(current->first, 64) + " (term " +
           std::to_string(std::max<uint64_t>(current->second.term, 1)) + ")\n";
  }
  std::vector<std::string> claim = Claimants(rows);
  if (claim.size() > 1) {
    out += "WARNING: " + std::to_string(claim.size()) + " hubs claim to be primary:";
    for (const std::string& id : claim) {
      out += " " + Printable(id, 64) + " (term " + std::to_string(rows.at(id).term) + ")";
    }
    out += "; the higher term wins and the other stops serving once they hear of each other\n";
  }
  return out;
}

}  // namespace hubsync
