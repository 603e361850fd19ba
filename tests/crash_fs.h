// A FileSystem in memory that knows what a power cut would keep (issue 9):
// the crash simulation behind crash_test.cc, in the spirit of ALICE.
//
// Every object is an inode; a directory maps names to inode numbers. Each
// mutating call changes the live tree at once and is recorded as one pending
// operation until a durability barrier covers it:
//   WritableFile::Sync, SyncFile(f)  that file's writes and attributes
//   SyncDir(d)          every operation that changed d's entries (a rename
//                       changes two directories and persists whole when
//                       either is synced, as journaling filesystems do) and
//                       d's own attributes
//   SyncAll             everything
// Barriers and mutating calls are both counted as operations. With
// cut_at = N the Nth operation (0-based) and every call after it fail with
// Aborted("power cut"), as if power failed just before it; with fail_at = N
// the Nth operation alone fails with fail_with (EIO, ENOSPC) and changes
// nothing. CutPower(keep)
// then rebuilds the live tree from what was durable plus the pending
// operations `keep` selects, applied in order, each atomically (one write's
// bytes, one rename). crash_test.cc keeps none (the strict model), all (a
// process crash), and what journaling filesystems may leave: metadata
// operations persisted in order up to some point, with file content written
// since the last barrier kept or lost independently of them.
//
// Thread rule: one thread.
#ifndef HUBSYNC_TESTS_CRASH_FS_H_
#define HUBSYNC_TESTS_CRASH_FS_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hubsync/filesystem.h"

namespace hubsync {
namespace testing {

class CrashFs : public FileSystem {
 public:
  CrashFs() {
    Inode root;
    root.type = EntryType::kDir;
    root.mode = 0755;
    live_.inodes[kRoot] = root;
    durable_ = live_;
  }
  CrashFs(const CrashFs&) = default;  // a copy starts from the same trees

  int cut_at = -1;   // the operation index power fails at; -1 never
  int fail_at = -1;  // the operation index that fails (once) with fail_with
  Status fail_with = Status::IoError("Input/output error");
  int ops() const { return ops_; }
  size_t pending() const { return pending_.size(); }
  // Whether pending operation i writes file content (else it changes names
  // or attributes: metadata).
  bool pending_is_data(size_t i) const { return pending_[i].kind == Op::kWrite; }
  bool powered() const { return !off_; }

  // Rebuilds the live tree after a power cut (or at any time) from what is
  // durable plus the pending operations keep(i) selects; the result is all
  // durable, and the machine is powered again with no cut armed.
  void CutPower(const std::function<bool(size_t)>& keep) {
    State s = durable_;
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (keep(i)) Persist(pending_[i], &s);
    }
    live_ = s;
    durable_ = s;
    pending_.clear();
    off_ = false;
    cut_at = -1;
    ops_ = 0;
  }

