#include "hubsync/manifest.h"
#include "hubsync/chunker.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

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
    std::string s = std::string(kNames[static_cast<int>(op.kind)]) + " " + std::string(op.path);
    if (!op.local_source.empty()) s += " <" + std::string(op.local_source);
    if (op.base) s += " +blocks";
    out.push_back(s);
  }
  return out;
}

TEST(ManifestTest, RootIgnoresDirectoryMtimeButNotFileMtime) {
  Manifest a = {Dir("d", 1), File("d/x", "1", 5)};
  Manifest b = {Dir("d", 99), File("d/x", "1", 5)};
  Manifest c = {Dir("d", 1), File("d/x", "1", 6)};
  EXPECT_EQ(a.root(), b.root());
  EXPECT_NE(a.root(), c.root());
  EXPECT_NE(a.root(), Manifest{}.root());
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
    std::vector<Entry> primary_entries, backup_entries;
    for (int i = 0; i < renamed; ++i) {
      std::string content = "content " + std::to_string(i);
      backup_entries.push_back(File("a/old-" + std::to_string(100 + i), content));
      backup_entries.push_back(File("b/twin-" + std::to_string(100 + i), content));
      primary_entries.push_back(File("c/new-" + std::to_string(100 + i), content));
    }
    primary_entries.push_back(File("d/fresh", "nowhere on the backup"));
    Manifest primary(std::move(primary_entries)), backup(std::move(backup_entries));
    std::vector<Op> ops = Diff(primary, backup);
    int copies = 0;
    for (const Op& op : ops) {
      if (op.kind != Op::Kind::kPutFile) continue;
      if (op.path == "d/fresh") {
        EXPECT_TRUE(op.local_source.empty());
        continue;
      }
      EXPECT_EQ(op.local_source, "a/old-" + std::string(op.path.substr(6))) << op.path;
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
  EXPECT_EQ(m.bytes(), 2u);
  EXPECT_EQ(m.files(), 2u);
}

// Paths after which no leaf is cut (found through the public API: a
// two-entry manifest has one leaf when the first path does not cut), so
// that a run of them fills leaves to the size cap.
std::vector<std::string> PathsThatDoNotCut(const std::string& prefix, size_t n) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < n; ++i) {
    std::string p = prefix + std::to_string(100000 + i);
    if (Manifest{File(p, "x"), File(p + "~", "x")}.leaves().size() == 1) out.push_back(p);
  }
  return out;
}

void ExpectCutAsFromScratch(const Manifest& m, const std::map<std::string, Entry>& truth) {
  std::vector<Entry> all;
  for (const auto& [path, e] : truth) all.push_back(e);
  Manifest fresh(std::move(all));
  ASSERT_EQ(m.size(), fresh.size());
  ASSERT_EQ(m.leaves().size(), fresh.leaves().size());
  for (size_t i = 0; i < m.leaves().size(); ++i) {
    ASSERT_EQ(m.leaves()[i]->hash, fresh.leaves()[i]->hash) << "leaf " << i;
  }
  EXPECT_EQ(m.root(), fresh.root());
  EXPECT_EQ(m.files(), fresh.files());
  EXPECT_EQ(m.bytes(), fresh.bytes());
  auto it = fresh.begin();
  for (const Entry& e : m) EXPECT_EQ(e.path, (it++)->path);
}

