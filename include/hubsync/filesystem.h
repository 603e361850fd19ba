// The FileSystem seam: everything hubsync does to a data directory.
//
// A FileSystem is rooted at one directory; every path is relative to it and
// must pass ValidateRelativePath ("" names the root itself where allowed).
// Implementations never follow a symlink: not at the last component and not
// in any parent (a symlinked parent fails with Rejected), so nothing can be
// read or written outside the root through a link.
//
// The real implementation is PosixFileSystem (openat family, O_NOFOLLOW).
// Tests wrap it to inject ENOSPC, EIO, short writes and crashes.
//
// Thread rule: an object is used by one thread at a time.
#ifndef HUBSYNC_FILESYSTEM_H_
#define HUBSYNC_FILESYSTEM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/manifest.h"
#include "hubsync/status.h"

namespace hubsync {

struct FileInfo {
  EntryType type = EntryType::kFile;  // other kinds (fifo, socket, device) are skipped
  bool supported = true;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t size = 0;
  uint64_t inode = 0;
};

struct DirEntry {
  std::string name;
  FileInfo info;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to n bytes at offset; returns bytes read (0 at end of file).
  virtual Result<size_t> ReadAt(uint64_t offset, void* buf, size_t n) = 0;
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Sync() = 0;
  // Sets permission bits and mtime; call after the last Append.
  virtual Status SetAttrs(uint32_t mode, int64_t mtime_ns) = 0;
  virtual Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual Result<FileInfo> Stat(const std::string& path) = 0;  // lstat; NotFound if absent
  virtual Result<std::vector<DirEntry>> ListDir(const std::string& path) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) = 0;
  // Creates a new file (fails if it exists), mode 0600 until SetAttrs.
  virtual Result<std::unique_ptr<WritableFile>> Create(const std::string& path) = 0;
  virtual Status MakeDir(const std::string& path, uint32_t mode) = 0;  // ok if it is a dir
  virtual Status Symlink(const std::string& target, const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Removes a file, symlink or empty directory; ok if absent.
  virtual Status Remove(const std::string& path) = 0;
  // Removes a directory tree (staging cleanup); ok if absent.
  virtual Status RemoveTree(const std::string& path) = 0;
  virtual Status SetAttrs(const std::string& path, EntryType type, uint32_t mode,
                          int64_t mtime_ns) = 0;
  // Makes a directory's entries and attributes durable (fsync).
  virtual Status SyncDir(const std::string& path) = 0;
  // Makes a regular file's content and attributes durable (fsync), e.g.
  // after SetAttrs changed its mode; Rejected for anything else.
  virtual Status SyncFile(const std::string& path) = 0;
  // Makes everything written under the root durable at once (syncfs): one
  // flush for a whole delta instead of one fsync per file.
  virtual Status SyncAll() = 0;
  virtual const std::string& root() const = 0;
};

// The real filesystem under `root`.
std::unique_ptr<FileSystem> NewPosixFileSystem(const std::string& root);

// RemoveTree in terms of Stat, ListDir and Remove, children first: what an
// implementation without a faster way uses.
Status RemoveTreeVia(FileSystem* fs, const std::string& path);

}  // namespace hubsync

#endif  // HUBSYNC_FILESYSTEM_H_
