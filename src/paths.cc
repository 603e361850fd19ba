#include "hubsync/paths.h"

#include <cstring>

namespace hubsync {
namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

// Matches one segment against a segment pattern with '*' and '?'.
bool MatchSegment(const char* p, const char* s) {
  const char* star_p = nullptr;
  const char* star_s = nullptr;
  while (*s) {
    if (*p == '?' || (*p != '*' && *p == *s)) {
      ++p;
      ++s;
    } else if (*p == '*') {
      star_p = p++;
      star_s = s;
    } else if (star_p) {
      p = star_p + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (*p == '*') ++p;
  return *p == '\0';
}

// Matches path segments against pattern segments where "**" stands for any
// number of segments (zero included) and every other pattern segment for
// exactly one. Greedy with one remembered "**" (the last seen), as
// MatchSegment does with '*' inside a segment: a mismatch after a "**" only
// ever moves that "**" one segment further, so the cost is at most
// O(pattern segments x path segments) whatever the pattern, with no
// allocation (backtracking per "**" was exponential: found by fuzz_paths;
// its memoised fix allocated a table per call on the primary's hot path).
bool MatchSegments(const std::vector<std::string>& pat, const std::vector<std::string>& path) {
  size_t pi = 0, si = 0;
  size_t star_pi = std::string::npos, star_si = 0;
  while (si < path.size()) {
    if (pi < pat.size() && pat[pi] == "**") {
      star_pi = pi++;
      star_si = si;
    } else if (pi < pat.size() && MatchSegment(pat[pi].c_str(), path[si].c_str())) {
      ++pi;
      ++si;
    } else if (star_pi != std::string::npos) {
      pi = star_pi + 1;
      si = ++star_si;
    } else {
      return false;
    }
  }
  while (pi < pat.size() && pat[pi] == "**") ++pi;
  return pi == pat.size();
}

}  // namespace

Status ValidateRelativePath(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("empty path");
  if (path.size() > 4096) return Status::InvalidArgument("path longer than 4096 bytes");
  if (path.find('\0') != std::string::npos) return Status::InvalidArgument("NUL in path");
  if (path.front() == '/') return Status::InvalidArgument("absolute path");
  for (const std::string& seg : Split(path)) {
    if (seg.empty()) return Status::InvalidArgument("empty path segment");
    if (seg == "." || seg == "..") return Status::InvalidArgument("'.' or '..' in path");
    if (seg.size() > 255) return Status::InvalidArgument("path segment longer than 255 bytes");
  }
  if (path == kStagingDirName ||
      path.compare(0, std::strlen(kStagingDirName) + 1, std::string(kStagingDirName) + "/") == 0) {
    return Status::InvalidArgument("path inside the staging area");
  }
  return Status::Ok();
}

bool GlobMatch(const std::string& pattern, const std::string& path) {
  std::string pat = pattern;
  while (pat.size() > 1 && pat.back() == '/') pat.pop_back();
  if (pat.rfind("/", 0) == 0) pat.erase(0, 1);  // "/x" anchors, same as "x/..."
  std::vector<std::string> ps = Split(path);
  if (pattern.find('/') == std::string::npos ||
      (pattern.find('/') == pattern.size() - 1)) {
    // Basename pattern: match the last segment at any depth.
    return MatchSegment(pat.c_str(), ps.back().c_str());
  }
  return MatchSegments(Split(pat), ps);
}

PathFilter::PathFilter(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {}

bool PathFilter::MatchesItself(const std::string& path, bool is_dir) const {
  for (const auto& p : patterns_) {
    if (!p.empty() && p.back() == '/' && !is_dir) continue;
    if (GlobMatch(p, path)) return true;
  }
  return false;
}

bool PathFilter::Excluded(const std::string& path, bool is_dir) const {
  if (path == kStagingDirName || path.rfind(std::string(kStagingDirName) + "/", 0) == 0) {
    return true;
  }
  if (MatchesItself(path, is_dir)) return true;
  // Any parent directory excluded excludes the path.
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (MatchesItself(path.substr(0, slash), true)) return true;
  }
  return false;
}

}  // namespace hubsync
