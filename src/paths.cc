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

// `failed` remembers the (pi, si) states already known not to match, so a
// pattern with several "**" (e.g. "**/*/**/*/**") costs at most
// O(pattern segments x path segments^2) instead of exponential time (found
// by fuzz_paths: a hostile exclusion policy could stall the primary).
bool MatchSegments(const std::vector<std::string>& pat, size_t pi,
                   const std::vector<std::string>& path, size_t si, std::vector<char>* failed) {
  const size_t start_pi = pi, start_si = si;
  char& known = (*failed)[start_pi * (path.size() + 1) + start_si];
  if (known) return false;
  while (pi < pat.size()) {
    if (pat[pi] == "**") {
      // Collapse consecutive "**" and try every split.
      while (pi + 1 < pat.size() && pat[pi + 1] == "**") ++pi;
      if (pi + 1 == pat.size()) return true;
      for (size_t k = si; k <= path.size(); ++k) {
        if (MatchSegments(pat, pi + 1, path, k, failed)) return true;
      }
      known = 1;
      return false;
    }
    if (si >= path.size() || !MatchSegment(pat[pi].c_str(), path[si].c_str())) {
      known = 1;
      return false;
    }
    ++pi;
    ++si;
  }
  if (si == path.size()) return true;
  known = 1;
  return false;
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
  std::vector<std::string> pat_segments = Split(pat);
  std::vector<char> failed((pat_segments.size() + 1) * (ps.size() + 1), 0);
  return MatchSegments(pat_segments, 0, ps, 0, &failed);
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
