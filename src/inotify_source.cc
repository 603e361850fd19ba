// Recursive inotify ChangeSource. One thread reads events; paths go into a
// batch the engine Takes. A file still being written (IN_MODIFY without
// IN_CLOSE_WRITE) is reported once it has been quiet for kQuietMs, so
// long-open files such as databases are seen without shipping every write.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <thread>
#include <unordered_map>

#include "hubsync/change_source.h"

namespace hubsync {
namespace {

constexpr int kQuietMs = 100;
constexpr uint32_t kMask = IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE |
                           IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR |
                           IN_DONT_FOLLOW | IN_EXCL_UNLINK;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class InotifySource : public ChangeSource {
 public:
  InotifySource(std::string root, const PathFilter* filter)
      : root_(std::move(root)), filter_(filter) {}
  ~InotifySource() override { Stop(); }

  Status Start(std::function<void()> notify) override {
    notify_ = std::move(notify);
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) return Status::IoError(std::string("inotify: ") + std::strerror(errno));
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) return Status::IoError(std::string("eventfd: ") + std::strerror(errno));
    WatchTree("");
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  ChangeBatch Take() override {
    std::lock_guard<std::mutex> l(mu_);
    ChangeBatch b = std::move(batch_);
    batch_ = ChangeBatch{};
    return b;
  }

  void Stop() override {
    if (thread_.joinable()) {
      uint64_t one = 1;
      if (write(stop_fd_, &one, sizeof one) < 0) {
        // The loop also wakes on its poll timeout; nothing else to do.
      }
      thread_.join();
    }
    if (fd_ >= 0) close(fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
    fd_ = stop_fd_ = -1;
  }

 private:
  std::string Full(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  static std::string Join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
  }

  // Adds watches for `rel` and every directory below it. Any failure means
  // changes could be missed there, so it is reported as an overflow.
  void WatchTree(const std::string& rel) {
    if (!rel.empty() && filter_->Excluded(rel, true)) return;
    int wd = inotify_add_watch(fd_, Full(rel).c_str(), kMask);
    if (wd < 0) {
      if (errno != ENOENT && errno != ENOTDIR) overflow_ = true;
      return;
    }
    wds_[wd] = rel;
    DIR* d = opendir(Full(rel).c_str());
    if (!d) return;
    while (struct dirent* de = readdir(d)) {
      if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
      bool is_dir = de->d_type == DT_DIR;
      if (de->d_type == DT_UNKNOWN) {
        struct stat st;
        is_dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISDIR(st.st_mode);
      }
      if (is_dir) WatchTree(Join(rel, de->d_name));
    }
    closedir(d);
  }

  void ForgetTree(const std::string& rel) {
    for (auto it = wds_.begin(); it != wds_.end();) {
      const std::string& p = it->second;
      if (p == rel || (p.size() > rel.size() && p.compare(0, rel.size(), rel) == 0 &&
                       p[rel.size()] == '/')) {
        inotify_rm_watch(fd_, it->first);
        it = wds_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Report(const std::string& rel) { pending_.insert(rel); }

  void Handle(const struct inotify_event* ev) {
    if (ev->mask & IN_Q_OVERFLOW) {
      overflow_ = true;
      return;
    }
    auto it = wds_.find(ev->wd);
    if (it == wds_.end()) return;
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
      if (ev->mask & IN_IGNORED) wds_.erase(it);
      return;
    }
    if (ev->len == 0) return;
    std::string rel = Join(it->second, ev->name);
    bool is_dir = ev->mask & IN_ISDIR;
    if (filter_->Excluded(rel, is_dir)) return;
    if (is_dir) {
      if (ev->mask & (IN_CREATE | IN_MOVED_TO)) WatchTree(rel);
      if (ev->mask & (IN_MOVED_FROM | IN_DELETE)) ForgetTree(rel);
      Report(rel);
      return;
    }
    if (ev->mask & IN_MODIFY) {
      modified_[rel] = NowMs();
      return;
    }
    if (ev->mask & IN_CREATE) {
      // A plain new file is reported on close; links and hard links now.
      struct stat st;
      if (lstat(Full(rel).c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) return;
    }
    modified_.erase(rel);
    Report(rel);
  }

  void Loop() {
    alignas(struct inotify_event) char buf[64 * 1024];
    while (true) {
      int timeout = modified_.empty() ? -1 : kQuietMs;
      struct pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      int rc = poll(fds, 2, timeout);
      if (rc < 0 && errno != EINTR) return;
      if (fds[1].revents) return;
      if (fds[0].revents & POLLIN) {
        while (true) {
          ssize_t n = read(fd_, buf, sizeof buf);
          if (n <= 0) break;
          for (char* p = buf; p < buf + n;) {
            auto* ev = reinterpret_cast<struct inotify_event*>(p);
            Handle(ev);
            p += sizeof(struct inotify_event) + ev->len;
          }
        }
      }
      int64_t now = NowMs();
      for (auto it = modified_.begin(); it != modified_.end();) {
        if (now - it->second >= kQuietMs) {
          Report(it->first);
          it = modified_.erase(it);
        } else {
          ++it;
        }
      }
      if (overflow_) {
        // Rebuild every watch: directories may have appeared unseen.
        for (const auto& [wd, p] : wds_) inotify_rm_watch(fd_, wd);
        wds_.clear();
        WatchTree("");
      }
      if (pending_.empty() && !overflow_) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        batch_.paths.insert(pending_.begin(), pending_.end());
        batch_.overflow |= overflow_;
      }
      pending_.clear();
      overflow_ = false;
      notify_();
    }
  }

  std::string root_;
  const PathFilter* filter_;
  std::function<void()> notify_;
  int fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  // Touched only by the reader thread:
  std::unordered_map<int, std::string> wds_;
  std::map<std::string, int64_t> modified_;
  std::set<std::string> pending_;
  bool overflow_ = false;
  std::mutex mu_;
  ChangeBatch batch_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<ChangeSource> NewInotifySource(const std::string& root, const PathFilter* filter) {
  return std::make_unique<InotifySource>(root, filter);
}

}  // namespace hubsync
