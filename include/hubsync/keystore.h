// Per-pair symmetric keys and the message counters used with them, kept in
// a StateStore (state_dir):
//   keys/<record>.key          "hubsync-key v1" then "<epoch> <hex key>" lines,
//                              oldest first; at most two epochs are kept so a
//                              rotation can finish messages in flight.
//   counters/<record>.e<epoch>.tx   next counter this side may use (reserved
//                              in blocks, made durable before any use)
//   counters/<record>.e<epoch>.rx   highest counter accepted from the peer
// A key belongs to a primary<->backup pair. The record is named by the
// backup's id on the hub that serves it (as primary, or as standby primary:
// SPEC 11), and on the backup's hub by its own id for the key agreed by
// pairing with its primary, or "<backup>.from-<maker>" for a key another hub
// made for it (keygen/keyimport: a hub holds one key per peer and role).
// Pairing (SPEC 6) and keygen/keyimport fill the store.
//
// Thread rule: one thread per object; the store outlives every object made
// over it.
#ifndef HUBSYNC_KEYSTORE_H_
#define HUBSYNC_KEYSTORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/state_store.h"
#include "hubsync/status.h"

namespace hubsync {

struct KeyEntry {
  uint32_t epoch = 0;
  Key key{};
};

class KeyStore {
 public:
  explicit KeyStore(StateStore* store) : store_(store) {}
  // Known epochs for `backup`, oldest first; NotFound when none.
  Result<std::vector<KeyEntry>> Load(const std::string& backup) const;
  // Every change is one StateStore::Update, so a command (keygen,
  // keyimport, unpair) and the daemon changing one backup's keys at once
  // never lose each other's change.
  //
  // Adds (or replaces) an epoch, dropping all but the newest two.
  Status Put(const std::string& backup, const KeyEntry& entry);
  // Adds `entry` only if its epoch is above every stored one (keyimport):
  // InvalidArgument naming the newest stored epoch otherwise.
  Status PutNewer(const std::string& backup, const KeyEntry& entry);
  // Adds `key` under the epoch after the newest stored (1 for none), once
  // `before(entry)` has succeeded (keygen writes its export file there).
  Result<KeyEntry> PutNext(const std::string& backup, const Key& key,
                           const std::function<Status(const KeyEntry&)>& before);
  Status Remove(const std::string& backup);
  // Drops the epochs below `epoch` (the peer has moved to it).
  Status Retire(const std::string& backup, uint32_t epoch);
  // The ids of the records named by a plain gateway id (the backups this
  // hub serves, plus, on a backup, its own id when it has paired).
  std::vector<std::string> List() const;
  // The record of `backup`'s key made by the hub `maker`.
  static std::string MadeBy(const std::string& backup, const std::string& maker);
  // Serialises one key for `hubsync keygen --out` / keyimport; the file
  // names the hub that made it.
  static std::string Export(const std::string& home, const std::string& backup,
                            const std::string& maker, const KeyEntry& e);
  // `maker` gets the hub that made it ("" for a file that does not say).
  static Result<KeyEntry> Import(const std::string& text, const std::string& home,
                                 const std::string& backup, std::string* maker);
  StateStore* store() const { return store_; }
  // The records of `backup`'s counters under `epoch`.
  static std::string TxName(const std::string& backup, uint32_t epoch);
  static std::string RxName(const std::string& backup, uint32_t epoch);

 private:
  static std::string Name(const std::string& backup) { return "keys/" + backup + ".key"; }
  // Update of keys/<backup>: `change` edits the stored epochs (empty when
  // none or unreadable when `tolerate_damage`); an emptied list removes it.
  Status Change(const std::string& backup, bool tolerate_damage,
                const std::function<Status(std::vector<KeyEntry>*)>& change);
  StateStore* store_;
};

// Sender side: hands out strictly increasing counters, persisting a high-water
// mark `kBlock` ahead before using any counter below it, so a crash can skip
// counters but never reuse one (a reused counter would reuse a GCM nonce).
class TxCounter {
 public:
  static constexpr uint64_t kBlock = 4096;
  static Result<TxCounter> Open(StateStore* store, const std::string& name);
  Result<uint64_t> Next();
  // Makes a block durable now if none is, so the next Next() never waits on
  // the disk (a daemon calls it before it announces itself).
  Status Reserve();

 private:
  TxCounter(StateStore* store, std::string name) : store_(store), name_(std::move(name)) {}
  StateStore* store_;
  std::string name_;
  uint64_t next_ = 1;
  uint64_t reserved_ = 0;  // counters < reserved_ are safe to use
};

// Receiver side: the highest counter accepted. Accept() refuses anything not
// above it. The mark is written at once (survives a process crash) and made
// durable by Sync(), which the receiver calls before acting on a transfer.
class RxCounter {
 public:
  static Result<RxCounter> Open(StateStore* store, const std::string& name);
  bool Fresh(uint64_t counter) const { return counter > last_; }
  Status Accept(uint64_t counter);
  Status Sync() { return store_->Flush(name_); }
  uint64_t last() const { return last_; }

 private:
  RxCounter(StateStore* store, std::string name, uint64_t last)
      : store_(store), name_(std::move(name)), last_(last) {}
  StateStore* store_;
  std::string name_;
  uint64_t last_ = 0;
};

}  // namespace hubsync

#endif  // HUBSYNC_KEYSTORE_H_
