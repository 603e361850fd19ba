#include "hubsync/manifest.h"
#include "hubsync/chunker.h"

#include <gtest/gtest.h>

namespace hubsync {
namespace {

Entry File(const std::string& path, const std::string& content, int64_t mtime = 1) {
  Entry e;
  e.path = path;
  e.type = EntryType::kFile;
  e.mode = 0644;
  e.mtime_ns = mtime;
  e.size = content.size();
  e.digest = Sha256Of(content);
  return e;
}
Entry Dir(const std::string& path, int64_t mtime = 1) {
  Entry e;
  e.path = path;
  e.type = EntryType::kDir;
  e.mode = 0755;
  e.mtime_ns = mtime;
  return e;
}
Entry Link(const std::string& path, const std::string& target) {
  Entry e;
  e.path = path;
  e.type = EntryType::kSymlink;
  e.mode = 0777;
  e.target = target;
  e.digest = Sha256Of(target);
  return e;
}

std::vector<std::string> Describe(const std::vector<Op>& ops) {
  static const char* kNames[] = {"", "del", "mkdir", "put", "link", "attr"};
  std::vector<std::string> out;
  for (const Op& op : ops) {
    std::string s = std::string(kNames[static_cast<int>(op.kind)]) + " " + op.path;
    if (!op.local_source.empty()) s += " <" + op.local_source;
    if (op.base) s += " +blocks";
    out.push_back(s);
  }
  return out;
}

TEST(ManifestTest, RootIgnoresDirectoryMtimeButNotFileMtime) {
  Manifest a = {Dir("d", 1), File("d/x", "1", 5)};
  Manifest b = {Dir("d", 99), File("d/x", "1", 5)};
  Manifest c = {Dir("d", 1), File("d/x", "1", 6)};
  EXPECT_EQ(ManifestRoot(a), ManifestRoot(b));
  EXPECT_NE(ManifestRoot(a), ManifestRoot(c));
  EXPECT_NE(ManifestRoot(a), ManifestRoot(Manifest{}));
}

struct DiffCase {
  const char* name;
  Manifest primary, backup;
  std::vector<std::string> ops;
};

TEST(ManifestTest, DiffTable) {
  const DiffCase cases[] = {
      {"identical", {File("a", "1")}, {File("a", "1")}, {}},
      {"add", {Dir("d"), File("d/a", "1")}, {}, {"mkdir d", "put d/a"}},
      {"delete children first", {}, {Dir("d"), File("d/a", "1")}, {"del d/a", "del d"}},
      {"edit", {File("a", "2")}, {File("a", "1")}, {"put a"}},
      {"touch", {File("a", "1", 7)}, {File("a", "1", 3)}, {"attr a"}},
      {"dir mtime alone is no change", {Dir("d", 5)}, {Dir("d", 6)}, {}},
      {"file to dir",
       {Dir("a"), File("a/x", "1")},
       {File("a", "2")},
       {"del a", "mkdir a", "put a/x"}},
      {"dir to file",
       {File("a", "2")},
       {Dir("a"), File("a/x", "1")},
       {"del a/x", "del a", "put a"}},
      {"rename reuses local content",
       {File("new", "content")},
       {File("old", "content")},
       {"del old", "put new <old"}},
      {"empty file never copied", {File("e", "")}, {File("f", "")}, {"del f", "put e"}},
      {"symlink retarget", {Link("l", "x")}, {Link("l", "y")}, {"link l"}},
      {"a-b sorts before a/b",
       {Dir("a"), File("a-b", "1"), File("a/b", "2")},
       {},
       {"mkdir a", "put a-b", "put a/b"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Describe(Diff(c.primary, c.backup)), c.ops) << c.name;
  }
}

// A few new files look the backup's content up one by one, many through an
// index: either way a content the backup holds is copied there, from the
// first path (in path order) that holds it.
TEST(ManifestTest, LocalCopiesAreFoundWithAndWithoutTheIndex) {
  for (int renamed : {1, 40}) {
    Manifest primary, backup;
    for (int i = 0; i < renamed; ++i) {
      std::string content = "content " + std::to_string(i);
      backup.push_back(File("a/old-" + std::to_string(100 + i), content));
      backup.push_back(File("b/twin-" + std::to_string(100 + i), content));
      primary.push_back(File("c/new-" + std::to_string(100 + i), content));
    }
    primary.push_back(File("d/fresh", "nowhere on the backup"));
    SortManifest(&primary);
    SortManifest(&backup);
    std::vector<Op> ops = Diff(primary, backup);
    int copies = 0;
    for (const Op& op : ops) {
      if (op.kind != Op::Kind::kPutFile) continue;
      if (op.path == "d/fresh") {
        EXPECT_TRUE(op.local_source.empty());
        continue;
      }
      EXPECT_EQ(op.local_source, "a/old-" + op.path.substr(6)) << op.path;
      ++copies;
    }
    EXPECT_EQ(copies, renamed);
  }
}

TEST(ManifestTest, BlockReuseNeedsBlocksOnBothSides) {
  Entry p = File("db", "new"), b = File("db", "old");
  p.size = b.size = 4u << 20;
  p.blocks = std::string(64 * kBlockDigestBytes, 'a');
  b.blocks = std::string(64 * kBlockDigestBytes, 'b');
  EXPECT_EQ(Describe(Diff({p}, {b})), std::vector<std::string>{"put db +blocks"});
  DiffOptions plain;
  plain.allow_block_reuse = false;
  EXPECT_EQ(Describe(Diff({p}, {b}, plain)), std::vector<std::string>{"put db"});
  b.blocks.clear();
  EXPECT_EQ(Describe(Diff({p}, {b})), std::vector<std::string>{"put db"});
}

TEST(ManifestTest, ChunkSizesKeepListsBounded) {
  EXPECT_EQ(ChunkSizesFor(0).avg, 16384u);
  EXPECT_EQ(ChunkSizesFor(50u << 20).avg, 32768u);
  EXPECT_EQ(ChunkSizesFor(200u << 20).avg, 131072u);
  for (uint64_t size : {uint64_t{1} << 20, uint64_t{50} << 20, uint64_t{64} << 30, kMaxFileSize}) {
    ChunkSizes c = ChunkSizesFor(size);
    EXPECT_EQ(c.min * 4, c.avg);
    EXPECT_EQ(c.max, uint64_t{c.avg} * 4);
    // Every chunk but the last is at least c.min long.
    EXPECT_LE(size / c.min + 1, kMaxBlocks) << size;
  }
}

TEST(ManifestTest, FilterDropsExcluded) {
  Manifest m = {Dir("cache"), File("cache/x", "1"), File("keep.json", "2")};
  Manifest f = FilterManifest(m, PathFilter({"cache"}));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].path, "keep.json");
  EXPECT_EQ(ManifestBytes(m), 2u);
}

}  // namespace
}  // namespace hubsync
