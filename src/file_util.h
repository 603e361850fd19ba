// Small POSIX helpers for hubsync's own state files (keys, counters, caches).
// Replicated data goes through the FileSystem seam instead.
#ifndef HUBSYNC_SRC_FILE_UTIL_H_
#define HUBSYNC_SRC_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "hubsync/status.h"

namespace hubsync {

// Writes `data` to `path` atomically the way leveldb writes CURRENT: a temp
// file beside it, fsync, rename over, fsync of the directory; the temp file is
// removed on failure. `mode` applies to the new file (e.g. 0600 for keys).
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode);

// Reads a whole (small) file. NotFound when it does not exist.
Result<std::string> ReadSmallFile(const std::string& path);

// mkdir -p with `mode` for directories it creates.
Status MakeDirs(const std::string& path, int mode);

// fsync of a directory, so renames and unlinks in it are durable.
Status SyncDir(const std::string& path);

std::string ErrnoText(int err);

// The exclusive hold one process has on a state_dir (SPEC 6: a key and its
// counters are used by one process at a time). flock on state_dir/lock,
// which also records the holder's pid; the kernel drops the lock when the
// process dies, so a crash never leaves it stale.
class StateDirLock {
 public:
  // Takes the lock without waiting. Unavailable, naming the holder's pid,
  // when another process holds it.
  static Result<StateDirLock> Acquire(const std::string& state_dir);
  // The pid of the process holding state_dir's lock: 0 when none does, -1
  // when one does but its pid cannot be read.
  static int Holder(const std::string& state_dir);
  StateDirLock(StateDirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateDirLock& operator=(StateDirLock&&) = delete;
  ~StateDirLock();

 private:
  explicit StateDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace hubsync

#endif  // HUBSYNC_SRC_FILE_UTIL_H_