// Leaves cut by content: however a manifest got to its entries (built at
// once, or edited entry by entry and subtree by subtree, inside runs that
// fill leaves to the cap too), it is cut the same way, so the primary's
// and the backup's roots agree.
TEST(ManifestTest, EditsCutLeavesAsBuildingFromScratchDoes) {
  std::mt19937 rng(7);
  std::map<std::string, Entry> truth;
  auto add = [&](Entry e) { truth[e.path] = e; };
  for (int dir = 0; dir < 20; ++dir) {
    std::string d = "dev" + std::to_string(dir);
    add(Dir(d));
    add(File(d + ".json", d));  // sorts between "devN" and "devN/..."
    for (int f = 0; f < 150; ++f) add(File(d + "/f" + std::to_string(f), std::to_string(f)));
  }
  add(Dir("run"));
  std::vector<std::string> run = PathsThatDoNotCut("run/", 700);
  for (const std::string& p : run) add(File(p, p));
  std::vector<Entry> all;
  for (const auto& [path, e] : truth) all.push_back(e);
  Manifest m(std::move(all));
  size_t capped = 0;
  for (const auto& leaf : m.leaves()) capped += leaf->entries.size() == Manifest::kMaxLeaf;
  ASSERT_GE(capped, 2u) << "the run fills leaves to the cap";
  ExpectCutAsFromScratch(m, truth);

  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  for (int round = 0; round < 400; ++round) {
    switch (rng() % 4) {
      case 0: {  // a file changes or appears, in a device dir or in the run
        std::string p = rng() % 2 ? "dev" + std::to_string(rng() % 20) + "/f" + std::to_string(rng() % 200)
                                  : pick(run) + (rng() % 2 ? "" : "b");
        Entry e = File(p, "v" + std::to_string(round), round);
        add(e);
        m.Put(e);
        break;
      }
      case 1: {  // a file goes
        auto it = truth.begin();
        std::advance(it, rng() % truth.size());
        if (it->second.type == EntryType::kDir) break;
        m.Erase(it->first);
        truth.erase(it);
        break;
      }
      default: {  // a directory is read again: some of it gone, some new
        std::string d = rng() % 4 ? "dev" + std::to_string(rng() % 20) : "run";
        auto under = [&](const std::string& p) { return p.compare(0, d.size() + 1, d + "/") == 0; };
        for (auto it = truth.begin(); it != truth.end();) {
          it = under(it->first) && rng() % 5 == 0 ? truth.erase(it) : std::next(it);
        }
        for (int k = 0; k < 3; ++k) add(File(d + "/n" + std::to_string(rng() % 1000), "n", round));
        std::vector<Entry> fresh;
        for (const auto& [path, e] : truth) {
          if (path == d || under(path)) fresh.push_back(e);
        }
        std::shuffle(fresh.begin(), fresh.end(), rng);
        m.ReplaceSubtree(d, std::move(fresh));
        break;
      }
    }
    if (round % 20 == 0) ExpectCutAsFromScratch(m, truth);
  }
  ExpectCutAsFromScratch(m, truth);
}

TEST(ManifestTest, ReplacingASubtreeKeepsSiblingsThatSortInsideIt) {
  Manifest m = {Dir("a"), File("a.b", "1"), File("a/c", "2"), File("a/d", "3"), File("a0", "4")};
  m.ReplaceSubtree("a", {Dir("a"), File("a/e", "5"), File("elsewhere", "ignored")});
  std::vector<std::string> paths;
  for (const Entry& e : m) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a.b", "a/e", "a0"}));
  EXPECT_TRUE(m.HasChildren("a"));
  EXPECT_FALSE(m.HasChildren("a.b"));
  m.ReplaceSubtree("a", {});
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.Find("a"), nullptr);
  EXPECT_NE(m.Find("a0"), nullptr);
}

// A copy shares its leaves; after one edit only the leaves around it
// differ, and only the edited path is reported.
TEST(ManifestTest, ACopyEditedOnceSharesAllButTheLeavesAroundTheEdit) {
  std::vector<Entry> all;
  for (int i = 0; i < 20000; ++i) all.push_back(File("d/" + std::to_string(i), "x"));
  Manifest a(std::move(all));
  Manifest b = a;
  b.Put(File("d/12345", "changed"));
  size_t shared = 0;
  for (size_t i = 0; i < a.leaves().size() && i < b.leaves().size(); ++i) {
    shared += a.leaves()[i] == b.leaves()[i];
  }
  EXPECT_EQ(shared + 1, a.leaves().size());
  EXPECT_GT(a.leaves().size(), 100u);
  std::vector<std::string> seen;
  VisitDifferences(a, b, [&](const Entry* x, const Entry* y) {
    ASSERT_TRUE(x && y);
    seen.push_back(x->path);
  });
  EXPECT_EQ(seen, std::vector<std::string>{"d/12345"});
  EXPECT_NE(a.root(), b.root());
  EXPECT_EQ(b.FindContent(7, Sha256Of("changed"))->path, "d/12345");
  EXPECT_EQ(a.FindContent(7, Sha256Of("changed")), nullptr);
}

}  // namespace
}  // namespace hubsync
