#include "hubsync/policy.h"

#include <algorithm>
#include <climits>

#include "hubsync/crypto.h"
#include "hubsync/paths.h"

namespace hubsync {
namespace {

// The canonical text a hash is taken over: field by field, one per line.
std::string Canonical(const ModulePolicy& p) {
  std::string s = "on_change=" + std::to_string(p.when.on_change) +
                  "\ndelay_ms=" + std::to_string(p.when.delay_ms) +
                  "\nperiod_s=" + std::to_string(p.when.period_s) + "\npaths";
  for (const auto& x : p.paths) s += "\n " + x;
  s += "\nexclude";
  for (const auto& x : p.exclude) s += "\n " + x;
  return s;
}

std::string ShortHash(const std::string& text) {
  Sha256 h;
  h.Update(text.data(), text.size());
  return ToHex(h.Final()).substr(0, 16);
}

// "devices/**" also claims the directory "devices" itself.
bool Claims(const std::string& pattern, const std::string& path) {
  if (GlobMatch(pattern, path)) return true;
  return pattern.size() > 3 && pattern.compare(pattern.size() - 3, 3, "/**") == 0 &&
         GlobMatch(pattern.substr(0, pattern.size() - 3), path);
}

}  // namespace

std::string PolicyHash(const ModulePolicy& p) { return ShortHash(Canonical(p)); }

std::string PolicyHash(const Policy& default_policy) {
  ModulePolicy p;
  p.when = default_policy;
  return ShortHash(Canonical(p));
}

PolicySchedule::PolicySchedule(Policy default_policy, int64_t now_ms) {
  default_.policy.when = default_policy;
  default_.hash = PolicyHash(default_policy);
  StartPeriod(default_, now_ms);
}

void PolicySchedule::StartPeriod(Module& m, int64_t now_ms) {
  m.next_period_ms = m.policy.when.period_s > 0 ? now_ms + m.policy.when.period_s * 1000 : 0;
}

void PolicySchedule::Set(const std::string& module, ModulePolicy policy, int64_t now_ms) {
  Module& m = modules_[module];
  m.hash = PolicyHash(policy);
  m.policy = std::move(policy);
  StartPeriod(m, now_ms);
}

bool PolicySchedule::Remove(const std::string& module) {
  auto it = modules_.find(module);
  if (it == modules_.end()) return false;
  if (it->second.pending) {
    int64_t first = it->second.first_change_ms, last = it->second.last_change_ms;
    if (!default_.pending) {
      default_.first_change_ms = first;
    } else {
      default_.first_change_ms = std::min(default_.first_change_ms, first);
    }
    default_.last_change_ms = std::max(default_.last_change_ms, last);
    default_.pending = true;
  }
  modules_.erase(it);
  return true;
}

std::string PolicySchedule::ModuleOf(const std::string& path) const {
  for (const auto& [name, m] : modules_) {
    for (const auto& pattern : m.policy.paths) {
      if (Claims(pattern, path)) return name;
    }
  }
  return "";
}

PolicySchedule::Module& PolicySchedule::Owner(const std::string& path) {
  std::string name = ModuleOf(path);
  return name.empty() ? default_ : modules_[name];
}

std::vector<std::string> PolicySchedule::Exclusions(
    const std::vector<std::string>& config_exclude) const {
  std::vector<std::string> all = config_exclude;
  for (const auto& [name, m] : modules_) {
    for (const auto& x : m.policy.exclude) {
      if (std::find(all.begin(), all.end(), x) == all.end()) all.push_back(x);
    }
  }
  return all;
}

void PolicySchedule::Touch(Module& m, int64_t now_ms) {
  if (!m.pending) m.first_change_ms = now_ms;
  m.pending = true;
  m.last_change_ms = now_ms;
}

void PolicySchedule::OnChanged(const std::set<std::string>& paths, int64_t now_ms) {
  for (const auto& p : paths) Touch(Owner(p), now_ms);
}

void PolicySchedule::OnChangedEverywhere(int64_t now_ms) {
  Touch(default_, now_ms);
  for (auto& [name, m] : modules_) Touch(m, now_ms);
}

// When a module's pending changes are due (INT64_MAX: only with a check).
int64_t PolicySchedule::DueAt(const Module& m) {
  const Policy& w = m.policy.when;
  if (!m.pending) return INT64_MAX;
  if (w.delay_ms > 0) {
    return std::min(m.last_change_ms + w.delay_ms, m.first_change_ms + MaxDelayMs(w.delay_ms));
  }
  return w.on_change ? m.first_change_ms : INT64_MAX;
}

PolicySchedule::Due PolicySchedule::Poll(int64_t now_ms, int64_t* next_ms) {
  Due due;
  auto visit = [&](Module& m) {
    if (m.next_period_ms > 0 && now_ms >= m.next_period_ms) {
      due.check = true;
      m.next_period_ms = now_ms + m.policy.when.period_s * 1000;
    }
    if (now_ms >= DueAt(m)) {
      due.sync = true;
      m.pending = false;  // the sync carries these; other modules keep theirs
    }
  };
  visit(default_);
  for (auto& [name, m] : modules_) visit(m);
  if (due.check) {  // a check carries everything
    default_.pending = false;
    for (auto& [name, m] : modules_) m.pending = false;
  }
  int64_t next = INT64_MAX;
  auto deadline = [&](const Module& m) {
    next = std::min(next, DueAt(m));
    if (m.next_period_ms > 0) next = std::min(next, m.next_period_ms);
  };
  deadline(default_);
  for (const auto& [name, m] : modules_) deadline(m);
  *next_ms = next;
  return due;
}

bool PolicySchedule::Held(const std::string& path) const {
  std::string name = ModuleOf(path);
  return name.empty() ? default_.pending : modules_.at(name).pending;
}

bool PolicySchedule::AnyHeld() const {
  if (default_.pending) return true;
  for (const auto& [name, m] : modules_) {
    if (m.pending) return true;
  }
  return false;
}

int64_t PolicySchedule::HeldUntil() const {
  int64_t until = INT64_MAX;
  auto visit = [&](const Module& m) {
    if (!m.pending) return;
    int64_t due = DueAt(m);
    if (due == INT64_MAX && m.next_period_ms > 0) due = m.next_period_ms;
    until = std::min(until, due);
  };
  visit(default_);
  for (const auto& [name, m] : modules_) visit(m);
  return until;
}

std::map<std::string, std::string> PolicySchedule::Hashes() const {
  std::map<std::string, std::string> h;
  h[kDefault] = default_.hash;
  for (const auto& [name, m] : modules_) h[name] = m.hash;
  return h;
}

const std::string& PolicySchedule::HashOf(const std::string& module) const {
  auto it = modules_.find(module);
  return it == modules_.end() ? default_.hash : it->second.hash;
}

bool DueTree(const Manifest& now, const Manifest& backup, const PolicySchedule& schedule,
             Manifest* out) {
  if (!schedule.AnyHeld()) return false;
  // Only where the two differ can a held module keep the backup's version.
  std::vector<std::pair<std::string, const Entry*>> keep;  // the backup's version (or none)
  std::vector<std::string> differing;  // every path where they differ
  VisitDifferences(now, backup, [&](const Entry* a, const Entry* b) {
    const std::string& path = a ? a->path : b->path;
    differing.push_back(path);
    if (schedule.Held(path)) keep.emplace_back(path, b);
  });
  if (keep.empty()) return false;
  *out = now;
  for (const auto& [path, theirs] : keep) {
    if (theirs) {
      out->Put(*theirs);
    } else {
      out->Erase(path);  // new on the primary: stays absent
    }
  }
  // The result must still be a tree: every entry's parent a directory, and
  // nothing under what is not one.
  for (const std::string& path : differing) {
    const Entry* e = out->Find(path);
    if (e) {
      size_t slash = path.rfind('/');
      if (slash != std::string::npos) {
        const Entry* parent = out->Find(std::string_view(path).substr(0, slash));
        if (!parent || parent->type != EntryType::kDir) return false;
      }
    }
    if ((!e || e->type != EntryType::kDir) && out->HasChildren(path)) return false;
  }
  return true;
}

}  // namespace hubsync
