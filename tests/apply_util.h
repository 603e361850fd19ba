// In-process sync helpers for tests of the apply path: a source tree's
// difference streamed through DeltaWriter and Applier the way the daemons do.
#ifndef HUBSYNC_TESTS_APPLY_UTIL_H_
#define HUBSYNC_TESTS_APPLY_UTIL_H_

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "hubsync/applier.h"
#include "hubsync/delta_writer.h"
#include "hubsync/scanner.h"
#include "test_util.h"

namespace hubsync {
namespace testing {

constexpr int64_t kNow = 4'000'000'000'000'000'000;  // far future: nothing is "racy"

inline Manifest ScanTree(FileSystem* fs, const PathFilter* filter) {
  Scanner s(fs, filter);
  auto m = s.Scan(kNow);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

struct SyncResult {
  Status status;
  ApplyStats stats;
  size_t chunks = 0;
};

// One transfer of src's difference to dst through DeltaWriter and `a` (an
// applier of the backup's lifetime: no recovery here but what Begin does).
inline SyncResult SyncThrough(Applier& a, const std::string& src, FileSystem* dst_fs,
                              size_t max_plain = 8192, const PathFilter& filter = PathFilter(),
                              int crash_after = -1) {
  SyncResult r;
  if (a.journal_pending()) {  // as the backup does before describing its tree
    r.status = a.Recover();
    if (!r.status.ok()) return r;
  }
  auto src_fs = NewPosixFileSystem(src);
  auto target = std::make_shared<const Manifest>(ScanTree(src_fs.get(), &filter));
  auto base = std::make_shared<const Manifest>(ScanTree(dst_fs, &filter));
  DeltaWriter w(src_fs.get(), target, base, Diff(*target, *base), max_plain);
  a.set_crash_after_steps_for_test(crash_after);
  r.status = a.Begin(7);
  while (r.status.ok() && !w.done()) {
    bool last = false;
    auto chunk = w.Next(&last);
    if (!chunk.ok()) {
      r.status = chunk.status();
      break;
    }
    EXPECT_LE(chunk->size(), max_plain);
    ++r.chunks;
    std::vector<DeltaRecord> recs;
    r.status = DecodeRecords(*chunk, &recs);
    for (size_t i = 0; r.status.ok() && i < recs.size(); ++i) r.status = a.Record(recs[i]);
    if (r.status.ok() && last) r.status = a.Commit();
  }
  r.stats = a.stats();
  if (!r.status.ok()) a.Abort();  // as the backup does with a failed transfer
  return r;
}

// Streams src's difference to dst through DeltaWriter and a new Applier, the
// way a backup that has just started does, but in-process.
inline SyncResult SyncOnce(const std::string& src, FileSystem* dst_fs, size_t max_plain = 8192,
                           const PathFilter& filter = PathFilter(), int crash_after = -1) {
  // Recovery first, as the backup does at start: the manifest it sends
  // describes the recovered tree.
  Applier a(dst_fs, &filter);
  SyncResult r;
  r.status = a.Recover();
  if (!r.status.ok()) return r;
  return SyncThrough(a, src, dst_fs, max_plain, filter, crash_after);
}

// Files of many kinds: nested, unicode, empty, executable, symlinks (one
// dangling), a 3 MiB binary of noise.
inline void MakeRichTree(const std::string& root) {
  testing::WriteFile(root + "/devices/lamp.json", R"({"on":true})");
  testing::WriteFile(root + "/devices/deep/er/and/deeper/x.json", "deep");
  testing::WriteFile(root + "/scenes/movie night ü.json", "unicode and spaces");
  testing::WriteFile(root + "/empty", "");
  testing::WriteFile(root + "/bin/run.sh", "#!/bin/sh\n");
  chmod((root + "/bin/run.sh").c_str(), 0755);
  chmod((root + "/devices/lamp.json").c_str(), 0600);
  symlink("devices/lamp.json", (root + "/current").c_str());
  symlink("/nonexistent/outside", (root + "/dangling").c_str());
  testing::WriteFile(root + "/db/hub.sqlite", testing::RandomBytesString(3 << 20, 42));
}

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_APPLY_UTIL_H_
