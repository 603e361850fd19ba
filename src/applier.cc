#include "hubsync/applier.h"

#include <algorithm>
#include <map>

#include "hubsync/chunker.h"

namespace hubsync {
namespace {

constexpr char kJournal[] = ".hubsync/journal";
constexpr char kJournalTmp[] = ".hubsync/journal.tmp";
constexpr char kStagingRoot[] = ".hubsync/staging";
constexpr char kJournalMagic[] = "HSJ1";
constexpr size_t kCopyBuffer = 256 * 1024;
constexpr size_t kMaxDirSyncs = 8;  // beyond this, one syncfs is cheaper

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

Result<std::string> ReadAll(FileSystem* fs, const std::string& path) {
  auto f = fs->OpenRead(path);
  if (!f.ok()) return f.status();
  std::string out, buf(65536, '\0');
  while (true) {
    auto n = (*f)->ReadAt(out.size(), buf.data(), buf.size());
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    out.append(buf.data(), *n);
  }
  return out;
}

}  // namespace

struct Applier::OpenFile {
  bool skip = false;  // excluded on this backup: consume records, write nothing
  std::string path;
  std::string staged;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;
  Digest digest{};
  uint64_t written = 0;
  bool reused_local = false;
  std::unique_ptr<WritableFile> out;
  Sha256 hash;
  // The chunk list as the manifest has it (large files), so the backup
  // need not re-read what it just wrote.
  std::unique_ptr<Chunker> chunks;
  std::string blocks;
  // The backup file the last kCopy read from, kept open for the next.
  std::string copy_path;
  std::unique_ptr<ReadableFile> copy_in;

