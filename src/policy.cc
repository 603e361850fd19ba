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
  out->clear();
  bool held_any = false;
  std::set<std::string> dirs;
  auto take = [&](const Entry* e) {
    if (!e) return true;
    size_t slash = e->path.rfind('/');
    if (slash != std::string::npos && !dirs.count(e->path.substr(0, slash))) return false;
    if (e->type == EntryType::kDir) dirs.insert(e->path);
    out->push_back(*e);
    return true;
  };
  // Both are sorted by path (parents first): walk them together.
  size_t i = 0, j = 0;
  while (i < now.size() || j < backup.size()) {
    const Entry* a = i < now.size() ? &now[i] : nullptr;
    const Entry* b = j < backup.size() ? &backup[j] : nullptr;
    int order = !a ? 1 : !b ? -1 : a->path.compare(b->path);
    const std::string& path = order <= 0 ? a->path : b->path;
    const Entry* from_now = order <= 0 ? a : nullptr;
    const Entry* from_backup = order >= 0 ? b : nullptr;
    if (order <= 0) ++i;
    if (order >= 0) ++j;
    bool held = schedule.Held(path);
    held_any |= held;
    if (!take(held ? from_backup : from_now)) return false;
  }
  return held_any;
}

}  // namespace hubsync
