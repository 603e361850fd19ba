#include "hubsync/scanner.h"

#include <gtest/gtest.h>
#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>

#include "hubsync/clock.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::TempDir;
using testing::WriteFile;

constexpr int64_t kFuture = 4'000'000'000'000'000'000;

// A scanner over a temporary directory, nothing excluded.
struct Scanned {
  TempDir d;
  std::unique_ptr<FileSystem> fs = NewPosixFileSystem(d.path());
  PathFilter filter;
  Scanner s{fs.get(), &filter};
};

const Entry* Find(const Manifest& m, const std::string& p) {
  for (const Entry& e : m) {
    if (e.path == p) return &e;
  }
  return nullptr;
}

TEST(ScannerTest, ScanListsTypesAndHonoursExclusions) {
  TempDir d;
  WriteFile(d.Sub("a/b.json"), "hello");
  WriteFile(d.Sub("cache/x"), "skip");
  WriteFile(d.Sub("t.tmp"), "skip");
  WriteFile(d.Sub(".hubsync/staging/1/0"), "never");
  symlink("a/b.json", d.Sub("link").c_str());
  mkfifo(d.Sub("fifo").c_str(), 0600);
  auto fs = NewPosixFileSystem(d.path());
  PathFilter filter({"cache/**", "*.tmp"});
  Scanner s(fs.get(), &filter);
  auto m = s.Scan(kFuture);
  ASSERT_TRUE(m.ok());
  std::vector<std::string> paths;
  for (const Entry& e : *m) paths.push_back(e.path);
  // "cache/**" excludes the directory itself too ("**" matches zero segments).
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a/b.json", "link"}));
  EXPECT_EQ(Find(*m, "a/b.json")->digest, Sha256Of("hello"));
  EXPECT_EQ(Find(*m, "link")->type, EntryType::kSymlink);
  EXPECT_EQ(Find(*m, "link")->target, "a/b.json");
}

TEST(ScannerTest, CacheSparesRehashingAcrossRestarts) {
  TempDir d;
  MemoryStateStore state;
  WriteFile(d.Sub("f1"), std::string(100000, 'a'));
  WriteFile(d.Sub("f2"), std::string(200000, 'b'));
  auto fs = NewPosixFileSystem(d.path());
  PathFilter filter;
  {
    Scanner s(fs.get(), &filter, &state);
    ASSERT_TRUE(s.Scan(kFuture).ok());
    EXPECT_EQ(s.hashed_bytes(), 300000u);
    ASSERT_TRUE(s.SaveCache().ok());
  }
  Scanner restarted(fs.get(), &filter, &state);
  ASSERT_TRUE(restarted.LoadCache().ok());
  WriteFile(d.Sub("f1"), std::string(100000, 'c'));  // same size, new content
  auto m = restarted.Scan(kFuture);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(restarted.hashed_bytes(), 100000u);  // only the changed file
  EXPECT_EQ(Find(*m, "f1")->digest, Sha256Of(std::string(100000, 'c')));
}

TEST(ScannerTest, RecentlyModifiedFilesAreNotTrustedFromTheCache) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  WriteFile(d.Sub("f"), "x");
  int64_t now = RealClock()->WallNs();
  ASSERT_TRUE(s.Scan(now).ok());
  ASSERT_TRUE(s.Scan(now).ok());
  EXPECT_EQ(s.hashed_bytes(), 2u);  // hashed both times: racily clean
}

TEST(ScannerTest, UpdatePatchesOnlyWhatChanged) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  WriteFile(d.Sub("keep/a"), "a");
  WriteFile(d.Sub("gone/b"), "b");
  auto m = s.Scan(kFuture);
  ASSERT_TRUE(m.ok());
  std::system(("rm -rf '" + d.Sub("gone") + "'").c_str());
  WriteFile(d.Sub("new/deep/c"), "c");
  WriteFile(d.Sub("keep/a"), "A");
  ASSERT_TRUE(s.Update(&*m, {"gone", "new/deep/c", "keep/a"}, kFuture).ok());
  auto full = s.Scan(kFuture);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(m->root(), full->root());
  EXPECT_NE(Find(*m, "new/deep"), nullptr);
}

