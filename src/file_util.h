// Small POSIX helpers for hubsync's own state files (keys, counters, caches).
// Replicated data goes through the FileSystem seam instead.
#ifndef HUBSYNC_SRC_FILE_UTIL_H_
#define HUBSYNC_SRC_FILE_UTIL_H_

#include <string>

#include "hubsync/status.h"

namespace hubsync {

// Writes `data` to `path` atomically the way leveldb writes CURRENT: a temp
// file beside it, fsync, rename over, fsync of the directory; the temp file is
// removed on failure. `mode` applies to the new file (e.g. 0600 for keys).
Status WriteFileAtomic(const std::string& path, const std::string& data, int mode);

// Reads a whole (small) file. NotFound when it does not exist.
Result<std::string> ReadSmallFile(const std::string& path);

// mkdir -p with `mode` for directories it creates.
Status MakeDirs(const std::string& path, int mode);

// fsync of a directory, so renames and unlinks in it are durable.
Status SyncDir(const std::string& path);

std::string ErrnoText(int err);

}  // namespace hubsync

#endif  // HUBSYNC_SRC_FILE_UTIL_H_
