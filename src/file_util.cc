#include "file_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace hubsync {

std::string ErrnoText(int err) { return std::strerror(err); }

Status SyncDir(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("open dir " + path + ": " + ErrnoText(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return Status::IoError("fsync dir " + path + ": " + ErrnoText(err));
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Status::IoError("create " + tmp + ": " + ErrnoText(errno));
  fchmod(fd, mode);  // the umask must not widen or narrow key permissions
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return Status::IoError("write " + tmp + ": " + ErrnoText(err));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return Status::IoError("fsync " + tmp + ": " + ErrnoText(err));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Status::IoError("rename " + tmp + ": " + ErrnoText(err));
  }
  size_t slash = path.rfind('/');
  return SyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

Result<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(path);
    return Status::IoError("open " + path + ": " + ErrnoText(errno));
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return Status::IoError("read " + path + ": " + ErrnoText(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return Status::Ok();
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
        return Status::IoError("mkdir " + part + ": " + ErrnoText(errno));
      }
    }
  }
  return Status::Ok();
}

namespace {
std::string LockPath(const std::string& state_dir) { return state_dir + "/lock"; }
}  // namespace

Result<StateDirLock> StateDirLock::Acquire(const std::string& state_dir) {
  std::string path = LockPath(state_dir);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::IoError("open " + path + ": " + ErrnoText(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err != EWOULDBLOCK) return Status::IoError("lock " + path + ": " + ErrnoText(err));
    int pid = Holder(state_dir);
    return Status::Unavailable("state_dir " + state_dir + " is in use by another hubsync process" +
                               (pid > 0 ? " (pid " + std::to_string(pid) + ")" : ""));
  }
  // Who holds it, for `hubsync pair` to ask; on a full disk the lock holds
  // all the same (Holder then says "held, holder unknown").
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) == 0 && pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    [[maybe_unused]] int ignored = ftruncate(fd, 0);
  }
  return StateDirLock(fd);
}

int StateDirLock::Holder(const std::string& state_dir) {
  std::string path = LockPath(state_dir);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  int pid = 0;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0) {  // held: read who holds it
    char buf[32] = {};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) pid = std::atoi(buf);
    if (pid <= 0) pid = -1;  // held, holder unknown
  }
  close(fd);
  return pid;
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace hubsync