  // ---- FileSystem ----
  Result<FileInfo> Stat(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Powered());
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    return Info(*ino);
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Powered());
    auto ino = LookupDir(path);
    if (!ino.ok()) return ino.status();
    std::vector<DirEntry> out;
    for (const auto& [name, child] : live_.inodes[*ino].entries) out.push_back({name, Info(child)});
    return out;
  }
  Result<std::string> ReadLink(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Powered());
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    if (live_.inodes[*ino].type != EntryType::kSymlink) return Status::IoError("readlink: not a link");
    return live_.inodes[*ino].data;
  }
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Powered());
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    if (live_.inodes[*ino].type != EntryType::kFile) return Status::Rejected("open: not a regular file");
    return std::unique_ptr<ReadableFile>(new Readable(this, live_.inodes[*ino].data));
  }
  Result<std::unique_ptr<WritableFile>> Create(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    std::string leaf;
    auto dir = LookupParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    if (live_.inodes[*dir].entries.count(leaf)) return Status::IoError("create: File exists");
    uint64_t ino = NewInode(EntryType::kFile, 0600);
    Link(*dir, leaf, ino);
    return std::unique_ptr<WritableFile>(new Writable(this, ino));
  }
  Status MakeDir(const std::string& path, uint32_t mode) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    std::string leaf;
    auto dir = LookupParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    auto it = live_.inodes[*dir].entries.find(leaf);
    uint64_t ino;
    if (it != live_.inodes[*dir].entries.end()) {
      ino = it->second;
      if (live_.inodes[ino].type != EntryType::kDir) {
        return Status::IoError("mkdir: exists and is not a directory");
      }
    } else {
      ino = NewInode(EntryType::kDir, 0700);
      Link(*dir, leaf, ino);
    }
    SetAttrsOf(ino, mode & kReplicatedModeBits, live_.inodes[ino].mtime_ns);
    return Status::Ok();
  }
  Status Symlink(const std::string& target, const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    std::string leaf;
    auto dir = LookupParent(path, &leaf);
    if (!dir.ok()) return dir.status();
    if (live_.inodes[*dir].entries.count(leaf)) return Status::IoError("symlink: File exists");
    uint64_t ino = NewInode(EntryType::kSymlink, 0777);
    live_.inodes[ino].data = target;
    created_[ino].data = target;  // a link's target is part of its creation
    Link(*dir, leaf, ino);
    return Status::Ok();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    std::string from_leaf, to_leaf;
    auto from_dir = LookupParent(from, &from_leaf);
    if (!from_dir.ok()) return from_dir.status();
    auto to_dir = LookupParent(to, &to_leaf);
    if (!to_dir.ok()) return to_dir.status();
    auto& src_entries = live_.inodes[*from_dir].entries;
    auto src = src_entries.find(from_leaf);
    if (src == src_entries.end()) return Status::NotFound("rename: No such file or directory");
    uint64_t ino = src->second;
    auto& dst_entries = live_.inodes[*to_dir].entries;
    auto dst = dst_entries.find(to_leaf);
    if (dst != dst_entries.end()) {
      if (dst->second == ino) return Status::Ok();
      const Inode& old = live_.inodes[dst->second];
      bool src_dir = live_.inodes[ino].type == EntryType::kDir;
      if (old.type == EntryType::kDir && (!src_dir || !old.entries.empty())) {
        return Status::IoError("rename: Is a directory or not empty");
      }
      if (src_dir && old.type != EntryType::kDir) return Status::Rejected("rename: Not a directory");
    }
    Op op;
    op.kind = Op::kEntries;
    op.edits = {{*from_dir, from_leaf, 0}, {*to_dir, to_leaf, ino}};
    Record(std::move(op));
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    std::string leaf;
    auto dir = LookupParent(path, &leaf);
    if (!dir.ok()) return dir.status().code() == Status::Code::kNotFound ? Status::Ok() : dir.status();
    auto it = live_.inodes[*dir].entries.find(leaf);
    if (it == live_.inodes[*dir].entries.end()) return Status::Ok();
    const Inode& victim = live_.inodes[it->second];
    if (victim.type == EntryType::kDir && !victim.entries.empty()) {
      return Status::IoError("remove: Directory not empty");
    }
    Op op;
    op.kind = Op::kEntries;
    op.edits = {{*dir, leaf, 0}};
    Record(std::move(op));
    return Status::Ok();
  }
  Status RemoveTree(const std::string& path) override { return RemoveTreeVia(this, path); }
  Status SetAttrs(const std::string& path, EntryType type, uint32_t mode,
                  int64_t mtime_ns) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    Inode& n = live_.inodes[*ino];
    if (n.type != type) return Status::Rejected("setattrs: not the expected kind");
    SetAttrsOf(*ino, type == EntryType::kSymlink ? n.mode : (mode & kReplicatedModeBits),
               type == EntryType::kDir ? n.mtime_ns : mtime_ns);
    return Status::Ok();
  }
  Status SyncDir(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    auto ino = LookupDir(path);
    if (!ino.ok()) return ino.status();
    Barrier([&](const Op& op) {
      if (op.kind == Op::kEntries) {
        return std::any_of(op.edits.begin(), op.edits.end(),
                           [&](const Edit& e) { return e.dir == *ino; });
      }
      return op.kind == Op::kAttrs && op.ino == *ino;
    });
    return Status::Ok();
  }
  Status SyncFile(const std::string& path) override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    if (live_.inodes[*ino].type != EntryType::kFile) return Status::Rejected("not a regular file");
    Barrier([&](const Op& op) { return op.kind != Op::kEntries && op.ino == *ino; });
    return Status::Ok();
  }
  Status SyncAll() override {
    HUBSYNC_RETURN_IF_ERROR(Operation());
    Barrier([](const Op&) { return true; });
    return Status::Ok();
  }
  const std::string& root() const override { return root_; }

 private:
  static constexpr uint64_t kRoot = 1;
  struct Inode {
    EntryType type = EntryType::kFile;
    uint32_t mode = 0600;
    int64_t mtime_ns = 0;
    std::string data;                          // file content, link target
    std::map<std::string, uint64_t> entries;   // a directory's
  };
  struct State {
    std::map<uint64_t, Inode> inodes;
  };
  struct Edit {
    uint64_t dir;
    std::string name;
    uint64_t target;  // 0: the name goes away
  };
  struct Op {
    enum Kind { kEntries, kWrite, kAttrs } kind = kEntries;
    std::vector<Edit> edits;  // kEntries, applied together
    uint64_t ino = 0;         // kWrite, kAttrs
    uint64_t offset = 0;      // kWrite
    std::string bytes;        // kWrite
    uint32_t mode = 0;        // kAttrs
    int64_t mtime_ns = 0;     // kAttrs
  };

  class Readable : public ReadableFile {
   public:
    Readable(CrashFs* fs, std::string data) : fs_(fs), data_(std::move(data)) {}
    Result<size_t> ReadAt(uint64_t offset, void* buf, size_t n) override {
      HUBSYNC_RETURN_IF_ERROR(fs_->Powered());
      if (offset >= data_.size()) return size_t{0};
      size_t k = std::min<size_t>(n, data_.size() - offset);
      std::copy_n(data_.data() + offset, k, static_cast<char*>(buf));
      return k;
    }

   private:
    CrashFs* fs_;
    std::string data_;
  };

  class Writable : public WritableFile {
   public:
    Writable(CrashFs* fs, uint64_t ino) : fs_(fs), ino_(ino) {}
    Status Append(std::string_view data) override {
      HUBSYNC_RETURN_IF_ERROR(fs_->Operation());
      Op op;
      op.kind = Op::kWrite;
      op.ino = ino_;
      op.offset = fs_->live_.inodes[ino_].data.size();
      op.bytes.assign(data);
      fs_->Record(std::move(op));
      return Status::Ok();
    }
    Status Sync() override {
      HUBSYNC_RETURN_IF_ERROR(fs_->Operation());
      fs_->Barrier([&](const Op& op) { return op.kind != Op::kEntries && op.ino == ino_; });
      return Status::Ok();
    }
    Status SetAttrs(uint32_t mode, int64_t mtime_ns) override {
      HUBSYNC_RETURN_IF_ERROR(fs_->Operation());
      fs_->SetAttrsOf(ino_, mode & kReplicatedModeBits, mtime_ns);
      return Status::Ok();
    }
    Status Close() override { return fs_->Powered(); }

   private:
    CrashFs* fs_;
    uint64_t ino_;
  };

  Status Powered() const { return off_ ? Status::Aborted("power cut") : Status::Ok(); }
  // Counts one operation; the one at cut_at (and all after) never happen.
  Status Operation() {
    HUBSYNC_RETURN_IF_ERROR(Powered());
    if (cut_at >= 0 && ops_ >= cut_at) {
      off_ = true;
      return Powered();
    }
    if (ops_++ == fail_at) return fail_with;
    return Status::Ok();
  }

  uint64_t NewInode(EntryType type, uint32_t mode) {
    uint64_t ino = next_ino_++;
    Inode n;
    n.type = type;
    n.mode = mode;
    created_[ino] = n;
    live_.inodes[ino] = n;
    return ino;
  }
  void Link(uint64_t dir, const std::string& name, uint64_t ino) {
    Op op;
    op.kind = Op::kEntries;
    op.edits = {{dir, name, ino}};
    Record(std::move(op));
  }
  void SetAttrsOf(uint64_t ino, uint32_t mode, int64_t mtime_ns) {
    Op op;
    op.kind = Op::kAttrs;
    op.ino = ino;
    op.mode = mode;
    op.mtime_ns = mtime_ns;
    Record(std::move(op));
  }
  void Record(Op op) {
    Apply(op, &live_);
    pending_.push_back(std::move(op));
  }
  // Makes the pending operations `covered` selects durable, in order.
  void Barrier(const std::function<bool(const Op&)>& covered) {
    std::vector<Op> rest;
    for (Op& op : pending_) {
      if (covered(op)) {
        Persist(op, &durable_);
      } else {
        rest.push_back(std::move(op));
      }
    }
    pending_.swap(rest);
  }
  // An inode an operation names but `s` has never seen comes into being as
  // it was created (empty); unreachable ones are simply never listed.
  Inode& Ensure(uint64_t ino, State* s) {
    auto it = s->inodes.find(ino);
    if (it != s->inodes.end()) return it->second;
    return s->inodes[ino] = created_.at(ino);
  }
  void Persist(const Op& op, State* s) { Apply(op, s); }
  void Apply(const Op& op, State* s) {
    switch (op.kind) {
      case Op::kEntries:
        for (const Edit& e : op.edits) {
          Inode& dir = Ensure(e.dir, s);
          if (e.target == 0) {
            dir.entries.erase(e.name);
          } else {
            Ensure(e.target, s);
            s->inodes[e.dir].entries[e.name] = e.target;
          }
        }
        break;
      case Op::kWrite: {
        std::string& data = Ensure(op.ino, s).data;
        if (data.size() < op.offset + op.bytes.size()) data.resize(op.offset + op.bytes.size(), '\0');
        data.replace(op.offset, op.bytes.size(), op.bytes);
        break;
      }
      case Op::kAttrs: {
        Inode& n = Ensure(op.ino, s);
        n.mode = op.mode;
        n.mtime_ns = op.mtime_ns;
        break;
      }
    }
  }

  FileInfo Info(uint64_t ino) {
    const Inode& n = live_.inodes[ino];
    FileInfo fi;
    fi.type = n.type;
    fi.mode = n.mode;
    fi.mtime_ns = n.mtime_ns;
    fi.ctime_ns = n.mtime_ns;
    fi.size = n.type == EntryType::kFile ? n.data.size() : 0;
    fi.inode = ino;
    return fi;
  }
  // Resolves `path` ("" is the root) in the live tree without following a
  // symlink anywhere: a link or a file on the way is Rejected.
  Result<uint64_t> Lookup(const std::string& path) {
    uint64_t cur = kRoot;
    if (path.empty()) return cur;
    size_t start = 0;
    while (true) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash == std::string::npos ? std::string::npos
                                                                       : slash - start);
      if (part.empty() || part == "." || part == "..") return Status::Rejected("bad path");
      const Inode& dir = live_.inodes[cur];
      if (dir.type != EntryType::kDir) return Status::Rejected("not a directory on the way");
      auto it = dir.entries.find(part);
      if (it == dir.entries.end()) return Status::NotFound(path + ": No such file or directory");
      cur = it->second;
      if (slash == std::string::npos) return cur;
      start = slash + 1;
    }
  }
  Result<uint64_t> LookupDir(const std::string& path) {
    auto ino = Lookup(path);
    if (!ino.ok()) return ino.status();
    if (live_.inodes[*ino].type != EntryType::kDir) return Status::Rejected("not a directory");
    return ino;
  }
  Result<uint64_t> LookupParent(const std::string& path, std::string* leaf) {
    size_t slash = path.rfind('/');
    *leaf = slash == std::string::npos ? path : path.substr(slash + 1);
    if (leaf->empty() || *leaf == "." || *leaf == "..") return Status::Rejected("bad path");
    return LookupDir(slash == std::string::npos ? "" : path.substr(0, slash));
  }

  std::string root_ = "/crashfs";
  State live_, durable_;
  std::map<uint64_t, Inode> created_;  // each inode as it was made
  std::vector<Op> pending_;
  uint64_t next_ino_ = kRoot + 1;
  int ops_ = 0;
  bool off_ = false;
};

