// Per-backup symmetric keys and the message counters used with them.
//
// Layout in state_dir (all files 0600, directories 0700, written atomically):
//   keys/<backup>.key          "hubsync-key v1" then "<epoch> <hex key>" lines,
//                              oldest first; at most two epochs are kept so a
//                              rotation can finish messages in flight.
//   counters/<backup>.e<epoch>.tx   next counter this side may use (reserved
//                              in blocks, persisted before any use)
//   counters/<backup>.e<epoch>.rx   highest counter accepted from the peer
// Both the primary and a backup key the files by the backup's id, because the
// key belongs to the primary<->backup pair. keygen/keyimport fill the store
// today; pairing (SPEC 6) fills it through the same Put.
//
// Thread rule: one thread per object.
#ifndef HUBSYNC_KEYSTORE_H_
#define HUBSYNC_KEYSTORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "hubsync/crypto.h"
#include "hubsync/status.h"

namespace hubsync {

struct KeyEntry {
  uint32_t epoch = 0;
  Key key{};
};

class KeyStore {
 public:
  explicit KeyStore(std::string state_dir);
  // Known epochs for `backup`, oldest first; NotFound when none.
  Result<std::vector<KeyEntry>> Load(const std::string& backup) const;
  // Adds (or replaces) an epoch, dropping all but the newest two.
  Status Put(const std::string& backup, const KeyEntry& entry);
  Status Remove(const std::string& backup);
  // Drops the epochs below `epoch` (the peer has moved to it).
  Status Retire(const std::string& backup, uint32_t epoch);
  // The backups that have a key.
  std::vector<std::string> List() const;
  // Serialises one key for `hubsync keygen --out` / keyimport.
  static std::string Export(const std::string& home, const std::string& backup,
                            const KeyEntry& e);
  static Result<KeyEntry> Import(const std::string& text, const std::string& home,
                                 const std::string& backup);
  const std::string& state_dir() const { return state_dir_; }

 private:
  std::string Path(const std::string& backup) const;
  std::string state_dir_;
};

// Sender side: hands out strictly increasing counters, persisting a high-water
// mark `kBlock` ahead before using any counter below it, so a crash can skip
// counters but never reuse one (a reused counter would reuse a GCM nonce).
class TxCounter {
 public:
  static constexpr uint64_t kBlock = 4096;
  static Result<TxCounter> Open(const std::string& path);
  Result<uint64_t> Next();

 private:
  explicit TxCounter(std::string path) : path_(std::move(path)) {}
  std::string path_;
  uint64_t next_ = 1;
  uint64_t reserved_ = 0;  // counters < reserved_ are safe to use
};

// Receiver side: the highest counter accepted. Accept() refuses anything not
// above it. The mark is written at once (survives a process crash) and made
// durable by Sync(), which the receiver calls before acting on a transfer.
class RxCounter {
 public:
  static Result<RxCounter> Open(const std::string& path);
  RxCounter(RxCounter&& o) noexcept;
  RxCounter& operator=(RxCounter&& o) noexcept;
  ~RxCounter();
  bool Fresh(uint64_t counter) const { return counter > last_; }
  Status Accept(uint64_t counter);
  Status Sync();
  uint64_t last() const { return last_; }

 private:
  RxCounter(std::string path, int fd, uint64_t last) : path_(std::move(path)), fd_(fd), last_(last) {}
  std::string path_;
  int fd_ = -1;
  uint64_t last_ = 0;
};

}  // namespace hubsync

#endif  // HUBSYNC_KEYSTORE_H_
