// The StateStore seam: everything hubsync keeps of its own under state_dir
// (SPEC 6) — keys, message counters, the manifest cache, pairing state.
// Engines, KeyStore, the counters and the Scanner's cache reach state_dir
// only through it, so the core runs on MemoryStateStore in tests and an
// embedder may keep its state elsewhere.
//
// Records are named by relative paths of one or two components ("lock" and
// dot-names are not records): each component is [A-Za-z0-9_.-], at most 128
// bytes, and does not start with '.'. Anything else is InvalidArgument.
//
// Durability: Put and Remove are atomic and durable when they return (after
// a power loss the record is whole, old or new). Overwrite replaces a small
// record (≤ 64 bytes) in place for a hot path (a receive counter per
// message): it is visible at once and survives a process crash, and is
// durable once Flush(name) returns.
//
// One process owns a state_dir at a time (StateDirLock, held by the daemon
// and by commands that seal); commands that only change records (keygen,
// keyimport, unpair, pair --window) may run beside it and change them with
// Update. A store itself is used from one thread.
#ifndef HUBSYNC_STATE_STORE_H_
#define HUBSYNC_STATE_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/status.h"

namespace hubsync {

class StateStore {
 public:
  static constexpr size_t kMaxOverwriteBytes = 64;

  virtual ~StateStore() = default;
  // The record's bytes; NotFound when there is none.
  virtual Result<std::string> Get(const std::string& name) const = 0;
  virtual Status Put(const std::string& name, std::string_view data) = 0;
  virtual Status Overwrite(const std::string& name, std::string_view data) = 0;
  virtual Status Flush(const std::string& name) = 0;
  // Ok when the record was already absent.
  virtual Status Remove(const std::string& name) = 0;
  // Read-modify-write of one record, atomic against every other Update of
  // this state_dir, in this process or another (the daemon and a command
  // such as keygen or unpair may change keys/<id> at once). `change` gets
  // the current bytes (or NotFound) and returns the new bytes, nullopt to
  // remove the record, or an error to leave it as it is (returned).
  using Change = std::function<Result<std::optional<std::string>>(const Result<std::string>&)>;
  virtual Status Update(const std::string& name, const Change& change) = 0;
  // The names of the records directly in `dir` (one component), without the
  // "dir/" prefix, sorted; empty when there are none.
  virtual std::vector<std::string> List(const std::string& dir) const = 0;

  bool Has(const std::string& name) const { return Get(name).ok(); }
  // Whether `name` is a valid record name (see above).
  static bool ValidName(const std::string& name);
};

// state_dir on disk: records are files (0600) in directories (0700) made on
// demand; Put writes a temp file, fsyncs it, renames it over and fsyncs the
// directory; nothing is followed through a symlink.
std::unique_ptr<StateStore> NewPosixStateStore(const std::string& dir);

// A store in memory: for tests, fuzzers and embedders with nowhere to keep
// state. LosePower() forgets every Overwrite not yet flushed, as a power
// loss would on disk.
class MemoryStateStore : public StateStore {
 public:
  Result<std::string> Get(const std::string& name) const override;
  Status Put(const std::string& name, std::string_view data) override;
  Status Overwrite(const std::string& name, std::string_view data) override;
  Status Flush(const std::string& name) override;
  Status Remove(const std::string& name) override;
  Status Update(const std::string& name, const Change& change) override;
  std::vector<std::string> List(const std::string& dir) const override;
  void LosePower();

 private:
  std::map<std::string, std::string> durable_;
  std::map<std::string, std::string> volatile_;  // overwrites not yet flushed
};

}  // namespace hubsync

#endif  // HUBSYNC_STATE_STORE_H_
