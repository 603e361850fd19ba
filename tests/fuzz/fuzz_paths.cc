// libFuzzer target: path validation and glob matching, the guards every
// received path passes. A path that validates must not escape: no '..'
// segment, no leading '/', no NUL, no staging area.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hubsync/paths.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t split = in.find('\n');
  std::string path = in.substr(0, split);
  std::string pattern = split == std::string::npos ? "**" : in.substr(split + 1);
  if (hubsync::ValidateRelativePath(path).ok()) {
    std::string wrapped = "/" + path + "/";
    if (path.empty() || path[0] == '/' || wrapped.find("/../") != std::string::npos ||
        wrapped.find("/./") != std::string::npos || wrapped.find("//") != std::string::npos ||
        path.find('\0') != std::string::npos) {
      __builtin_trap();
    }
  }
  if (pattern.size() <= 512 && path.size() <= 4096) {
    hubsync::GlobMatch(pattern, path);
    hubsync::PathFilter filter({pattern});
    filter.Excluded(path, false);
    filter.Excluded(path, true);
  }
  return 0;
}
