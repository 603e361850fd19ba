// Pure path rules: which relative paths are legal in a manifest or delta, and
// which are excluded by glob patterns. No I/O.
#ifndef HUBSYNC_PATHS_H_
#define HUBSYNC_PATHS_H_

#include <string>
#include <vector>

#include "hubsync/status.h"

namespace hubsync {

// The staging area inside data_dir; always excluded, never replicated.
inline constexpr char kStagingDirName[] = ".hubsync";

// A legal replicated path is relative, '/'-separated and normalised: no empty,
// "." or ".." segment, no NUL, no leading or trailing '/', at most 4096 bytes
// with segments of at most 255, and not inside the staging area. Anything else
// is InvalidArgument naming what is wrong (without echoing the path).
Status ValidateRelativePath(const std::string& path);

// Glob match of one pattern against a whole relative path.
//   *   any run of characters within one segment
//   ?   one character other than '/'
//   **  as a whole segment: zero or more segments
// A pattern without '/' matches the last segment at any depth (like
// gitignore). A trailing '/' restricts the pattern to directories.
bool GlobMatch(const std::string& pattern, const std::string& path);

// A set of exclusion patterns. A path is excluded when a pattern matches it
// or any of its parent directories, so excluding a directory excludes its
// whole subtree. The staging area is always excluded.
class PathFilter {
 public:
  PathFilter() = default;
  explicit PathFilter(std::vector<std::string> patterns);
  bool Excluded(const std::string& path, bool is_dir) const;
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  bool MatchesItself(const std::string& path, bool is_dir) const;
  std::vector<std::string> patterns_;
};

}  // namespace hubsync

#endif  // HUBSYNC_PATHS_H_
