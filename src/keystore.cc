#include "hubsync/keystore.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>

#include "file_util.h"
#include "hubsync/config.h"

namespace hubsync {
namespace {

constexpr char kKeyMagic[] = "hubsync-key v1";

Result<std::vector<KeyEntry>> ParseKeyLines(std::istringstream& in) {
  std::vector<KeyEntry> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    int64_t epoch = -1;
    std::string hex;
    ls >> epoch >> hex;
    KeyEntry e;
    if (epoch <= 0 || epoch > UINT32_MAX || !FromHex(hex, e.key.data(), e.key.size())) {
      return Status::Corruption("malformed key line");
    }
    e.epoch = static_cast<uint32_t>(epoch);
    out.push_back(e);
  }
  return out;
}

}  // namespace

KeyStore::KeyStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}

std::string KeyStore::Path(const std::string& backup) const {
  return state_dir_ + "/keys/" + backup + ".key";
}

Result<std::vector<KeyEntry>> KeyStore::Load(const std::string& backup) const {
  if (!IsValidId(backup)) return Status::InvalidArgument("bad backup id");
  auto text = ReadSmallFile(Path(backup));
  if (!text.ok()) return text.status();
  std::istringstream in(*text);
  std::string magic;
  std::getline(in, magic);
  if (magic != kKeyMagic) return Status::Corruption("key file " + Path(backup) + ": bad header");
  auto entries = ParseKeyLines(in);
  if (!entries.ok()) return Status::Corruption("key file " + Path(backup) + ": malformed");
  if (entries->empty()) return Status::NotFound("no key for " + backup);
  return entries;
}

Status KeyStore::Put(const std::string& backup, const KeyEntry& entry) {
  if (!IsValidId(backup)) return Status::InvalidArgument("bad backup id");
  HUBSYNC_RETURN_IF_ERROR(MakeDirs(state_dir_ + "/keys", 0700));
  std::vector<KeyEntry> entries;
  auto old = Load(backup);
  if (old.ok()) entries = *old;
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [&](const KeyEntry& e) { return e.epoch == entry.epoch; }),
                entries.end());
  entries.push_back(entry);
  std::sort(entries.begin(), entries.end(),
            [](const KeyEntry& a, const KeyEntry& b) { return a.epoch < b.epoch; });
  if (entries.size() > 2) entries.erase(entries.begin(), entries.end() - 2);
  std::string text = std::string(kKeyMagic) + "\n";
  for (const auto& e : entries) {
    text += std::to_string(e.epoch) + " " + ToHex(e.key.data(), e.key.size()) + "\n";
  }
  return WriteFileAtomic(Path(backup), text, 0600);
}

Status KeyStore::Retire(const std::string& backup, uint32_t epoch) {
  auto entries = Load(backup);
  if (!entries.ok()) return entries.status();
  std::string text = std::string(kKeyMagic) + "\n";
  for (const auto& e : *entries) {
    if (e.epoch >= epoch) text += std::to_string(e.epoch) + " " + ToHex(e.key.data(), e.key.size()) + "\n";
  }
  return WriteFileAtomic(Path(backup), text, 0600);
}

Status KeyStore::Remove(const std::string& backup) {
  if (unlink(Path(backup).c_str()) != 0 && errno != ENOENT) {
    return Status::IoError("remove key: " + ErrnoText(errno));
  }
  return SyncDir(state_dir_ + "/keys");
}

std::vector<std::string> KeyStore::List() const {
  std::vector<std::string> ids;
  DIR* d = opendir((state_dir_ + "/keys").c_str());
  if (!d) return ids;
  while (struct dirent* de = readdir(d)) {
    std::string name = de->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".key") == 0) {
      std::string id = name.substr(0, name.size() - 4);
      if (IsValidId(id)) ids.push_back(id);
    }
  }
  closedir(d);
  return ids;
}

std::string KeyStore::Export(const std::string& home, const std::string& backup,
                             const KeyEntry& e) {
  return std::string(kKeyMagic) + "\nhome " + home + "\nbackup " + backup + "\n" +
         std::to_string(e.epoch) + " " + ToHex(e.key.data(), e.key.size()) + "\n";
}

Result<KeyEntry> KeyStore::Import(const std::string& text, const std::string& home,
                                  const std::string& backup) {
  std::istringstream in(text);
  std::string magic, home_line, backup_line;
  std::getline(in, magic);
  std::getline(in, home_line);
  std::getline(in, backup_line);
  if (magic != kKeyMagic) return Status::InvalidArgument("not a hubsync key file");
  if (home_line != "home " + home) return Status::InvalidArgument("key is for another home");
  if (backup_line != "backup " + backup) {
    return Status::InvalidArgument("key is for another backup (" + backup_line.substr(7) + ")");
  }
  auto entries = ParseKeyLines(in);
  if (!entries.ok() || entries->size() != 1) return Status::InvalidArgument("malformed key file");
  return (*entries)[0];
}

// ---- counters -------------------------------------------------------------

Result<TxCounter> TxCounter::Open(const std::string& path) {
  size_t slash = path.rfind('/');
  HUBSYNC_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0700));
  TxCounter c(path);
  auto text = ReadSmallFile(path);
  if (text.ok()) {
    try {
      c.next_ = std::stoull(*text);
    } catch (...) {
      return Status::Corruption("counter file " + path + " is malformed");
    }
  } else if (text.status().code() != Status::Code::kNotFound) {
    return text.status();
  }
  c.reserved_ = c.next_;  // nothing reserved in this process yet
  return c;
}

Result<uint64_t> TxCounter::Next() {
  if (next_ >= reserved_) {
    uint64_t mark = next_ + kBlock;
    HUBSYNC_RETURN_IF_ERROR(WriteFileAtomic(path_, std::to_string(mark) + "\n", 0600));
    reserved_ = mark;
  }
  return next_++;
}

Result<RxCounter> RxCounter::Open(const std::string& path) {
  size_t slash = path.rfind('/');
  HUBSYNC_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0700));
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::IoError("open " + path + ": " + ErrnoText(errno));
  uint8_t buf[8] = {};
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  uint64_t last = 0;
  if (n == 8) {
    for (int i = 0; i < 8; ++i) last = last << 8 | buf[i];
  } else if (n != 0) {
    close(fd);
    return Status::Corruption("counter file " + path + " is malformed");
  }
  return RxCounter(path, fd, last);
}

RxCounter::RxCounter(RxCounter&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), last_(o.last_) {
  o.fd_ = -1;
}
RxCounter& RxCounter::operator=(RxCounter&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    last_ = o.last_;
    o.fd_ = -1;
  }
  return *this;
}
RxCounter::~RxCounter() {
  if (fd_ >= 0) close(fd_);
}

Status RxCounter::Accept(uint64_t counter) {
  if (counter <= last_) return Status::Rejected("replayed or reordered message");
  uint8_t buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<uint8_t>(counter >> (56 - 8 * i));
  if (pwrite(fd_, buf, sizeof buf, 0) != 8) {
    return Status::IoError("write " + path_ + ": " + ErrnoText(errno));
  }
  last_ = counter;
  return Status::Ok();
}

Status RxCounter::Sync() {
  if (fdatasync(fd_) != 0) return Status::IoError("fdatasync " + path_ + ": " + ErrnoText(errno));
  return Status::Ok();
}

}  // namespace hubsync