// "d-x.json" and "d.old" sort between "d" and "d/...": re-reading "d"
// must still drop what left it (a manifest that kept "d/y" would never
// send its deletion).
TEST(ScannerTest, AnUpdatedDirectoryDropsWhatLeftItEvenWithSiblingsSortingBetween) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  WriteFile(d.Sub("d/y"), "y");
  WriteFile(d.Sub("d/z"), "z");
  WriteFile(d.Sub("d-x.json"), "x");
  WriteFile(d.Sub("d.old"), "o");
  auto m = s.Scan(kFuture);
  ASSERT_TRUE(m.ok());
  std::remove(d.Sub("d/y").c_str());
  ASSERT_TRUE(s.Update(&*m, {"d"}, kFuture).ok());
  auto full = s.Scan(kFuture);
  ASSERT_TRUE(full.ok());
  std::vector<std::string> paths;
  for (const Entry& e : *m) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"d", "d-x.json", "d.old", "d/z"}));
  EXPECT_EQ(m->root(), full->root());
}

// The last result is the cache: scanning again reads only what changed,
// and a file swapped for another of the same size and mtime (a new inode,
// as an editor's save-by-rename makes) is read again.
TEST(ScannerTest, ScanningAgainReadsOnlyWhatChanged) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  WriteFile(d.Sub("a"), std::string(1000, 'a'));
  WriteFile(d.Sub("b"), std::string(2000, 'b'));
  ASSERT_TRUE(s.Scan(kFuture).ok());
  EXPECT_EQ(s.hashed_bytes(), 3000u);
  ASSERT_TRUE(s.Scan(kFuture).ok());
  EXPECT_EQ(s.hashed_bytes(), 3000u) << "nothing read again";
  struct stat old_b;
  ASSERT_EQ(stat(d.Sub("b").c_str(), &old_b), 0);
  WriteFile(d.Sub("b.new"), std::string(2000, 'c'));
  struct timespec times[2] = {old_b.st_atim, old_b.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, d.Sub("b.new").c_str(), times, 0), 0);
  ASSERT_EQ(std::rename(d.Sub("b.new").c_str(), d.Sub("b").c_str()), 0);
  auto m = s.Scan(kFuture);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(s.hashed_bytes(), 5000u);
  EXPECT_EQ(Find(*m, "b")->digest, Sha256Of(std::string(2000, 'c')));
  // The same bytes under a new inode: read once, then trusted (the
  // manifest keeps the new stat, not a shared leaf's old one).
  WriteFile(d.Sub("b.new"), std::string(2000, 'c'));
  ASSERT_EQ(utimensat(AT_FDCWD, d.Sub("b.new").c_str(), times, 0), 0);
  ASSERT_EQ(std::rename(d.Sub("b.new").c_str(), d.Sub("b").c_str()), 0);
  ASSERT_TRUE(s.Scan(kFuture).ok());
  EXPECT_EQ(s.hashed_bytes(), 7000u);
  ASSERT_TRUE(s.Scan(kFuture).ok());
  EXPECT_EQ(s.hashed_bytes(), 7000u);
}

// A scan builds its manifest as it reads (no list of every entry beside
// it), so it must come out in path order whatever the names.
TEST(ScannerTest, AScanComesOutInPathOrderWhateverTheNames) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  std::vector<std::string> files = {"a.b", "a/c/d", "a-", "a0", "a/c.e", "b", "\xc3\xa9", "A",
                                    "a/c/d.x", "a/c-/y", "z/a/b/c"};
  for (const std::string& f : files) WriteFile(d.Sub(f), f);
  auto m = s.Scan(kFuture);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<std::string> got, want = {"a", "a/c", "a/c-", "z", "z/a", "z/a/b"};
  want.insert(want.end(), files.begin(), files.end());
  std::sort(want.begin(), want.end());
  for (const Entry& e : *m) got.push_back(e.path);
  EXPECT_EQ(got, want);
}

// Memory that does not grow with checks: scanning again shares the last
// result's leaves wherever nothing changed.
TEST(ScannerTest, ScanningAgainSharesTheLeavesOfWhatDidNotChange) {
  Scanned t;
  TempDir& d = t.d;
  Scanner& s = t.s;
  for (int i = 0; i < 600; ++i) WriteFile(d.Sub("dev/" + std::to_string(i) + ".json"), "x");
  auto first = s.Scan(kFuture);
  ASSERT_TRUE(first.ok());
  ASSERT_GT(first->leaves().size(), 4u);
  auto same = s.Scan(kFuture);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->leaves(), first->leaves()) << "every leaf shared";
  WriteFile(d.Sub("dev/300.json"), "changed");
  auto changed = s.Scan(kFuture);
  ASSERT_TRUE(changed.ok());
  ASSERT_EQ(changed->leaves().size(), first->leaves().size());
  size_t shared = 0;
  for (size_t i = 0; i < first->leaves().size(); ++i) shared += changed->leaves()[i] == first->leaves()[i];
  EXPECT_EQ(shared + 1, first->leaves().size());
}

}  // namespace
}  // namespace hubsync
