// The ChangeSource seam: tells the primary which paths under data_dir changed.
//
// Real implementation: recursive inotify (NewInotifySource). Paths are
// relative to data_dir; a directory path means "rescan this subtree" (used for
// new and moved-in directories, whose contents may predate the watch). An
// overflow (IN_Q_OVERFLOW, or a watch that could not be added) sets
// `overflow`, which means "rescan everything": changes are never lost, only
// coarsened.
//
// Thread rule: the source runs its own thread and calls `notify` from it
// when a batch is ready; Take() may be called from any one thread.
#ifndef HUBSYNC_CHANGE_SOURCE_H_
#define HUBSYNC_CHANGE_SOURCE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "hubsync/paths.h"
#include "hubsync/status.h"

namespace hubsync {

struct ChangeBatch {
  std::set<std::string> paths;
  bool overflow = false;
  bool empty() const { return paths.empty() && !overflow; }
};

class ChangeSource {
 public:
  virtual ~ChangeSource() = default;
  virtual Status Start(std::function<void()> notify) = 0;
  virtual ChangeBatch Take() = 0;
  virtual void Stop() = 0;
};

// Watches `root` recursively, ignoring what `filter` excludes.
std::unique_ptr<ChangeSource> NewInotifySource(const std::string& root, const PathFilter* filter);

// A source that tests push changes into.
class FakeChangeSource : public ChangeSource {
 public:
  Status Start(std::function<void()> notify) override {
    std::lock_guard<std::mutex> l(mu_);
    notify_ = std::move(notify);
    return Status::Ok();
  }
  ChangeBatch Take() override {
    std::lock_guard<std::mutex> l(mu_);
    ChangeBatch b = std::move(batch_);
    batch_ = ChangeBatch{};
    return b;
  }
  void Stop() override {}
  void Push(const std::string& path, bool overflow = false) {
    std::function<void()> n;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (overflow) batch_.overflow = true;
      else batch_.paths.insert(path);
      n = notify_;
    }
    if (n) n();
  }

 private:
  std::mutex mu_;
  ChangeBatch batch_;
  std::function<void()> notify_;
};

}  // namespace hubsync

#endif  // HUBSYNC_CHANGE_SOURCE_H_
