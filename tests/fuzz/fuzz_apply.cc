// libFuzzer target: the backup's applier fed decoded records, as a primary
// holding the key (the worst case) could send them, on a real directory
// that holds a symlink pointing outside it. Whatever the records say,
// nothing outside data_dir may change: the canary beside it keeps its
// content and mode, and nothing else appears there.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "hubsync/applier.h"
#include "hubsync/filesystem.h"
#include "hubsync/wire.h"

namespace {

std::string base_dir, data_dir, outside_dir;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d)) n += e->d_name[0] != '.' || e->d_name[1] > '.';
    closedir(d);
  }
  return n;
}

void Reset() {
  std::system(("rm -rf '" + data_dir + "' && mkdir -p '" + data_dir + "/dev'").c_str());
  WriteFile(data_dir + "/dev/lamp.json", "on");
  WriteFile(data_dir + "/a", "a");
  symlink(outside_dir.c_str(), (data_dir + "/out").c_str());
  symlink((outside_dir + "/canary").c_str(), (data_dir + "/canary-link").c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/hubsync-fuzz-apply-XXXXXX";
  base_dir = mkdtemp(tmpl);
  data_dir = base_dir + "/data";
  outside_dir = base_dir + "/outside";
  mkdir(outside_dir.c_str(), 0700);
  WriteFile(outside_dir + "/canary", "canary");
  chmod((outside_dir + "/canary").c_str(), 0600);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<hubsync::DeltaRecord> records;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!hubsync::DecodeRecords(in, &records).ok()) return 0;
  Reset();
  auto fs = hubsync::NewPosixFileSystem(data_dir);
  hubsync::PathFilter filter({"cache/**"});
  hubsync::Applier a(fs.get(), &filter);
  if (!a.Recover().ok() || !a.Begin(1).ok()) __builtin_trap();
  hubsync::Status s;
  for (const auto& r : records) {
    s = a.Record(r);
    if (!s.ok()) break;
  }
  if (s.ok()) s = a.Commit();
  if (!s.ok()) a.Abort();
  struct stat st;
  if (stat((outside_dir + "/canary").c_str(), &st) != 0 || (st.st_mode & 07777) != 0600 ||
      st.st_size != 6 || CountEntries(outside_dir) != 1) {
    __builtin_trap();
  }
  return 0;
}