  Status Append(std::string_view data) {
    HUBSYNC_RETURN_IF_ERROR(out->Append(data));
    hash.Update(data);
    written += data.size();
    if (chunks) chunks->Update(data);
    if (chunks && written == size) blocks = chunks->Finish();
    return Status::Ok();
  }
};

Applier::Applier(FileSystem* fs, const PathFilter* filter) : fs_(fs), filter_(filter) {}
Applier::~Applier() = default;

std::string Applier::StagingDir() const {
  return std::string(kStagingRoot) + "/" + std::to_string(transfer_);
}

Status Applier::Recover(Recovery* report) {
  Recovery r;
  HUBSYNC_RETURN_IF_ERROR(fs_->MakeDir(kStagingDirName, 0700));
  auto journal = ReadAll(fs_, kJournal);
  if (journal.ok()) {
    HUBSYNC_RETURN_IF_ERROR(ReplayJournal(*journal, &r.steps));
    r.finished = true;
    r.transfer = transfer_;
  } else if (journal.status().code() != Status::Code::kNotFound) {
    return journal.status();
  }
  journal_pending_ = false;
  if (auto left = fs_->ListDir(kStagingRoot); left.ok()) {
    for (const DirEntry& e : *left) r.discarded += !(r.finished && e.name == std::to_string(r.transfer));
  }
  if (report) *report = r;
  HUBSYNC_RETURN_IF_ERROR(fs_->Remove(kJournalTmp));
  HUBSYNC_RETURN_IF_ERROR(fs_->RemoveTree(kStagingRoot));
  HUBSYNC_RETURN_IF_ERROR(fs_->MakeDir(kStagingRoot, 0700));
  return fs_->SyncDir(kStagingDirName);
}

Status Applier::Begin(uint64_t transfer) {
  if (active_) Abort();
  if (journal_pending_) {
    // A commit failed after its journal was durable: finish it first, so
    // the tree is that delta's new state before another one starts.
    Status s = Recover();
    if (!s.ok()) return Status::IoError("cannot finish the interrupted commit: " + s.message());
  }
  active_ = true;
  retry_plain_ = false;
  transfer_ = transfer;
  next_staged_ = 0;
  steps_.clear();
  written_.clear();
  file_.reset();
  stats_ = ApplyStats{};
  HUBSYNC_RETURN_IF_ERROR(fs_->RemoveTree(StagingDir()));
  return fs_->MakeDir(StagingDir(), 0700);
}

void Applier::Abort() {
  file_.reset();
  steps_.clear();
  // Once the journal is durable its staged files are the delta: they stay
  // for Recover (at the next Begin, or at start) to finish the renames.
  if (active_ && !journal_pending_) fs_->RemoveTree(StagingDir());
  active_ = false;
}

Status Applier::FinishFile() {
  if (!file_) return Status::Ok();
  std::unique_ptr<OpenFile> f = std::move(file_);
  if (f->skip) return Status::Ok();
  if (f->written != f->size || f->hash.Final() != f->digest) {
    retry_plain_ = f->reused_local;
    return Status::Corruption("received file does not match its digest");
  }
  // Made durable together with every other staged file by the one SyncAll
  // in Commit, before the journal is named.
  HUBSYNC_RETURN_IF_ERROR(f->out->SetAttrs(f->mode, f->mtime_ns));
  HUBSYNC_RETURN_IF_ERROR(f->out->Close());
  steps_.push_back({Step::Kind::kRename, f->path, f->staged, 0, 0, 0});
  written_.push_back({f->path, f->digest, std::move(f->blocks)});
  ++stats_.files;
  return Status::Ok();
}

Status Applier::Record(const DeltaRecord& r) {
  if (!active_) return Status::InvalidArgument("record outside a transfer");
  if (r.kind != RecKind::kData && r.kind != RecKind::kCopy) {
    HUBSYNC_RETURN_IF_ERROR(FinishFile());
  }
  auto excluded = [&](bool is_dir) {
    if (!filter_->Excluded(r.path, is_dir)) return false;
    ++stats_.skipped_excluded;
    return true;
  };
  switch (r.kind) {
    case RecKind::kBase:  // the engine's precondition, checked before any record
    case RecKind::kBegin:
    case RecKind::kEnd: return Status::Ok();
    case RecKind::kDelete:
    {
      if (excluded(false) || excluded(true)) return Status::Ok();
      // The step remembers what it deletes: on replay, a path that by then
      // holds the delta's new object of another type must not be deleted.
      auto st = fs_->Stat(r.path);
      if (!st.ok()) {
        bool gone = st.status().code() == Status::Code::kNotFound ||
                    st.status().code() == Status::Code::kRejected;
        return gone ? Status::Ok() : st.status();
      }
      steps_.push_back({Step::Kind::kDelete, r.path, "", static_cast<uint8_t>(st->type), 0, 0});
      ++stats_.deleted;
      return Status::Ok();
    }
    case RecKind::kMkdir:
      if (excluded(true)) return Status::Ok();
      steps_.push_back({Step::Kind::kMkdir, r.path, "", static_cast<uint8_t>(EntryType::kDir),
                        r.mode, 0});
      return Status::Ok();
    case RecKind::kSetAttr:
      if (excluded(r.type == static_cast<uint8_t>(EntryType::kDir))) return Status::Ok();
      steps_.push_back({Step::Kind::kSetAttr, r.path, "", r.type, r.mode, r.mtime_ns});
      return Status::Ok();
    case RecKind::kSymlink: {
      if (excluded(false)) return Status::Ok();
      std::string staged = std::to_string(next_staged_++);
      std::string full = StagingDir() + "/" + staged;
      HUBSYNC_RETURN_IF_ERROR(fs_->Symlink(r.target, full));
      HUBSYNC_RETURN_IF_ERROR(fs_->SetAttrs(full, EntryType::kSymlink, 0, r.mtime_ns));
      steps_.push_back({Step::Kind::kRename, r.path, staged, 0, 0, 0});
      return Status::Ok();
    }
    case RecKind::kFile: {
      file_ = std::make_unique<OpenFile>();
      file_->path = r.path;
      if (excluded(false)) {
        file_->skip = true;
        return Status::Ok();
      }
      file_->staged = std::to_string(next_staged_++);
      file_->mode = r.mode;
      file_->mtime_ns = r.mtime_ns;
      file_->size = r.size;
      file_->digest = r.digest;
      if (r.size >= kBlockDigestMinSize) file_->chunks = std::make_unique<Chunker>(r.size);
      auto out = fs_->Create(StagingDir() + "/" + file_->staged);
      if (!out.ok()) return out.status();
      file_->out = std::move(out).value();
      if (r.source == FileSource::kLocalCopy) {
        file_->reused_local = true;
        auto in = fs_->OpenRead(r.target);
        if (!in.ok()) {
          retry_plain_ = true;
          return Status::Aborted("local copy source is gone");
        }
        std::string buf(kCopyBuffer, '\0');
        while (true) {
          auto n = (*in)->ReadAt(file_->written, buf.data(), buf.size());
          if (!n.ok()) return n.status();
          if (*n == 0) break;
          if (file_->written + *n > file_->size) break;  // verification will fail
          HUBSYNC_RETURN_IF_ERROR(file_->Append(std::string_view(buf.data(), *n)));
        }
      }
      return Status::Ok();
    }
    case RecKind::kData: {
      if (!file_) return Status::Corruption("data outside a file");
      if (file_->skip) return Status::Ok();
      if (r.offset != file_->written || file_->written + r.data.size() > file_->size) {
        return Status::Corruption("file data out of order");
      }
      HUBSYNC_RETURN_IF_ERROR(file_->Append(r.data));
      stats_.bytes += r.data.size();
      return Status::Ok();
    }
    case RecKind::kCopy: {
      if (!file_) return Status::Corruption("copy outside a file");
      if (file_->skip) return Status::Ok();
      if (r.size == 0 || r.size > file_->size - file_->written) {
        return Status::Corruption("copy beyond the end of the file");
      }
      file_->reused_local = true;
      if (!file_->copy_in || file_->copy_path != r.target) {
        file_->copy_in.reset();
        auto in = fs_->OpenRead(r.target);
        if (!in.ok()) {
          retry_plain_ = true;
          return Status::Aborted("copy source is gone");
        }
        file_->copy_in = std::move(in).value();
        file_->copy_path = r.target;
      }
      std::string buf(static_cast<size_t>(std::min<uint64_t>(kCopyBuffer, r.size)), '\0');
      uint64_t done = 0;
      while (done < r.size) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), r.size - done));
        auto n = file_->copy_in->ReadAt(r.offset + done, buf.data(), want);
        if (!n.ok()) return n.status();
        if (*n == 0) {
          retry_plain_ = true;
          return Status::Aborted("copy source is shorter than expected");
        }
        HUBSYNC_RETURN_IF_ERROR(file_->Append(std::string_view(buf.data(), *n)));
        done += *n;
      }
      return Status::Ok();
    }
  }
  return Status::Corruption("unknown record");
}

