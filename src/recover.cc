#include "hubsync/recover.h"

#include "file_util.h"
#include "hubsync/filesystem.h"
#include "hubsync/paths.h"

namespace hubsync {

Result<Applier::Recovery> RecoverDataDir(const Config& config) {
  auto lock = StateDirLock::Acquire(config.state_dir);
  if (!lock.ok()) return lock.status();
  std::unique_ptr<FileSystem> fs = NewPosixFileSystem(config.data_dir);
  auto work = fs->Stat(kStagingDirName);
  if (!work.ok()) {
    if (work.status().code() == Status::Code::kNotFound) return Applier::Recovery{};
    return work.status();
  }
  PathFilter filter(config.exclude);
  Applier applier(fs.get(), &filter);
  Applier::Recovery report;
  Status s = applier.Recover(&report);
  if (!s.ok()) return s;
  return report;
}

}  // namespace hubsync
