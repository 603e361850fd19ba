// PosixFileSystem: the FileSystem seam on Linux. Every path is resolved from
// a descriptor of the root, one component at a time with O_NOFOLLOW, so a
// symlink anywhere on the way is refused instead of followed. Directories
// opened that way for a change (an apply) are kept a moment (DirCache), so a
// run of changes in one directory does not walk the path again each time;
// reads always walk afresh.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "file_util.h"
#include "hubsync/filesystem.h"

namespace hubsync {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { Reset(); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// A directory descriptor shared by the cache and whoever is using it: an
// entry evicted mid-operation stays open until the operation is done.
using DirFd = std::shared_ptr<const Fd>;

// The directories opened lately, by path relative to the root ("" = the
// root itself), at most kEntries, each for at most kMaxAgeNs. A descriptor
// names the very directory it opened, so a symlink swapped in at its path
// afterwards is still never followed; renaming or removing a path through
// this file system forgets it and everything under it at once. A directory
// another process moves meanwhile is still written through its descriptor
// for up to kMaxAgeNs (on a backup that is drift, which its next scan, a
// fresh walk, reports); reads never use the cache.
class DirCache {
 public:
  static constexpr size_t kEntries = 8;
  static constexpr int64_t kMaxAgeNs = 200'000'000;

  DirFd Find(const std::string& path) {
    int64_t now = Now();
    for (Entry& e : entries_) {
      if (e.fd && e.path == path && now - e.opened_ns < kMaxAgeNs) {
        e.used = ++clock_;
        return e.fd;
      }
    }
    return nullptr;
  }
  void Put(const std::string& path, DirFd fd) {
    Entry* slot = nullptr;
    for (Entry& e : entries_) {
      if (!slot || !e.fd || (slot->fd && e.used < slot->used)) slot = &e;
    }
    if (entries_.size() < kEntries) slot = &entries_.emplace_back();
    *slot = Entry{path, std::move(fd), Now(), ++clock_};
  }
  // Forgets `path` and everything under it.
  void Forget(const std::string& path) {
    for (Entry& e : entries_) {
      bool under = path.empty() || e.path == path ||
                   (e.path.size() > path.size() && e.path.compare(0, path.size(), path) == 0 &&
                    e.path[path.size()] == '/');
      if (under) e.fd.reset();
    }
  }

 private:
  struct Entry {
    std::string path;
    DirFd fd;
    int64_t opened_ns = 0;
    uint64_t used = 0;
  };
  static int64_t Now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
};

Status Errno(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + ErrnoText(err));
  if (err == ELOOP || err == ENOTDIR) return Status::Rejected(what + ": " + ErrnoText(err));
  return Status::IoError(what + ": " + ErrnoText(err));
}

FileInfo InfoFromStat(const struct stat& st) {
  FileInfo fi;
  if (S_ISREG(st.st_mode)) fi.type = EntryType::kFile;
  else if (S_ISDIR(st.st_mode)) fi.type = EntryType::kDir;
  else if (S_ISLNK(st.st_mode)) fi.type = EntryType::kSymlink;
  else fi.supported = false;
  fi.mode = st.st_mode & kReplicatedModeBits;
  fi.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  fi.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  fi.size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (S_ISLNK(st.st_mode)) fi.size = 0;
  fi.inode = st.st_ino;
  return fi;
}

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

class PosixReadable : public ReadableFile {
 public:
  explicit PosixReadable(Fd fd) : fd_(std::move(fd)) {}
  Result<size_t> ReadAt(uint64_t offset, void* buf, size_t n) override {
    while (true) {
      ssize_t r = pread(fd_.get(), buf, n, static_cast<off_t>(offset));
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return Errno("read", errno);
    }
  }

 private:
  Fd fd_;
};

class PosixWritable : public WritableFile {
 public:
  PosixWritable(Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = write(fd_.get(), data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("write " + name_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (fdatasync(fd_.get()) != 0) return Errno("fsync " + name_, errno);
    return Status::Ok();
  }
  Status SetAttrs(uint32_t mode, int64_t mtime_ns) override {
    if (fchmod(fd_.get(), mode & kReplicatedModeBits) != 0) return Errno("chmod " + name_, errno);
    struct timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(mtime_ns)};
    if (futimens(fd_.get(), ts) != 0) return Errno("utimens " + name_, errno);
    return Status::Ok();
  }
  Status Close() override {
    int fd = fd_.release();
    if (fd >= 0 && close(fd) != 0) return Errno("close " + name_, errno);
    return Status::Ok();
  }

 private:
  Fd fd_;
  std::string name_;
};

class PosixFileSystem : public FileSystem {
 public:
  explicit PosixFileSystem(std::string root) : root_(std::move(root)) {}