Status Applier::CheckPostState() {
  std::set<std::string> deleted, made_dirs, made_other;
  for (const Step& s : steps_) {
    if (s.kind == Step::Kind::kDelete) deleted.insert(s.path);
    if (s.kind == Step::Kind::kMkdir) made_dirs.insert(s.path);
    if (s.kind == Step::Kind::kRename) made_other.insert(s.path);
  }
  std::map<std::string, bool> dir_ok;  // ancestor -> is a real directory afterwards
  auto is_dir_after = [&](const std::string& a) -> Result<bool> {
    auto it = dir_ok.find(a);
    if (it != dir_ok.end()) return it->second;
    bool ok;
    if (made_dirs.count(a)) {
      ok = true;
    } else if (made_other.count(a) || deleted.count(a)) {
      ok = false;
    } else {
      auto st = fs_->Stat(a);
      if (st.ok()) {
        ok = st->type == EntryType::kDir;
      } else if (st.status().code() == Status::Code::kNotFound ||
                 st.status().code() == Status::Code::kRejected) {
        ok = false;
      } else {
        return st.status();
      }
    }
    dir_ok[a] = ok;
    return ok;
  };
  // A directory replaced by a file or link must end up empty; entries this
  // backup excludes (never deleted) would make the journal unreplayable.
  for (const Step& s : steps_) {
    if (s.kind != Step::Kind::kDelete || s.type != static_cast<uint8_t>(EntryType::kDir) ||
        !made_other.count(s.path)) {
      continue;
    }
    auto list = fs_->ListDir(s.path);
    if (!list.ok()) return list.status();
    for (const DirEntry& e : *list) {
      if (!deleted.count(s.path + "/" + e.name)) {
        return Status::Rejected("files excluded on this backup block replacing a directory");
      }
    }
  }
  for (const Step& s : steps_) {
    if (s.kind == Step::Kind::kDelete) continue;
    for (size_t slash = s.path.find('/'); slash != std::string::npos;
         slash = s.path.find('/', slash + 1)) {
      auto ok = is_dir_after(s.path.substr(0, slash));
      if (!ok.ok()) return ok.status();
      if (!*ok) return Status::Rejected("a path's parent would not be a directory");
    }
  }
  return Status::Ok();
}

