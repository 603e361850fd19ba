#include "hubsync/applier.h"
#include "hubsync/chunker.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <list>

#include "fault_fs.h"
#include "hubsync/delta_writer.h"
#include "hubsync/scanner.h"
#include "apply_util.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;
using testing::ScanTree;
using testing::SyncOnce;
using testing::SyncResult;
using testing::kNow;
using testing::MakeRichTree;
using testing::RandomBytesString;
using testing::ReadFile;


TEST(ApplierTest, InitialSyncMakesAnExactCopy) {
  TempDir src, dst;
  MakeRichTree(src.path());
  auto fs = NewPosixFileSystem(dst.path());
  SyncResult r = SyncOnce(src.path(), fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_GT(r.chunks, 300u);  // 3 MiB through 8 KiB chunks: streamed, not whole
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
}

TEST(ApplierTest, EditsDeletesRenamesAndTypeChangesConverge) {
  TempDir src, dst;
  MakeRichTree(src.path());
  auto fs = NewPosixFileSystem(dst.path());
  ASSERT_TRUE(SyncOnce(src.path(), fs.get()).status.ok());
  const std::string s = src.path();
  WriteFile(s + "/devices/lamp.json", R"({"on":false})");
  rename((s + "/scenes").c_str(), (s + "/scenes-renamed").c_str());
  unlink((s + "/empty").c_str());
  mkdir((s + "/empty").c_str(), 0750);            // file -> directory
  WriteFile(s + "/empty/inside", "now a dir");
  std::system(("rm -rf '" + s + "/devices/deep'").c_str());
  WriteFile(s + "/devices/deep", "now a file");   // directory -> file
  unlink((s + "/current").c_str());
  symlink("scenes-renamed", (s + "/current").c_str());
  chmod((s + "/bin/run.sh").c_str(), 0700);
  SyncResult r = SyncOnce(s, fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
  // The renamed scene's content came from the backup's own copy.
  EXPECT_EQ(r.stats.bytes, 0u + std::string(R"({"on":false})").size() + 9 + 10);
}

TEST(ApplierTest, InPlaceEditOfALargeFileShipsOnlyChangedBlocks) {
  TempDir src, dst;
  MakeRichTree(src.path());
  auto fs = NewPosixFileSystem(dst.path());
  ASSERT_TRUE(SyncOnce(src.path(), fs.get()).status.ok());
  FILE* f = fopen((src.path() + "/db/hub.sqlite").c_str(), "r+b");
  fseek(f, 1 << 20, SEEK_SET);
  std::string patch(65536, 'P');
  fwrite(patch.data(), 1, patch.size(), f);
  fclose(f);
  SyncResult r = SyncOnce(src.path(), fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // The edit and at most the chunks it cuts into at either end.
  EXPECT_GE(r.stats.bytes, 65536u);
  EXPECT_LE(r.stats.bytes, 65536u + 2 * ChunkSizesFor(3 << 20).max);
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
}

// Content-defined chunks (issue 10): bytes inserted or deleted inside a
// large file ship only the chunks around them; the rest is copied on the
// backup from its own old version, or from another file that holds it.
TEST(ApplierTest, AnInsertionOrDeletionShipsOnlyTheChunksAroundIt) {
  TempDir src, dst;
  MakeRichTree(src.path());
  std::string big = RandomBytesString(6 << 20, 7);
  WriteFile(src.path() + "/db/big.bin", big);
  auto fs = NewPosixFileSystem(dst.path());
  ASSERT_TRUE(SyncOnce(src.path(), fs.get()).status.ok());
  const uint64_t around = 2 * ChunkSizesFor(big.size()).max;

  big.insert(1000, std::string(100, 'I'));
  WriteFile(src.path() + "/db/big.bin", big);
  SyncResult r = SyncOnce(src.path(), fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
  EXPECT_LE(r.stats.bytes, around) << "an insertion near the start";

  big.erase(3 << 20, 5000);
  WriteFile(src.path() + "/db/big.bin", big);
  r = SyncOnce(src.path(), fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
  EXPECT_LE(r.stats.bytes, around) << "a deletion in the middle";

  // Renamed and edited: built from the old name's chunks.
  ASSERT_EQ(rename((src.path() + "/db/big.bin").c_str(), (src.path() + "/db/moved.bin").c_str()),
            0);
  big.replace(100000, 10, "0123456789");
  WriteFile(src.path() + "/db/moved.bin", big);
  r = SyncOnce(src.path(), fs.get());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
  EXPECT_LE(r.stats.bytes, around) << "a renamed, edited file";
}

// A copy range the backup's file cannot give (a hostile or mistaken
// primary, or a file changed behind our back) is refused, never applied.
TEST(ApplierTest, ACopyOutsideTheFileOrFromAMissingSourceIsRefused) {
  TempDir dst;
  WriteFile(dst.path() + "/old.bin", std::string(5000, 'o'));
  auto fs = NewPosixFileSystem(dst.path());
  PathFilter none;
  Applier a(fs.get(), &none);
  std::string content(3000, 'o');
  DeltaRecord f;
  f.kind = RecKind::kFile;
  f.path = "new.bin";
  f.mode = 0644;
  f.size = content.size();
  f.digest = Sha256Of(content);
  DeltaRecord c;
  c.kind = RecKind::kCopy;
  c.target = "old.bin";
  c.offset = 0;

  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(a.Begin(1).ok());
  ASSERT_TRUE(a.Record(f).ok());
  c.size = 3001;  // past the new file's end
  EXPECT_EQ(a.Record(c).code(), Status::Code::kCorruption);
  a.Abort();

  ASSERT_TRUE(a.Begin(2).ok());
  ASSERT_TRUE(a.Record(f).ok());
  c.offset = 4000;  // the source holds only 1,000 bytes from there
  c.size = 3000;
  EXPECT_EQ(a.Record(c).code(), Status::Code::kAborted);
  EXPECT_TRUE(a.retry_plain());
  a.Abort();

  ASSERT_TRUE(a.Begin(3).ok());
  ASSERT_TRUE(a.Record(f).ok());
  c.target = "missing.bin";
  c.offset = 0;
  EXPECT_EQ(a.Record(c).code(), Status::Code::kAborted);
  a.Abort();

  ASSERT_TRUE(a.Begin(4).ok());
  ASSERT_TRUE(a.Record(f).ok());
  c.target = "old.bin";
  ASSERT_TRUE(a.Record(c).ok());
  DeltaRecord end;
  end.kind = RecKind::kEnd;
  ASSERT_TRUE(a.Record(end).ok());
  ASSERT_TRUE(a.Commit().ok());
  EXPECT_EQ(ReadFile(dst.path() + "/new.bin"), content);
}

TEST(ApplierTest, CrashAtAnyJournalStepRecoversToTheNewState) {
  TempDir src;
  MakeRichTree(src.path());
  TempDir old_tree;
  {
    auto fs = NewPosixFileSystem(old_tree.path());
    ASSERT_TRUE(SyncOnce(src.path(), fs.get()).status.ok());
  }
  // The new state: many kinds of change at once.
  const std::string s = src.path();
  WriteFile(s + "/devices/lamp.json", "changed");
  unlink((s + "/empty").c_str());
  mkdir((s + "/empty").c_str(), 0755);
  WriteFile(s + "/new/dir/file", "new");
  std::system(("rm -rf '" + s + "/devices/deep'").c_str());
  WriteFile(s + "/devices/deep", "file now");
  for (int crash = 0;; ++crash) {
    TempDir dst;
    std::system(("cp -a '" + old_tree.path() + "/.' '" + dst.path() + "/'").c_str());
    auto old_snapshot = Snapshot(dst.path());
    auto fs = NewPosixFileSystem(dst.path());
    SyncResult r = SyncOnce(s, fs.get(), 8192, PathFilter(), crash);
    if (r.status.ok()) {
      EXPECT_GT(crash, 5);  // the loop really crashed at several steps first
      EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path()));
      break;
    }
    ASSERT_EQ(r.status.code(), Status::Code::kAborted) << r.status.ToString();
    // "Restart": a fresh Applier recovers.
    PathFilter none;
    Applier recovered(fs.get(), &none);
    ASSERT_TRUE(recovered.Recover().ok());
    EXPECT_EQ(Snapshot(src.path()), Snapshot(dst.path())) << "crash after step " << crash;
    ASSERT_LT(crash, 100);
  }
}

TEST(ApplierTest, FailureAtAnyMutationLeavesOldOrNewNeverAMix) {
  TempDir src;
  MakeRichTree(src.path());
  TempDir old_tree;
  {
    auto fs = NewPosixFileSystem(old_tree.path());
    ASSERT_TRUE(SyncOnce(src.path(), fs.get()).status.ok());
  }
  WriteFile(src.path() + "/devices/lamp.json", "changed");
  WriteFile(src.path() + "/added/a", "a");
  unlink((src.path() + "/bin/run.sh").c_str());
  int total = 0;
  {
    TempDir dry;
    std::system(("cp -a '" + old_tree.path() + "/.' '" + dry.path() + "/'").c_str());
    testing::FaultFs fs(NewPosixFileSystem(dry.path()));
    ASSERT_TRUE(SyncOnce(src.path(), &fs).status.ok());
    total = fs.mutations;
  }
  ASSERT_GT(total, 5);
  int old_seen = 0, new_seen = 0;
  for (int n = 1; n < total; ++n) {  // mutation 0 is Recover's own mkdir
    TempDir dst;
    std::system(("cp -a '" + old_tree.path() + "/.' '" + dst.path() + "/'").c_str());
    auto old_snapshot = Snapshot(dst.path());
    testing::FaultFs faulty(NewPosixFileSystem(dst.path()));
    faulty.fail_mutation_at = n;
    SyncResult f = SyncOnce(src.path(), &faulty);
    EXPECT_FALSE(f.status.ok()) << n;
    auto real = NewPosixFileSystem(dst.path());
    PathFilter none;
    Applier after(real.get(), &none);
    ASSERT_TRUE(after.Recover().ok());
    auto snap = Snapshot(dst.path());
    bool is_old = snap == old_snapshot, is_new = snap == Snapshot(src.path());
    EXPECT_TRUE(is_old || is_new) << "mixed state after failing mutation " << n;
    old_seen += is_old;
    new_seen += is_new;
  }
  EXPECT_GT(old_seen, 0);
  EXPECT_GT(new_seen, 0);
}

TEST(ApplierTest, DiskFullDuringStagingAppliesNothing) {
  TempDir src, dst;
  MakeRichTree(src.path());
  auto before = Snapshot(dst.path());
  testing::FaultFs fs(NewPosixFileSystem(dst.path()));
  fs.write_budget = 100000;
  SyncResult r = SyncOnce(src.path(), &fs);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("No space"), std::string::npos);
  auto real = NewPosixFileSystem(dst.path());
  PathFilter none;
  Applier after(real.get(), &none);
  ASSERT_TRUE(after.Recover().ok());
  EXPECT_EQ(Snapshot(dst.path()), before);
}

// Feeds hand-made records, as a malicious or broken primary would.
Status ApplyRecords(FileSystem* fs, const std::vector<DeltaRecord>& recs,
                    const PathFilter& filter = PathFilter()) {
  Applier a(fs, &filter);
  HUBSYNC_RETURN_IF_ERROR(a.Recover());
  HUBSYNC_RETURN_IF_ERROR(a.Begin(1));
  for (const auto& r : recs) {
    Status s = a.Record(r);
    if (!s.ok()) {
      a.Abort();
      return s;
    }
  }
  Status s = a.Commit();
  if (!s.ok()) a.Abort();
  return s;
}

DeltaRecord FileRec(const std::string& path, const std::string& content) {
  DeltaRecord r;
  r.kind = RecKind::kFile;
  r.path = path;
  r.mode = 0644;
  r.size = content.size();
  r.digest = Sha256Of(content);
  return r;
}
DeltaRecord DataRec(const std::string& content) {
  static std::list<std::string> keep_alive;  // DeltaRecord::data is a view
  keep_alive.push_back(content);
  DeltaRecord r;
  r.kind = RecKind::kData;
  r.data = keep_alive.back();
  return r;
}

TEST(ApplierTest, EscapeThroughASymlinkInTheDeltaIsRefusedWhole) {
  TempDir dst, outside;
  WriteFile(dst.Sub("keep"), "keep");
  auto before = Snapshot(dst.path());
  auto fs = NewPosixFileSystem(dst.path());
  DeltaRecord link;
  link.kind = RecKind::kSymlink;
  link.path = "evil";
  link.target = outside.path();
  std::vector<DeltaRecord> recs = {FileRec("innocent", "x"), DataRec("x"), link,
                                   FileRec("evil/owned", "pwn"), DataRec("pwn")};
  Status s = ApplyRecords(fs.get(), recs);
  EXPECT_EQ(s.code(), Status::Code::kRejected) << s.ToString();
  EXPECT_EQ(Snapshot(dst.path()), before);
  EXPECT_TRUE(Snapshot(outside.path()).empty());
}

TEST(ApplierTest, EscapeThroughAnExistingSymlinkIsRefused) {
  TempDir dst, outside;
  symlink(outside.path().c_str(), dst.Sub("link").c_str());
  auto before = Snapshot(dst.path());
  auto fs = NewPosixFileSystem(dst.path());
  Status s = ApplyRecords(fs.get(), {FileRec("link/owned", "pwn"), DataRec("pwn")});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(Snapshot(dst.path()), before);
  EXPECT_TRUE(Snapshot(outside.path()).empty());
  // A delete through the link names the very file planted outside.
  DeltaRecord del;
  del.kind = RecKind::kDelete;
  del.path = "link/victim";
  WriteFile(outside.Sub("victim"), "v");
  Status d = ApplyRecords(fs.get(), {del});
  EXPECT_TRUE(d.ok()) << "nothing of ours is there to delete: " << d.ToString();
  EXPECT_EQ(testing::ReadFile(outside.Sub("victim")), "v");
  EXPECT_EQ(Snapshot(dst.path()), before);
}

// Issue 8, finding 7: a symlink swapped in at a path between the delta's
// check and its mode change must not carry the chmod outside data_dir.
TEST(ApplierTest, ModeChangeMeetingASwappedInSymlinkTouchesNothingOutside) {
  TempDir dst, outside;
  WriteFile(dst.Sub("config.json"), "c");
  WriteFile(outside.Sub("key"), "secret");
  chmod(outside.Sub("key").c_str(), 0600);
  auto fs = NewPosixFileSystem(dst.path());
  PathFilter none;
  Applier a(fs.get(), &none);
  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(a.Begin(1).ok());
  DeltaRecord attr;
  attr.kind = RecKind::kSetAttr;
  attr.path = "config.json";
  attr.type = static_cast<uint8_t>(EntryType::kFile);
  attr.mode = 0644;
  ASSERT_TRUE(a.Record(attr).ok());
  // A local process races the apply.
  unlink(dst.Sub("config.json").c_str());
  ASSERT_EQ(symlink(outside.Sub("key").c_str(), dst.Sub("config.json").c_str()), 0);
  Status s = a.Commit();
  EXPECT_EQ(s.code(), Status::Code::kRejected) << s.ToString();
  a.Abort();
  struct stat st;
  ASSERT_EQ(stat(outside.Sub("key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(PosixFileSystemTest, SetAttrsRefusesSymlinksFifosAndTheWrongType) {
  TempDir dst, outside;
  WriteFile(outside.Sub("victim"), "v");
  chmod(outside.Sub("victim").c_str(), 0600);
  ASSERT_EQ(symlink(outside.Sub("victim").c_str(), dst.Sub("link").c_str()), 0);
  ASSERT_EQ(mkfifo(dst.Sub("pipe").c_str(), 0600), 0);
  WriteFile(dst.Sub("file"), "f");
  auto fs = NewPosixFileSystem(dst.path());
  EXPECT_EQ(fs->SetAttrs("link", EntryType::kFile, 0666, 0).code(), Status::Code::kRejected);
  EXPECT_EQ(fs->SetAttrs("link", EntryType::kDir, 0777, 0).code(), Status::Code::kRejected);
  EXPECT_EQ(fs->SetAttrs("pipe", EntryType::kFile, 0666, 0).code(), Status::Code::kRejected);
  EXPECT_EQ(fs->SetAttrs("file", EntryType::kDir, 0777, 0).code(), Status::Code::kRejected);
  EXPECT_EQ(fs->MakeDir("link", 0777).code(), Status::Code::kIoError);
  struct stat st;
  ASSERT_EQ(stat(outside.Sub("victim").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A file this process may not read still gets its mode, via its own inode.
  chmod(dst.Sub("file").c_str(), 0200);
  ASSERT_TRUE(fs->SetAttrs("file", EntryType::kFile, 0640, 0).ok());
  ASSERT_EQ(stat(dst.Sub("file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// Finding 11: a FIFO swapped in where a file was scanned must not hang the
// reader (the primary's scanner and sender, the backup's local copies).
TEST(PosixFileSystemTest, OpeningAFifoNeverBlocks) {
  TempDir dst;
  ASSERT_EQ(mkfifo(dst.Sub("pipe").c_str(), 0600), 0);
  auto fs = NewPosixFileSystem(dst.path());
  auto f = fs->OpenRead("pipe");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Status::Code::kRejected);
  auto info = fs->Stat("pipe");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->supported);
  // A delta whose local copy source became a FIFO fails cleanly.
  DeltaRecord copy = FileRec("copy", "content");
  copy.source = FileSource::kLocalCopy;
  copy.target = "pipe";
  Status s = ApplyRecords(fs.get(), {copy});
  EXPECT_FALSE(s.ok());
}

// Finding 8: setuid, setgid and sticky never reach a backup.
TEST(ApplierTest, OnlyPermissionBitsAreApplied) {
  TempDir dst;
  auto fs = NewPosixFileSystem(dst.path());
  DeltaRecord f = FileRec("bin/tool", "#!/bin/sh\n");
  f.mode = 06755;
  DeltaRecord dir;
  dir.kind = RecKind::kMkdir;
  dir.path = "bin";
  dir.mode = 01777;
  DeltaRecord attr;
  attr.kind = RecKind::kSetAttr;
  attr.path = "bin/tool";
  attr.type = static_cast<uint8_t>(EntryType::kFile);
  attr.mode = 04711;
  Status s = ApplyRecords(fs.get(), {dir, f, DataRec("#!/bin/sh\n")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  struct stat st;
  ASSERT_EQ(stat(dst.Sub("bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat(dst.Sub("bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);
  ASSERT_TRUE(ApplyRecords(fs.get(), {attr}).ok());
  ASSERT_EQ(stat(dst.Sub("bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  // Nor are they read into a manifest.
  chmod(dst.Sub("bin/tool").c_str(), 04755);
  auto info = fs->Stat("bin/tool");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, 0755u);
}

// Finding 10: a rename that fails after the journal is durable (disk full,
// EIO, a local writer) must not lose the staged files: the same applier's
// next transfer finishes the committed delta first.
TEST(ApplierTest, AFailedRenameIsFinishedByTheNextTransferWithoutARestart) {
  TempDir src, dst;
  WriteFile(src.Sub("a.json"), "new a");
  WriteFile(src.Sub("b.json"), "new b");
  WriteFile(src.Sub("c/d.json"), "new d");
  WriteFile(dst.Sub("a.json"), "old a");
  testing::FaultFs fs(NewPosixFileSystem(dst.path()));
  // Count mutations of a clean run, then fail the first rename of the commit.
  {
    TempDir dry;
    WriteFile(dry.Sub("a.json"), "old a");
    testing::FaultFs count(NewPosixFileSystem(dry.path()));
    ASSERT_TRUE(SyncOnce(src.path(), &count).status.ok());
    fs.fail_mutation_at = count.mutations - 4;  // inside the journal's renames
  }
  auto src_fs = NewPosixFileSystem(src.path());
  PathFilter none;
  auto target = std::make_shared<const Manifest>(ScanTree(src_fs.get(), &none));
  auto base = std::make_shared<const Manifest>(ScanTree(&fs, &none));
  DeltaWriter w(src_fs.get(), target, base, Diff(*target, *base), 8192);
  Applier a(&fs, &none);
  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(a.Begin(7).ok());
  Status s;
  while (s.ok() && !w.done()) {
    bool last = false;
    auto chunk = w.Next(&last);
    ASSERT_TRUE(chunk.ok());
    std::vector<DeltaRecord> recs;
    ASSERT_TRUE(DecodeRecords(*chunk, &recs).ok());
    for (size_t i = 0; s.ok() && i < recs.size(); ++i) s = a.Record(recs[i]);
    if (s.ok() && last) s = a.Commit();
  }
  ASSERT_FALSE(s.ok());
  ASSERT_TRUE(a.journal_pending()) << "the failure must come after the journal: " << s.ToString();
  a.Abort();  // what the backup does with a failed transfer
  ASSERT_TRUE(a.Begin(8).ok());
  EXPECT_FALSE(a.journal_pending());
  EXPECT_EQ(Snapshot(dst.path()), Snapshot(src.path()));
  a.Abort();
}

TEST(ApplierTest, DigestMismatchAppliesNothing) {
  TempDir dst;
  auto fs = NewPosixFileSystem(dst.path());
  DeltaRecord f = FileRec("a", "expected");
  Status s = ApplyRecords(fs.get(), {FileRec("ok", "1"), DataRec("1"), f, DataRec("tampered")});
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_TRUE(Snapshot(dst.path()).empty());
}

TEST(ApplierTest, ExcludedPathsAreNeverTouched) {
  TempDir dst;
  WriteFile(dst.Sub("cache/blob"), "local cache");
  auto fs = NewPosixFileSystem(dst.path());
  PathFilter filter({"cache/**"});
  DeltaRecord del;
  del.kind = RecKind::kDelete;
  del.path = "cache/blob";
  Status s = ApplyRecords(fs.get(), {del, FileRec("cache/new", "n"), DataRec("n"),
                                     FileRec("real", "r"), DataRec("r")}, filter);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(testing::ReadFile(dst.Sub("cache/blob")), "local cache");
  EXPECT_EQ(access(dst.Sub("cache/new").c_str(), F_OK), -1);
  EXPECT_EQ(testing::ReadFile(dst.Sub("real")), "r");
}

TEST(ApplierTest, ExcludedFilesBlockingATypeChangeRefuseTheDeltaCleanly) {
  TempDir dst;
  WriteFile(dst.Sub("d/keep.json"), "k");
  WriteFile(dst.Sub("d/local.tmp"), "excluded here");
  auto before = Snapshot(dst.path());
  auto fs = NewPosixFileSystem(dst.path());
  PathFilter filter({"*.tmp"});
  DeltaRecord del_child, del_dir;
  del_child.kind = del_dir.kind = RecKind::kDelete;
  del_child.path = "d/keep.json";
  del_dir.path = "d";
  Status s = ApplyRecords(fs.get(), {del_child, del_dir, FileRec("d", "now a file"),
                                     DataRec("now a file")}, filter);
  EXPECT_EQ(s.code(), Status::Code::kRejected) << s.ToString();
  EXPECT_EQ(Snapshot(dst.path()), before);
  // Deleting the directory alone keeps it (with the excluded file) and succeeds.
  ASSERT_TRUE(ApplyRecords(fs.get(), {del_child, del_dir}, filter).ok());
  EXPECT_EQ(testing::ReadFile(dst.Sub("d/local.tmp")), "excluded here");
}

TEST(ApplierTest, DigestsOfWrittenFilesMatchWhatAScanComputes) {
  TempDir dst;
  auto fs = NewPosixFileSystem(dst.path());
  std::string big((5 << 19) + 12345, '\0');  // 2.5 MiB and change: a partial last block
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + (i >> 16));
  PathFilter none;
  Applier a(fs.get(), &none);
  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(a.Begin(3).ok());
  ASSERT_TRUE(a.Record(FileRec("big.bin", big)).ok());
  for (size_t off = 0; off < big.size(); off += 100000) {  // pieces across block edges
    DeltaRecord d = DataRec(big.substr(off, 100000));
    d.offset = off;
    ASSERT_TRUE(a.Record(d).ok());
  }
  ASSERT_TRUE(a.Commit().ok());
  ASSERT_EQ(a.written().size(), 1u);
  Digest digest;
  std::string blocks;
  ASSERT_TRUE(HashFile(fs.get(), "big.bin", big.size(), &digest, &blocks).ok());
  EXPECT_EQ(a.written()[0].digest, digest);
  EXPECT_EQ(a.written()[0].blocks, blocks);
  EXPECT_TRUE(CheckChunkList(blocks, big.size()).ok());
  EXPECT_GT(blocks.size(), 20 * kChunkRecordBytes);
}

TEST(ApplierTest, ReapplyingTheSameDeltaIsHarmless) {
  TempDir dst;
  auto fs = NewPosixFileSystem(dst.path());
  std::vector<DeltaRecord> recs = {FileRec("a", "1"), DataRec("1")};
  Status first = ApplyRecords(fs.get(), recs);
  ASSERT_TRUE(first.ok()) << first.ToString();
  auto once = Snapshot(dst.path());
  Status again = ApplyRecords(fs.get(), recs);
  ASSERT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(Snapshot(dst.path()), once);
}

TEST(ApplierTest, OutOfOrderDataIsRefused) {
  TempDir dst;
  auto fs = NewPosixFileSystem(dst.path());
  DeltaRecord d = DataRec("x");
  d.offset = 5;
  EXPECT_FALSE(ApplyRecords(fs.get(), {FileRec("a", "x"), d}).ok());
  EXPECT_FALSE(ApplyRecords(fs.get(), {DataRec("x")}).ok());
  EXPECT_TRUE(Snapshot(dst.path()).empty());
}

}  // namespace
}  // namespace hubsync

namespace hubsync {
namespace testing {
namespace {

// The file system keeps directories it walked open a moment: what it renames
// or removes itself must never be reached through such a descriptor, and a
// symlink swapped in meanwhile must still never be followed.
TEST(PosixFileSystemTest, ADirectoryRenamedOrRemovedIsNotReachedThroughItsOldDescriptor) {
  TempDir root;
  auto fs = NewPosixFileSystem(root.path());
  ASSERT_TRUE(fs->MakeDir("d", 0755).ok());
  ASSERT_TRUE(fs->Create("d/a").ok());
  ASSERT_TRUE(fs->Rename("d", "e").ok());
  ASSERT_TRUE(fs->MakeDir("d", 0755).ok());
  ASSERT_TRUE(fs->Create("d/b").ok());
  EXPECT_TRUE(fs->Stat("d/b").ok());
  EXPECT_EQ(fs->Stat("e/b").status().code(), Status::Code::kNotFound);
  ASSERT_TRUE(fs->RemoveTree("d").ok());
  ASSERT_TRUE(fs->MakeDir("d", 0755).ok());
  EXPECT_TRUE(fs->Create("d/c").ok()) << "a removed directory's descriptor was used";
  auto list = fs->ListDir("d");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "c");
}

TEST(PosixFileSystemTest, ASymlinkSwappedInForAWalkedDirectoryIsNeverFollowed) {
  TempDir root, outside;
  auto fs = NewPosixFileSystem(root.path());
  ASSERT_TRUE(fs->MakeDir("d", 0755).ok());
  ASSERT_TRUE(fs->Create("d/a").ok());  // "d" walked and kept
  // Another process swaps a symlink in for it.
  ASSERT_EQ(rename((root.path() + "/d").c_str(), (root.path() + "/d2").c_str()), 0);
  ASSERT_EQ(symlink(outside.path().c_str(), (root.path() + "/d").c_str()), 0);
  auto created = fs->Create("d/x");
  struct stat st;
  EXPECT_NE(lstat(outside.Sub("x").c_str(), &st), 0) << "followed a symlink out of the root";
  if (created.ok()) {
    EXPECT_EQ(lstat(root.Sub("d2/x").c_str(), &st), 0);  // the very directory walked
  }
}

}  // namespace
}  // namespace testing
}  // namespace hubsync

namespace hubsync {
namespace testing {
namespace {

// The primary's view of data_dir must never mix a directory another process
// moved away with what replaced it (the kill campaign exchanges whole trees
// with RENAME_EXCHANGE): reads walk afresh even right after a change walked
// the same directories.
TEST(PosixFileSystemTest, ReadsSeeADirectoryAnotherProcessExchangedAtOnce) {
  TempDir root;
  auto fs = NewPosixFileSystem(root.path());
  ASSERT_TRUE(fs->MakeDir("home", 0755).ok());
  ASSERT_TRUE(fs->MakeDir("home/d", 0755).ok());
  ASSERT_TRUE(fs->Create("home/d/old").ok());  // "home" and "home/d" walked
  WriteFile(root.Sub("next/home/d/new"), "new");
  ASSERT_EQ(renameat2(AT_FDCWD, root.Sub("next/home").c_str(), AT_FDCWD,
                      root.Sub("home").c_str(), RENAME_EXCHANGE),
            0);
  auto list = fs->ListDir("home/d");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "new");
  EXPECT_TRUE(fs->Stat("home/d/new").ok());
  EXPECT_EQ(fs->Stat("home/d/old").status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(fs->OpenRead("home/d/new").ok());
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
