// Sync policies (SPEC 7): when the primary starts a sync, per module.
//
// Hub software publishes a retained JSON policy on
// hubsync/v1/<home>/policy/<module>:
//   {"paths":["devices/**"], "on_change":true, "delay_ms":2000,
//    "period_s":600, "exclude":["**/*.cache"]}
// A path belongs to the first module, by name order, with a matching
// pattern; the rest fall under the config's default policy. A change in a
// module triggers a sync:
//   - at once when on_change and delay_ms is 0;
//   - delay_ms after the module's last change when delay_ms > 0 (a burst
//     gives one sync), but never later than MaxDelayMs(delay_ms) after the
//     burst's first change, so a steady stream cannot postpone it forever;
//   - otherwise not: the module relies on its period.
// period_s > 0 makes a full check every period: the primary re-reads its
// tree and every backup re-reads its own, which also repairs drift.
// A sync carries the changes of the modules that are due; a module still
// waiting (its delay, its period) keeps its changes back (Held), so another
// module's sync never ships them early. A check carries everything.
// Exclusions of the config and of every policy apply to everything.
//
// Pure: time comes in as arguments (a Clock in the engine). One thread.
#ifndef HUBSYNC_POLICY_H_
#define HUBSYNC_POLICY_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hubsync/config.h"
#include "hubsync/manifest.h"
#include "hubsync/status.h"

namespace hubsync {

struct ModulePolicy {
  std::vector<std::string> paths;  // glob patterns (paths.h); required
  Policy when;                     // on_change (default true), delay_ms, period_s (default 0)
  std::vector<std::string> exclude;
};

// Parses and validates a retained policy payload (RapidJSON adapter,
// src/json.cc). InvalidArgument names the field and the problem: unknown
// keys, wrong types, out-of-range numbers, empty or unsafe patterns, or a
// policy under which the module would never sync.
Result<ModulePolicy> ParseModulePolicy(const std::string& json);

// A short, stable digest of a policy as applied (16 hex characters); equal
// policies hash equal however their JSON was written.
std::string PolicyHash(const ModulePolicy& p);
std::string PolicyHash(const Policy& default_policy);

// The latest a burst of changes waits under delay_ms.
inline int64_t MaxDelayMs(int64_t delay_ms) {
  return delay_ms * 4 > delay_ms + 1000 ? delay_ms * 4 : delay_ms + 1000;
}

class PolicySchedule {
 public:
  // The key used for the config's default policy in Hashes().
  static constexpr char kDefault[] = "default";

  PolicySchedule(Policy default_policy, int64_t now_ms);

  // Installs or replaces a module's policy. Its pending changes stay pending
  // (under the new timing); its period restarts from now.
  void Set(const std::string& module, ModulePolicy policy, int64_t now_ms);
  // Removes a module; its pending changes move to the default policy.
  // False if there was no such module.
  bool Remove(const std::string& module);

  // The module `path` belongs to, or "" for the default policy.
  std::string ModuleOf(const std::string& path) const;
  // `config_exclude` plus every module's exclusions, without duplicates.
  std::vector<std::string> Exclusions(const std::vector<std::string>& config_exclude) const;

  // Changes seen at now_ms, in these paths (or, for everything, anywhere).
  void OnChanged(const std::set<std::string>& paths, int64_t now_ms);
  void OnChangedEverywhere(int64_t now_ms);

  struct Due {
    bool sync = false;   // a module's changes are due: sync every backup
    bool check = false;  // a period elapsed: full check of every backup
  };
  // What is due at now_ms. The due modules' changes are no longer pending (a
  // check clears every module's); the others stay held. *next_ms gets the
  // next deadline (INT64_MAX when nothing is scheduled).
  Due Poll(int64_t now_ms, int64_t* next_ms);
  // Whether `path`'s module still holds changes back (they are not due): a
  // sync started now keeps the backup's version of it.
  bool Held(const std::string& path) const;
  bool AnyHeld() const;
  // When the first held change is due (its module's delay, else its next
  // period); INT64_MAX when none is held or nothing will bring it.
  int64_t HeldUntil() const;

  // {"default": hash, "<module>": hash, ...} of the policies applied.
  std::map<std::string, std::string> Hashes() const;
  bool Has(const std::string& module) const { return modules_.count(module) > 0; }
  const std::string& HashOf(const std::string& module) const;

 private:
  struct Module {
    ModulePolicy policy;
    std::string hash;
    bool pending = false;
    int64_t first_change_ms = 0, last_change_ms = 0;
    int64_t next_period_ms = 0;  // 0: no period
  };
  Module& Owner(const std::string& path);
  static void Touch(Module& m, int64_t now_ms);
  static int64_t DueAt(const Module& m);
  static void StartPeriod(Module& m, int64_t now_ms);

  Module default_;
  std::map<std::string, Module> modules_;  // by name: first match wins
};

// The tree a sync started now brings a backup holding `backup` to: `now`,
// except that every path whose module holds its changes back keeps the
// backup's version (or absence). False when nothing is held, or when keeping
// them would leave an entry without its parent directory (a held directory
// turned into a file under a due change, say): then `now` goes whole.
bool DueTree(const Manifest& now, const Manifest& backup, const PolicySchedule& schedule,
             Manifest* out);

}  // namespace hubsync

#endif  // HUBSYNC_POLICY_H_