// What replication promises to keep of a tree, read through any FileSystem:
// path -> kind, permission bits and content ("F 644 <bytes>", "D 755",
// "L <target>"), without the staging area. mtimes are left out: a
// directory's changes whenever its entries do.
inline Status TreeOf(FileSystem* fs, const std::string& dir, std::map<std::string, std::string>* out) {
  auto list = fs->ListDir(dir);
  if (!list.ok()) return list.status();
  for (const DirEntry& e : *list) {
    std::string path = dir.empty() ? e.name : dir + "/" + e.name;
    if (path == ".hubsync") continue;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", e.info.mode);
    switch (e.info.type) {
      case EntryType::kDir:
        (*out)[path] = std::string("D ") + mode;
        HUBSYNC_RETURN_IF_ERROR(TreeOf(fs, path, out));
        break;
      case EntryType::kSymlink: {
        auto t = fs->ReadLink(path);
        if (!t.ok()) return t.status();
        (*out)[path] = "L " + *t;
        break;
      }
      default: {
        auto f = fs->OpenRead(path);
        if (!f.ok()) return f.status();
        std::string data(e.info.size, '\0');
        auto n = (*f)->ReadAt(0, data.data(), data.size());
        if (!n.ok()) return n.status();
        data.resize(*n);
        (*out)[path] = std::string("F ") + mode + " " + data;
      }
    }
  }
  return Status::Ok();
}

inline std::map<std::string, std::string> TreeOf(FileSystem* fs) {
  std::map<std::string, std::string> out;
  Status s = TreeOf(fs, "", &out);
  if (!s.ok()) out["<error>"] = s.ToString();
  return out;
}

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_CRASH_FS_H_