Status Applier::WriteJournal() {
  std::string body;
  WireWriter w(&body);
  w.Raw(kJournalMagic, 4);
  w.U64(transfer_);
  w.U32(static_cast<uint32_t>(steps_.size()));
  for (const Step& s : steps_) {
    w.U8(static_cast<uint8_t>(s.kind));
    w.Str(s.path);
    w.Str(s.staged);
    w.U8(s.type);
    w.U32(s.mode);
    w.U64(static_cast<uint64_t>(s.mtime_ns));
  }
  Digest d = Sha256Of(body);
  body.append(reinterpret_cast<const char*>(d.data()), d.size());
  HUBSYNC_RETURN_IF_ERROR(fs_->Remove(kJournalTmp));
  auto f = fs_->Create(kJournalTmp);
  if (!f.ok()) return f.status();
  HUBSYNC_RETURN_IF_ERROR((*f)->Append(body));
  HUBSYNC_RETURN_IF_ERROR((*f)->Close());
  // One barrier for the staged data, their names and the journal's content;
  // only then may the journal get its name.
  HUBSYNC_RETURN_IF_ERROR(fs_->SyncAll());  // staged data and the journal are durable
  HUBSYNC_RETURN_IF_ERROR(fs_->Rename(kJournalTmp, kJournal));
  return fs_->SyncDir(kStagingDirName);  // the journal is durable: committed
}

Status Applier::ReplayJournal(const std::string& text, size_t* steps_run) {
  if (text.size() < 4 + 8 + 4 + 32 || text.compare(0, 4, kJournalMagic) != 0) {
    return Status::Corruption(std::string(kJournal) + " is damaged");
  }
  std::string_view body(text.data(), text.size() - 32);
  Digest d = Sha256Of(body);
  if (!std::equal(d.begin(), d.end(), reinterpret_cast<const uint8_t*>(text.data()) + body.size())) {
    return Status::Corruption(std::string(kJournal) + " is damaged (checksum mismatch)");
  }
  WireReader r(body.substr(4));
  uint64_t transfer;
  uint32_t n;
  if (!r.U64(&transfer) || !r.U32(&n)) return Status::Corruption(std::string(kJournal) + " is damaged");
  std::vector<Step> steps;
  for (uint32_t i = 0; i < n; ++i) {
    Step s;
    uint8_t kind;
    uint64_t mt;
    if (!r.U8(&kind) || !r.Str(&s.path) || !r.Str(&s.staged) || !r.U8(&s.type) ||
        !r.U32(&s.mode) || !r.U64(&mt) || kind < 1 || kind > 4) {
      return Status::Corruption(std::string(kJournal) + " is damaged");
    }
    s.kind = static_cast<Step::Kind>(kind);
    s.mtime_ns = static_cast<int64_t>(mt);
    bool staged_ok = s.kind != Step::Kind::kRename ||
                     (!s.staged.empty() && s.staged.find('/') == std::string::npos &&
                      s.staged[0] != '.');
    if (!ValidateRelativePath(s.path).ok() || !staged_ok) {
      return Status::Corruption(std::string(kJournal) + " is damaged (a bad path)");
    }
    steps.push_back(std::move(s));
  }
  transfer_ = transfer;
  *steps_run = steps.size();
  HUBSYNC_RETURN_IF_ERROR(RunSteps(steps, StagingDir()));
  HUBSYNC_RETURN_IF_ERROR(fs_->Remove(kJournal));
  return fs_->SyncDir(kStagingDirName);
}