  const std::string& root() const override { return root_; }

  Result<FileInfo> Stat(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf, kFresh);
    if (!dir.ok()) return dir.status();
    struct stat st;
    if (fstatat((*dir)->get(), leaf.empty() ? "." : leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno("stat", errno);
    }
    return InfoFromStat(st);
  }

  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    auto dfd = OpenDir(path, kFresh);
    if (!dfd.ok()) return dfd.status();
    // A descriptor of its own (readdir moves its offset): the same
    // directory, no path walked.
    int fd = openat((*dfd)->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("opendir", errno);
    DIR* d = fdopendir(fd);
    if (!d) {
      int err = errno;
      close(fd);
      return Errno("opendir", err);
    }
    std::vector<DirEntry> out;
    errno = 0;
    while (struct dirent* de = readdir(d)) {
      if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
      struct stat st;
      if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed while listing
        int err = errno;
        closedir(d);
        return Errno("stat", err);
      }
      out.push_back({de->d_name, InfoFromStat(st)});
    }
    closedir(d);
    return out;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf, kFresh);
    if (!dir.ok()) return dir.status();
    char buf[4096];
    ssize_t n = readlinkat((*dir)->get(), leaf.c_str(), buf, sizeof buf);
    if (n < 0) return Errno("readlink", errno);
    return std::string(buf, static_cast<size_t>(n));
  }

  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf, kFresh);
    if (!dir.ok()) return dir.status();
    // O_NONBLOCK: a FIFO swapped in after the scan must not hang the open.
    Fd fd(openat((*dir)->get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) return Errno("open", errno);
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Errno("stat", errno);
    if (!S_ISREG(st.st_mode)) return Status::Rejected("open: not a regular file");
    return std::unique_ptr<ReadableFile>(new PosixReadable(std::move(fd)));
  }

  Result<std::unique_ptr<WritableFile>> Create(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    int fd = openat((*dir)->get(), leaf.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("create", errno);
    return std::unique_ptr<WritableFile>(new PosixWritable(Fd(fd), "staged file"));
  }

  Status MakeDir(const std::string& path, uint32_t mode) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    if (mkdirat((*dir)->get(), leaf.c_str(), 0700) != 0 && errno != EEXIST) {
      return Errno("mkdir", errno);
    }
    auto made = OpenLeaf((*dir)->get(), leaf, EntryType::kDir);
    if (!made.ok()) {
      if (made.status().code() == Status::Code::kRejected) {
        return Status::IoError("mkdir: exists and is not a directory");
      }
      return made.status();
    }
    return ChmodFd(made->get(), mode);
  }

  Status Symlink(const std::string& target, const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    if (symlinkat(target.c_str(), (*dir)->get(), leaf.c_str()) != 0) return Errno("symlink", errno);
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    std::string from_leaf, to_leaf;
    auto from_dir = OpenParent(from, &from_leaf);
    if (!from_dir.ok()) return from_dir.status();
    auto to_dir = OpenParent(to, &to_leaf);
    if (!to_dir.ok()) return to_dir.status();
    dirs_.Forget(from);
    dirs_.Forget(to);
    if (renameat((*from_dir)->get(), from_leaf.c_str(), (*to_dir)->get(), to_leaf.c_str()) != 0) {
      return Errno("rename", errno);
    }
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) {
      return dir.status().code() == Status::Code::kNotFound ? Status::Ok() : dir.status();
    }
    dirs_.Forget(path);
    if (unlinkat((*dir)->get(), leaf.c_str(), 0) == 0 || errno == ENOENT) return Status::Ok();
    if (errno == EISDIR || errno == EPERM) {
      if (unlinkat((*dir)->get(), leaf.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
        return Status::Ok();
      }
    }
    return Errno("remove", errno);
  }

  Status RemoveTree(const std::string& path) override { return RemoveTreeVia(this, path); }

  Status SetAttrs(const std::string& path, EntryType type, uint32_t mode,
                  int64_t mtime_ns) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    if (type != EntryType::kSymlink) {
      // Through the object's own descriptor, opened without following: a
      // symlink swapped in at `path` is refused, never chmod-ed through.
      auto fd = OpenLeaf((*dir)->get(), leaf, type);
      if (!fd.ok()) return fd.status();
      HUBSYNC_RETURN_IF_ERROR(ChmodFd(fd->get(), mode));
    }
    if (type != EntryType::kDir) {
      struct timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(mtime_ns)};
      if (utimensat((*dir)->get(), leaf.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        return Errno("utimens", errno);
      }
    }
    return Status::Ok();
  }

  Status SyncAll() override {
    auto dir = OpenDir("");
    if (!dir.ok()) return dir.status();
    if (syncfs((*dir)->get()) != 0) return Errno("syncfs", errno);
    return Status::Ok();
  }

  Status SyncFile(const std::string& path) override {
    std::string leaf;
    auto dir = OpenParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    auto fd = OpenLeaf((*dir)->get(), leaf, EntryType::kFile);
    if (!fd.ok()) return fd.status();
    if (fsync(fd->get()) == 0) return Status::Ok();
    if (errno != EBADF) return Errno("fsync", errno);
    // An O_PATH descriptor (a file this process may not read) cannot be
    // fsynced: sync its whole filesystem instead.
    if (syncfs((*dir)->get()) != 0) return Errno("syncfs", errno);
    return Status::Ok();
  }

  Status SyncDir(const std::string& path) override {
    auto dir = OpenDir(path);
    if (!dir.ok()) return dir.status();
    if (fsync((*dir)->get()) != 0) return Errno("fsync dir", errno);
    return Status::Ok();
  }

 private:
  // Opens `leaf` in `dir` as an object of `type` (a file or a directory)
  // without following a symlink and without blocking on a FIFO; anything
  // else there is Rejected. A file or directory this process may not read
  // (mode 0200, say) is opened O_PATH: it still names that very inode.
  static Result<Fd> OpenLeaf(int dir, const std::string& leaf, EntryType type) {
    int kind = type == EntryType::kDir ? O_DIRECTORY : 0;
    Fd fd(openat(dir, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | kind));
    if (fd.get() < 0 && errno == EACCES) {
      fd = Fd(openat(dir, leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC | kind));
    }
    if (fd.get() < 0) {
      if (errno == ELOOP || errno == ENOTDIR || errno == ENXIO) {
        return Status::Rejected("open " + leaf + ": not a " +
                                (type == EntryType::kDir ? "directory" : "regular file"));
      }
      return Errno("open", errno);
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Errno("stat", errno);
    bool right = type == EntryType::kDir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
    if (!right) {
      return Status::Rejected("open " + leaf + ": not a " +
                              (type == EntryType::kDir ? "directory" : "regular file"));
    }
    return fd;
  }

  // Sets the permission bits (never setuid, setgid or sticky) of the inode
  // `fd` names. An O_PATH descriptor cannot fchmod; its /proc/self/fd link
  // names the same inode (not a path that could be swapped).
  static Status ChmodFd(int fd, uint32_t mode) {
    mode &= kReplicatedModeBits;
    if (fchmod(fd, mode) == 0) return Status::Ok();
    if (errno != EBADF) return Errno("chmod", errno);
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    if (chmod(self.c_str(), mode) != 0) return Errno("chmod", errno);
    return Status::Ok();
  }

  // Reads walk afresh, so they always see the tree as it is, even just
  // after another process moved a directory (the primary's view of data_dir
  // must never mix a directory moved away with what replaced it); the
  // mutations of an apply take walked directories from the cache.
  enum Walk { kFresh, kCached };

  // The directory `path` ("" = root), each component opened without
  // following a symlink (or, kCached, taken from the cache).
  Result<DirFd> OpenDir(const std::string& path, Walk walk = kCached) {
    if (walk == kCached) {
      if (DirFd cached = dirs_.Find(path)) return cached;
    }
    int fd;
    if (path.empty()) {
      fd = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return Errno("open data dir", errno);
    } else {
      std::string leaf;
      auto parent = OpenParent(path, &leaf, walk);
      if (!parent.ok()) return parent.status();
      if (leaf.empty() || leaf == "." || leaf == "..") return Status::Rejected("bad path");
      fd = openat((*parent)->get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Errno("open dir", errno);
    }
    auto dir = std::make_shared<const Fd>(fd);
    if (walk == kCached) dirs_.Put(path, dir);
    return dir;
  }

  Result<DirFd> OpenParent(const std::string& path, std::string* leaf, Walk walk = kCached) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) {
      *leaf = path;
      return OpenDir("", walk);
    }
    *leaf = path.substr(slash + 1);
    return OpenDir(path.substr(0, slash), walk);
  }

  std::string root_;
  DirCache dirs_;
};

}  // namespace

Status RemoveTreeVia(FileSystem* fs, const std::string& path) {
  auto st = fs->Stat(path);
  if (!st.ok()) return st.status().code() == Status::Code::kNotFound ? Status::Ok() : st.status();
  if (st->type == EntryType::kDir) {
    auto list = fs->ListDir(path);
    if (!list.ok()) return list.status();
    for (const auto& e : *list) HUBSYNC_RETURN_IF_ERROR(fs->RemoveTree(path + "/" + e.name));
  }
  return fs->Remove(path);
}

std::unique_ptr<FileSystem> NewPosixFileSystem(const std::string& root) {
  return std::make_unique<PosixFileSystem>(root);
}

}  // namespace hubsync
