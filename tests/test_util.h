// Helpers shared by the tests: temporary directories and tree snapshots.
#ifndef HUBSYNC_TESTS_TEST_UTIL_H_
#define HUBSYNC_TESTS_TEST_UTIL_H_

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

namespace hubsync {
namespace testing {

// A directory under /tmp removed (recursively) on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hubsync-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// `n` bytes of seeded noise: content no chunker finds structure in.
inline std::string RandomBytesString(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

inline void MkdirP(const std::string& path) {
  std::system(("mkdir -p '" + path + "'").c_str());
}

inline void WriteFile(const std::string& path, const std::string& content) {
  size_t slash = path.rfind('/');
  MkdirP(path.substr(0, slash));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// path -> "F:<mode>:<content>" | "D:<mode>" | "L:<target>", skipping the
// staging area. Two trees are equal when their snapshots are.
inline void SnapshotInto(const std::string& root, const std::string& rel,
                         std::map<std::string, std::string>* out) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* de = readdir(d)) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    std::string r = rel.empty() ? name : rel + "/" + name;
    if (r == ".hubsync") continue;
    std::string full = root + "/" + r;
    struct stat st;
    lstat(full.c_str(), &st);
    char mode[8];
    snprintf(mode, sizeof mode, "%o", st.st_mode & 07777);
    if (S_ISDIR(st.st_mode)) {
      (*out)[r] = std::string("D:") + mode;
      SnapshotInto(root, r, out);
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = readlink(full.c_str(), buf, sizeof buf);
      (*out)[r] = "L:" + std::string(buf, n > 0 ? n : 0);
    } else {
      (*out)[r] = std::string("F:") + mode + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                  std::to_string(st.st_mtim.tv_nsec) + ":" + ReadFile(full);
    }
  }
  closedir(d);
}

inline std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> m;
  SnapshotInto(root, "", &m);
  return m;
}

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_TEST_UTIL_H_
