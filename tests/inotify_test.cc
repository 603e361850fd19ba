// The real inotify ChangeSource on a temporary directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <condition_variable>
#include <mutex>

#include "harness.h"
#include "hubsync/change_source.h"

namespace hubsync {
namespace {

using testing::TempDir;
using testing::WriteFile;

class InotifyTest : public ::testing::Test {
 protected:
  void SetUp() override { Watch(); }
  // (Re)starts watching with nothing seen yet: what exists before is never
  // reported by its creation.
  void Watch() {
    if (source_) source_->Stop();
    {
      std::lock_guard<std::mutex> l(mu_);
      seen_.clear();
    }
    source_ = NewInotifySource(dir_.path(), &filter_);
    ASSERT_TRUE(source_->Start([this] {
      std::lock_guard<std::mutex> l(mu_);
      ChangeBatch b = source_->Take();
      seen_.insert(b.paths.begin(), b.paths.end());
      overflow_ |= b.overflow;
    }).ok());
  }
  void TearDown() override { source_->Stop(); }
  bool Saw(const std::string& path) {
    return testing::WaitFor([&] {
      std::lock_guard<std::mutex> l(mu_);
      return seen_.count(path) > 0;
    }, 5000);
  }
  bool SawNow(const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.count(path) > 0;
  }

  TempDir dir_;
  PathFilter filter_{{"cache/**"}};
  std::unique_ptr<ChangeSource> source_;
  std::mutex mu_;
  std::set<std::string> seen_;
  bool overflow_ = false;
};

TEST_F(InotifyTest, ReportsWritesDeletesAndLinks) {
  WriteFile(dir_.Sub("a.json"), "1");
  EXPECT_TRUE(Saw("a.json"));
  symlink("x", dir_.Sub("link").c_str());
  EXPECT_TRUE(Saw("link"));
  // Files made before watching starts: only the delete (IN_DELETE) and the
  // mode change (IN_ATTRIB) themselves can report them now.
  WriteFile(dir_.Sub("b"), "b");
  WriteFile(dir_.Sub("sub/c"), "c");
  Watch();
  unlink(dir_.Sub("a.json").c_str());
  EXPECT_TRUE(Saw("a.json")) << "a delete is a change";
  chmod(dir_.Sub("b").c_str(), 0600);
  EXPECT_TRUE(Saw("b")) << "a mode change is a change";
  chmod(dir_.Sub("sub/c").c_str(), 0600);
  EXPECT_TRUE(Saw("sub/c")) << "in an existing subdirectory too";
}

TEST_F(InotifyTest, NewDirectoriesAreWatchedAtOnce) {
  mkdir(dir_.Sub("new").c_str(), 0755);
  EXPECT_TRUE(Saw("new"));
  // Written after the directory appeared: must be seen through its new watch.
  ASSERT_TRUE(testing::WaitFor([&] {
    WriteFile(dir_.Sub("new/deeper/file.json"), "x");
    return SawNow("new/deeper/file.json") || SawNow("new/deeper");
  }, 5000));
  WriteFile(dir_.Sub("new/deeper/second.json"), "y");
  EXPECT_TRUE(Saw("new/deeper/second.json"));
}

TEST_F(InotifyTest, MovesReportBothEndsAndFollowTheDirectory) {
  WriteFile(dir_.Sub("from/x.json"), "x");
  // The file may be written before the new directory's watch exists; then
  // the directory itself is reported ("rescan this subtree"), by contract.
  EXPECT_TRUE(testing::WaitFor([&] { return SawNow("from/x.json") || SawNow("from"); }, 5000));
  {
    std::lock_guard<std::mutex> l(mu_);
    seen_.clear();
  }
  rename(dir_.Sub("from").c_str(), dir_.Sub("to").c_str());
  EXPECT_TRUE(Saw("from"));
  EXPECT_TRUE(Saw("to"));
  WriteFile(dir_.Sub("to/after-move.json"), "z");
  EXPECT_TRUE(Saw("to/after-move.json"));
}

TEST_F(InotifyTest, ExcludedPathsAreIgnored) {
  WriteFile(dir_.Sub("cache/blob"), "x");
  WriteFile(dir_.Sub("marker"), "m");
  EXPECT_TRUE(Saw("marker"));
  EXPECT_FALSE(SawNow("cache/blob"));
}

TEST_F(InotifyTest, LongOpenFilesAreReportedWhenQuiet) {
  FILE* f = fopen(dir_.Sub("db.sqlite").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fwrite("page", 1, 4, f);
  fflush(f);  // still open: reported once quiet for 100 ms, without a close
  EXPECT_TRUE(Saw("db.sqlite"));
  fclose(f);
}

}  // namespace
}  // namespace hubsync
