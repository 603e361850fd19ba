#include "hubsync/paths.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace hubsync {
namespace {

TEST(PathsTest, ValidateRelativePath) {
  const char* good[] = {"a", "a/b", "dir with space/ünïcode.json", "a..b", ".hidden", "x/.y"};
  for (const char* p : good) EXPECT_TRUE(ValidateRelativePath(p).ok()) << p;
  const std::string bad[] = {"",          "/etc/passwd", "a/../b", "..",       "a/..",
                             "./a",       "a//b",        "a/",     "a/./b",    std::string("a\0b", 3),
                             ".hubsync",  ".hubsync/journal",      std::string(300, 'x'),
                             std::string(5000, 'a')};
  for (const auto& p : bad) {
    Status s = ValidateRelativePath(p);
    EXPECT_FALSE(s.ok()) << p;
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  }
}

struct GlobCase {
  const char* pattern;
  const char* path;
  bool match;
};

TEST(PathsTest, GlobMatch) {
  const GlobCase cases[] = {
      {"*.tmp", "a.tmp", true},
      {"*.tmp", "dir/sub/a.tmp", true},  // no slash: any depth
      {"*.tmp", "a.tmpx", false},
      {"a?c", "abc", true},
      {"a?c", "a/c", false},
      {"cache/**", "cache/x", true},
      {"cache/**", "cache/x/y/z", true},
      {"cache/**", "other/cache/x", false},
      {"**/*.tmp", "x.tmp", true},
      {"**/*.tmp", "a/b/x.tmp", true},
      {"db/*-wal", "db/main-wal", true},
      {"db/*-wal", "db/sub/main-wal", false},
      {"a/**/b", "a/b", true},
      {"a/**/b", "a/x/y/b", true},
      {"a/**/b", "a/x/y/c", false},
      {"/top.json", "top.json", true},
      {"*", "anything", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.path), c.match) << c.pattern << " vs " << c.path;
  }
}

TEST(PathsTest, FilterExcludesSubtreesAndStaging) {
  PathFilter f({"cache", "logs/", "**/*.tmp"});
  EXPECT_TRUE(f.Excluded("cache", true));
  EXPECT_TRUE(f.Excluded("cache/a/b.json", false));
  EXPECT_TRUE(f.Excluded("sub/cache", false));  // basename pattern
  EXPECT_TRUE(f.Excluded("logs", true));
  EXPECT_FALSE(f.Excluded("logs", false));  // trailing slash: directories only
  EXPECT_TRUE(f.Excluded("logs/x", false));
  EXPECT_TRUE(f.Excluded("a/b.tmp", false));
  EXPECT_FALSE(f.Excluded("devices/lamp.json", false));
  EXPECT_TRUE(f.Excluded(".hubsync", true));
  EXPECT_TRUE(f.Excluded(".hubsync/staging/1/0", false));
  EXPECT_FALSE(PathFilter().Excluded(".hubsyncx", false));
}

}  // namespace
}  // namespace hubsync

namespace hubsync {
namespace {

// Found by fuzz_paths: several "**" separated by other segments made the
// matcher exponential (a hostile exclusion policy could stall the primary).
TEST(PathsTest, ManyGlobstarsMatchInPolynomialTime) {
  std::string pattern, path;
  for (int i = 0; i < 40; ++i) pattern += "**/*a/";
  pattern += "z";
  for (int i = 0; i < 200; ++i) path += "xa/";
  path += "y";
  // (The exponential matcher does not return from these within CTest's
  // timeout; the greedy one takes microseconds.)
  EXPECT_FALSE(GlobMatch(pattern, path));
  EXPECT_TRUE(GlobMatch(pattern, path.substr(0, path.size() - 1) + "z"));
  // The worst a policy can send: as many "**" as a path has segments.
  std::string many, deep;
  for (int i = 0; i < 1000; ++i) many += "**/a/";
  many += "b";
  for (int i = 0; i < 2000; ++i) deep += "a/";
  deep += "c";
  EXPECT_FALSE(GlobMatch(many, deep));
}

// Tries every split of the path at every "**": exponential, but obviously
// right; the real matcher must agree with it everywhere.
bool ReferenceMatch(const std::vector<std::string>& pat, size_t pi,
                    const std::vector<std::string>& path, size_t si) {
  if (pi == pat.size()) return si == path.size();
  if (pat[pi] == "**") {
    for (size_t k = si; k <= path.size(); ++k) {
      if (ReferenceMatch(pat, pi + 1, path, k)) return true;
    }
    return false;
  }
  if (si == path.size()) return false;
  bool one = pat[pi] == "*" || pat[pi] == path[si] ||
             (pat[pi] == "?" && path[si].size() == 1);
  return one && ReferenceMatch(pat, pi + 1, path, si + 1);
}

TEST(PathsTest, GlobstarsAgreeWithTryingEverySplit) {
  const std::vector<std::string> tokens = {"**", "a", "b", "*"};
  const std::vector<std::string> segs = {"a", "b", "c"};
  size_t checked = 0;
  // Every pattern of 2..5 tokens (with a segment in it, as a pattern with a
  // slash) against every path of 1..5 segments.
  std::function<void(std::vector<std::string>&)> patterns = [&](std::vector<std::string>& pat) {
    if (pat.size() >= 2) {
      std::string p;
      for (const auto& t : pat) p += (p.empty() ? "" : "/") + t;
      std::function<void(std::vector<std::string>&)> paths = [&](std::vector<std::string>& path) {
        if (!path.empty()) {
          std::string s;
          for (const auto& t : path) s += (s.empty() ? "" : "/") + t;
          ASSERT_EQ(GlobMatch(p, s), ReferenceMatch(pat, 0, path, 0)) << p << " vs " << s;
          ++checked;
        }
        if (path.size() == 5) return;
        for (const auto& t : segs) {
          path.push_back(t);
          paths(path);
          path.pop_back();
        }
      };
      std::vector<std::string> path;
      paths(path);
    }
    if (pat.size() == 5) return;
    for (const auto& t : tokens) {
      pat.push_back(t);
      patterns(pat);
      pat.pop_back();
    }
  };
  std::vector<std::string> pat;
  patterns(pat);
  EXPECT_GT(checked, 100000u);
}

}  // namespace
}  // namespace hubsync
