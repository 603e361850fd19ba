#include "hubsync/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "file_util.h"

namespace hubsync {

bool StateStore::ValidName(const std::string& name) {
  size_t slash = name.find('/');
  auto component = [](std::string_view c) {
    if (c.empty() || c.size() > 128 || c[0] == '.') return false;
    return std::all_of(c.begin(), c.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '.' || ch == '-';
    });
  };
  if (slash == std::string::npos) return name != "lock" && component(name);
  std::string_view dir(name.data(), slash), leaf(name.data() + slash + 1, name.size() - slash - 1);
  return component(dir) && component(leaf);
}

namespace {

// Update's body once the record is the caller's alone.
Status Apply(StateStore* store, const std::string& name, const StateStore::Change& change) {
  auto next = change(store->Get(name));
  if (!next.ok()) return next.status();
  return *next ? store->Put(name, **next) : store->Remove(name);
}

Status BadName(const std::string& name) {
  return Status::InvalidArgument("not a state record name: " + name.substr(0, 64));
}

class PosixStateStore : public StateStore {
 public:
  explicit PosixStateStore(std::string dir) : dir_(std::move(dir)) {}
  ~PosixStateStore() override {
    for (auto& [name, f] : open_) close(f.fd);
  }

  Result<std::string> Get(const std::string& name) const override {
    if (!ValidName(name)) return BadName(name);
    int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound(name + " not found");
      return Status::IoError("open " + Path(name) + ": " + ErrnoText(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return Status::Corruption(Path(name) + " is not a regular file");
    }
    std::string out(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        close(fd);
        return Status::IoError("read " + Path(name) + ": " + ErrnoText(err));
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
    out.resize(done);
    return out;
  }

  Status Put(const std::string& name, std::string_view data) override {
    if (!ValidName(name)) return BadName(name);
    HUBSYNC_RETURN_IF_ERROR(MakeParent(name));
    Forget(name);  // an open descriptor would go on writing the replaced file
    return WriteFileAtomic(Path(name), data, 0600);
  }

  Status Overwrite(const std::string& name, std::string_view data) override {
    if (!ValidName(name)) return BadName(name);
    if (data.size() > kMaxOverwriteBytes) return Status::InvalidArgument("overwrite too large");
    auto fd = Open(name);
    if (!fd.ok()) return fd.status();
    ssize_t n = pwrite(fd->fd, data.data(), data.size(), 0);
    if (n != static_cast<ssize_t>(data.size())) {
      return Status::IoError("write " + Path(name) + ": " + ErrnoText(n < 0 ? errno : EIO));
    }
    struct stat st;
    if (fstat(fd->fd, &st) == 0 && static_cast<size_t>(st.st_size) != data.size() &&
        ftruncate(fd->fd, static_cast<off_t>(data.size())) != 0) {
      return Status::IoError("truncate " + Path(name) + ": " + ErrnoText(errno));
    }
    return Status::Ok();
  }

  Status Flush(const std::string& name) override {
    if (!ValidName(name)) return BadName(name);
    auto fd = Open(name);
    if (!fd.ok()) return fd.status();
    if (fdatasync(fd->fd) != 0) return Status::IoError("fdatasync " + Path(name) + ": " + ErrnoText(errno));
    if (fd->created) {  // the file's own name must survive too
      HUBSYNC_RETURN_IF_ERROR(SyncDir(Parent(name)));
      open_[name].created = false;
    }
    return Status::Ok();
  }

  Status Remove(const std::string& name) override {
    if (!ValidName(name)) return BadName(name);
    Forget(name);
    if (unlink(Path(name).c_str()) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Status::IoError("remove " + Path(name) + ": " + ErrnoText(errno));
    }
    return SyncDir(Parent(name));
  }

  // flock on the state_dir itself (not state_dir/lock, which the owning
  // process holds for its whole life).
  Status Update(const std::string& name, const Change& change) override {
    if (!ValidName(name)) return BadName(name);
    int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT && MakeDirs(dir_, 0700).ok()) {
      dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0) return Status::IoError("open " + dir_ + ": " + ErrnoText(errno));
    while (flock(dfd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        int err = errno;
        close(dfd);
        return Status::IoError("lock " + dir_ + ": " + ErrnoText(err));
      }
    }
    Status s = Apply(this, name, change);
    close(dfd);  // drops the lock
    return s;
  }

  std::vector<std::string> List(const std::string& dir) const override {
    std::vector<std::string> names;
    if (!ValidName(dir) || dir.find('/') != std::string::npos) return names;
    int fd = open((dir_ + "/" + dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return names;
    DIR* d = fdopendir(fd);
    if (!d) {
      close(fd);
      return names;
    }
    while (struct dirent* de = readdir(d)) {
      std::string leaf = de->d_name;
      bool regular = de->d_type == DT_REG;
      struct stat st;
      if (de->d_type == DT_UNKNOWN && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        regular = S_ISREG(st.st_mode);
      }
      if (regular && ValidName(dir + "/" + leaf)) names.push_back(leaf);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  struct OpenFile {
    int fd = -1;
    bool created = false;  // made by this process, its directory entry not yet synced
  };

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Parent(const std::string& name) const {
    size_t slash = name.find('/');
    return slash == std::string::npos ? dir_ : dir_ + "/" + name.substr(0, slash);
  }
  Status MakeParent(const std::string& name) {
    if (name.find('/') == std::string::npos) return Status::Ok();
    return MakeDirs(Parent(name), 0700);
  }
  Result<OpenFile> Open(const std::string& name) {
    auto it = open_.find(name);
    if (it != open_.end()) return it->second;
    HUBSYNC_RETURN_IF_ERROR(MakeParent(name));
    OpenFile f;
    f.fd = open(Path(name).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (f.fd < 0 && errno == ENOENT) {
      f.fd = open(Path(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      f.created = true;
    }
    if (f.fd < 0) return Status::IoError("open " + Path(name) + ": " + ErrnoText(errno));
    struct stat st;
    if (fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(f.fd);
      return Status::Corruption(Path(name) + " is not a regular file");
    }
    open_[name] = f;
    return f;
  }
  void Forget(const std::string& name) {
    auto it = open_.find(name);
    if (it == open_.end()) return;
    close(it->second.fd);
    open_.erase(it);
  }

  std::string dir_;
  std::map<std::string, OpenFile> open_;  // records written by Overwrite
};

}  // namespace

std::unique_ptr<StateStore> NewPosixStateStore(const std::string& dir) {
  return std::make_unique<PosixStateStore>(dir);
}

// ---- in memory --------------------------------------------------------------

Result<std::string> MemoryStateStore::Get(const std::string& name) const {
  if (!ValidName(name)) return BadName(name);
  if (auto it = volatile_.find(name); it != volatile_.end()) return it->second;
  if (auto it = durable_.find(name); it != durable_.end()) return it->second;
  return Status::NotFound(name + " not found");
}

Status MemoryStateStore::Put(const std::string& name, std::string_view data) {
  if (!ValidName(name)) return BadName(name);
  volatile_.erase(name);
  durable_[name] = std::string(data);
  return Status::Ok();
}

Status MemoryStateStore::Overwrite(const std::string& name, std::string_view data) {
  if (!ValidName(name)) return BadName(name);
  if (data.size() > kMaxOverwriteBytes) return Status::InvalidArgument("overwrite too large");
  volatile_[name] = std::string(data);
  return Status::Ok();
}

Status MemoryStateStore::Flush(const std::string& name) {
  if (!ValidName(name)) return BadName(name);
  auto it = volatile_.find(name);
  if (it != volatile_.end()) {
    durable_[name] = std::move(it->second);
    volatile_.erase(it);
  }
  return Status::Ok();
}

Status MemoryStateStore::Remove(const std::string& name) {
  if (!ValidName(name)) return BadName(name);
  volatile_.erase(name);
  durable_.erase(name);
  return Status::Ok();
}

std::vector<std::string> MemoryStateStore::List(const std::string& dir) const {
  std::vector<std::string> names;
  std::string prefix = dir + "/";
  for (const auto* m : {&durable_, &volatile_}) {
    for (auto it = m->lower_bound(prefix); it != m->end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      names.push_back(it->first.substr(prefix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

Status MemoryStateStore::Update(const std::string& name, const Change& change) {
  if (!ValidName(name)) return BadName(name);
  return Apply(this, name, change);
}

void MemoryStateStore::LosePower() { volatile_.clear(); }

}  // namespace hubsync