Status Applier::RunSteps(const std::vector<Step>& steps, const std::string& staging_dir) {
  std::set<std::string> touched_dirs;
  int done = 0;
  auto crash = [&]() { return crash_after_steps_ >= 0 && done++ >= crash_after_steps_; };
  for (const Step& s : steps) {
    if (crash()) return Status::Aborted("simulated crash");
    touched_dirs.insert(Parent(s.path));
    switch (s.kind) {
      case Step::Kind::kDelete: {
        auto before = fs_->Stat(s.path);
        if (!before.ok() || static_cast<uint8_t>(before->type) != s.type) break;
        Status st = fs_->Remove(s.path);
        if (!st.ok()) {
          // A directory that still holds excluded files stays; any other
          // failure (EIO, say) is the delta's, with its own cause.
          bool holds_excluded = false;
          if (before->type == EntryType::kDir) {
            auto left = fs_->ListDir(s.path);
            holds_excluded = left.ok() && !left->empty();
          }
          if (!holds_excluded) return st;
        }
        break;
      }
      case Step::Kind::kMkdir:
        HUBSYNC_RETURN_IF_ERROR(fs_->MakeDir(s.path, 0700));
        break;
      case Step::Kind::kRename: {
        std::string from = staging_dir + "/" + s.staged;
        auto st = fs_->Stat(from);
        if (st.ok()) {
          HUBSYNC_RETURN_IF_ERROR(fs_->Rename(from, s.path));
        } else if (st.status().code() != Status::Code::kNotFound ||
                   !fs_->Stat(s.path).ok()) {
          return Status::Corruption("journal step lost its staged file");
        }
        break;
      }
      case Step::Kind::kSetAttr:
        HUBSYNC_RETURN_IF_ERROR(
            fs_->SetAttrs(s.path, static_cast<EntryType>(s.type), s.mode, s.mtime_ns));
        break;
    }
  }
  // Directory modes last (children first), so a read-only directory does not
  // stop its own children from being created.
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->kind != Step::Kind::kMkdir) continue;
    if (crash()) return Status::Aborted("simulated crash");
    HUBSYNC_RETURN_IF_ERROR(fs_->SetAttrs(it->path, EntryType::kDir, it->mode, 0));
  }
  // Durable before the journal goes: every changed name (the parents'
  // entries) and every changed mode or mtime (the object itself: a parent's
  // fsync does not cover a child's attributes). A symlink cannot be synced
  // alone; many objects cost more one at a time than one syncfs.
  std::set<std::string> changed_files, changed_dirs = touched_dirs;
  bool sync_all = false;
  for (const Step& s : steps) {
    if (s.kind == Step::Kind::kMkdir) changed_dirs.insert(s.path);
    if (s.kind != Step::Kind::kSetAttr) continue;
    switch (static_cast<EntryType>(s.type)) {
      case EntryType::kDir: changed_dirs.insert(s.path); break;
      case EntryType::kFile: changed_files.insert(s.path); break;
      default: sync_all = true;
    }
  }
  if (sync_all || changed_dirs.size() + changed_files.size() > kMaxDirSyncs) return fs_->SyncAll();
  // An object that is gone (or changed kind) since has nothing to sync.
  auto gone = [](const Status& st) {
    return st.code() == Status::Code::kNotFound || st.code() == Status::Code::kRejected;
  };
  for (const std::string& d : changed_dirs) {
    Status st = fs_->SyncDir(d);
    if (!st.ok() && !gone(st)) return st;
  }
  for (const std::string& f : changed_files) {
    Status st = fs_->SyncFile(f);
    if (!st.ok() && !gone(st)) return st;
  }
  return Status::Ok();
}

Status Applier::Commit() {
  if (!active_) return Status::InvalidArgument("commit outside a transfer");
  HUBSYNC_RETURN_IF_ERROR(FinishFile());
  HUBSYNC_RETURN_IF_ERROR(CheckPostState());
  // From here on the staged files may be the delta's: once the journal's
  // rename has happened (even if the directory sync after it then fails) a
  // restart replays it. Abort keeps them; Recover decides (replay if the
  // journal is there, discard if not).
  journal_pending_ = true;
  HUBSYNC_RETURN_IF_ERROR(WriteJournal());  // committed: from here on only forward
  HUBSYNC_RETURN_IF_ERROR(RunSteps(steps_, StagingDir()));  // durable when it returns
  // The journal's removal needs no barrier of its own: a power cut that
  // brings it back only replays steps already done (each is idempotent),
  // and the next commit's SyncAll makes the removal durable before that
  // commit changes anything.
  HUBSYNC_RETURN_IF_ERROR(fs_->Remove(kJournal));
  journal_pending_ = false;
  fs_->RemoveTree(StagingDir());
  std::vector<Step>().swap(steps_);  // as long as the tree after an initial sync
  active_ = false;
  return Status::Ok();
}

}  // namespace hubsync
