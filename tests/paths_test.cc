#include "hubsync/paths.h"

#include <gtest/gtest.h>

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
  // timeout; the memoised one takes milliseconds.)
  EXPECT_FALSE(GlobMatch(pattern, path));
  EXPECT_TRUE(GlobMatch(pattern, path.substr(0, path.size() - 1) + "z"));
}

}  // namespace
}  // namespace hubsync
