// A FileSystem wrapper that injects failures: ENOSPC after a byte budget,
// EIO on the Nth mutating call, EIO on the Nth read (Stat, ListDir,
// ReadLink, OpenRead, ReadAt) or on every read from the Nth on. Used to
// prove a failed apply changes nothing and a failed scan is retried.
#ifndef HUBSYNC_TESTS_FAULT_FS_H_
#define HUBSYNC_TESTS_FAULT_FS_H_

#include <memory>
#include <string>

#include "hubsync/filesystem.h"

namespace hubsync {
namespace testing {

class FaultFs : public FileSystem {
 public:
  explicit FaultFs(std::unique_ptr<FileSystem> base) : base_(std::move(base)) {}
  int64_t write_budget = -1;   // bytes Append may still write; -1 unlimited
  int fail_mutation_at = -1;   // the Nth mutating call (0-based) fails with EIO
  int mutations = 0;
  int fail_read_at = -1;     // the Nth read (0-based) fails with EIO
  int fail_reads_from = -1;  // every read from the Nth on fails with EIO
  int reads = 0;

  Result<FileInfo> Stat(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Read("stat " + p));
    return base_->Stat(p);
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Read("list " + p));
    return base_->ListDir(p);
  }
  Result<std::string> ReadLink(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Read("readlink " + p));
    return base_->ReadLink(p);
  }
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Read("open " + p));
    auto f = base_->OpenRead(p);
    if (!f.ok()) return f.status();
    return std::unique_ptr<ReadableFile>(new Readable(std::move(f).value(), this, p));
  }
  Result<std::unique_ptr<WritableFile>> Create(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    auto f = base_->Create(p);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(f).value(), this));
  }
  Status MakeDir(const std::string& p, uint32_t m) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->MakeDir(p, m);
  }
  Status Symlink(const std::string& t, const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Symlink(t, p);
  }
  Status Rename(const std::string& a, const std::string& b) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Rename(a, b);
  }
  Status Remove(const std::string& p) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Remove(p);
  }
  Status RemoveTree(const std::string& p) override { return base_->RemoveTree(p); }
  Status SetAttrs(const std::string& p, EntryType t, uint32_t m, int64_t ns) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->SetAttrs(p, t, m, ns);
  }
  Status SyncDir(const std::string& p) override { return base_->SyncDir(p); }
  Status SyncFile(const std::string& p) override { return base_->SyncFile(p); }
  Status SyncAll() override { return base_->SyncAll(); }
  const std::string& root() const override { return base_->root(); }

 private:
  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, FaultFs* fs) : f_(std::move(f)), fs_(fs) {}
    Status Append(std::string_view d) override {
      if (fs_->write_budget >= 0) {
        if (static_cast<int64_t>(d.size()) > fs_->write_budget) {
          // A short write, then the disk is full.
          f_->Append(d.substr(0, static_cast<size_t>(fs_->write_budget)));
          fs_->write_budget = 0;
          return Status::IoError("write: No space left on device");
        }
        fs_->write_budget -= static_cast<int64_t>(d.size());
      }
      return f_->Append(d);
    }
    Status Sync() override { return f_->Sync(); }
    Status SetAttrs(uint32_t m, int64_t ns) override { return f_->SetAttrs(m, ns); }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<WritableFile> f_;
    FaultFs* fs_;
  };
  class Readable : public ReadableFile {
   public:
    Readable(std::unique_ptr<ReadableFile> f, FaultFs* fs, std::string path)
        : f_(std::move(f)), fs_(fs), path_(std::move(path)) {}
    Result<size_t> ReadAt(uint64_t offset, void* buf, size_t n) override {
      HUBSYNC_RETURN_IF_ERROR(fs_->Read("read " + path_));
      return f_->ReadAt(offset, buf, n);
    }

   private:
    std::unique_ptr<ReadableFile> f_;
    FaultFs* fs_;
    std::string path_;
  };
  Status Read(const std::string& what) {
    int i = reads++;
    if (i == fail_read_at || (fail_reads_from >= 0 && i >= fail_reads_from)) {
      return Status::IoError(what + ": Input/output error");
    }
    return Status::Ok();
  }
  Status Mutate() {
    if (mutations++ == fail_mutation_at) {
      return Status::IoError("injected: Input/output error");
    }
    return Status::Ok();
  }
  std::unique_ptr<FileSystem> base_;
};

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_FAULT_FS_H_
