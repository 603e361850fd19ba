// `hubsync recover` (issue 9): after a crash, data_dir is brought to exactly
// the old or the new tree before anything reads it, without a broker.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "apply_util.h"
#include "file_util.h"
#include "harness.h"
#include "home_fixture.h"

namespace hubsync {
namespace {

using testing::Gateway;
using testing::HomeTest;
using testing::kConvergeMs;
using testing::MakeRichTree;
using testing::Recorder;
using testing::TempDir;
using testing::WaitFor;
using testing::Snapshot;
using testing::SyncOnce;
using testing::WriteFile;

class RecoverTest : public HomeTest {
 protected:
  // hub-b1's data_dir holds `old`; `src` holds the new tree.
  void SetUp() override {
    HomeTest::SetUp();
    MakeHome(1);
    b_ = &backups_["hub-b1"];
    MakeRichTree(src_.path());
    auto fs = NewPosixFileSystem(b_->data);
    ASSERT_TRUE(SyncOnce(src_.path(), fs.get()).status.ok());
    old_ = Snapshot(b_->data);
    WriteFile(src_.Sub("devices/lamp.json"), "changed");
    WriteFile(src_.Sub("new/dir/file"), "new");
    unlink(src_.Sub("empty").c_str());
    std::system(("rm -rf '" + src_.Sub("devices/deep") + "'").c_str());
    WriteFile(src_.Sub("devices/deep"), "a file where a directory was");
  }
  std::map<std::string, std::string> New() {
    auto snap = Snapshot(src_.path());
    snap.erase(".hubsync");
    return snap;
  }
  std::map<std::string, std::string> Now() {
    auto snap = Snapshot(b_->data);
    for (auto it = snap.begin(); it != snap.end();) {
      it = it->first.rfind(".hubsync", 0) == 0 ? snap.erase(it) : std::next(it);
    }
    return snap;
  }
  TempDir src_;
  Gateway* b_ = nullptr;
  std::map<std::string, std::string> old_;
};

TEST_F(RecoverTest, ACommittedDeltaIsFinishedWithoutABroker) {
  broker_.reset();  // recovery needs no broker
  auto fs = NewPosixFileSystem(b_->data);
  auto r = SyncOnce(src_.path(), fs.get(), 8192, PathFilter({"cache/**", "**/*.tmp"}), 3);
  ASSERT_EQ(r.status.code(), Status::Code::kAborted) << "the simulated crash, after 3 journal steps";
  auto mixed = Now();
  ASSERT_NE(mixed, old_);
  ASSERT_NE(mixed, New()) << "the crash left a tree that never existed on the primary";
  std::string out;
  ASSERT_EQ(Tool({"recover", "-c", b_->config}, &out), 0) << out;
  EXPECT_NE(out.find("finished the interrupted apply of transfer 7"), std::string::npos) << out;
  EXPECT_EQ(Now(), New());
  ASSERT_EQ(Tool({"recover", "-c", b_->config}, &out), 0) << out;
  EXPECT_NE(out.find("nothing to recover"), std::string::npos) << out;
  EXPECT_EQ(Now(), New());
}

TEST_F(RecoverTest, AnUncommittedDeltaIsDiscarded) {
  // A transfer killed while streaming: staged files, no journal.
  testing::MkdirP(b_->data + "/.hubsync/staging/9");
  WriteFile(b_->data + "/.hubsync/staging/9/0", "half a file");
  std::string out;
  ASSERT_EQ(Tool({"recover", "-c", b_->config}, &out), 0) << out;
  EXPECT_NE(out.find("discarded 1 uncommitted transfer(s): the tree keeps its old state"),
            std::string::npos) << out;
  EXPECT_EQ(Now(), old_);
  EXPECT_NE(access((b_->data + "/.hubsync/staging/9").c_str(), F_OK), 0);
}

TEST_F(RecoverTest, ADamagedJournalIsRefusedNamingItAndNothingChanges) {
  auto fs = NewPosixFileSystem(b_->data);
  ASSERT_EQ(SyncOnce(src_.path(), fs.get(), 8192, PathFilter(), 2).status.code(),
            Status::Code::kAborted);
  auto before = Snapshot(b_->data);
  std::string journal = testing::ReadFile(b_->data + "/.hubsync/journal");
  ASSERT_GT(journal.size(), 40u);
  journal[journal.size() / 2] ^= 0x20;  // one flipped bit in the middle
  WriteFile(b_->data + "/.hubsync/journal", journal);
  before = Snapshot(b_->data);
  std::string out;
  EXPECT_EQ(Tool({"recover", "-c", b_->config}, &out), 1) << out;
  EXPECT_NE(out.find(".hubsync/journal is damaged (checksum mismatch)"), std::string::npos) << out;
  EXPECT_NE(out.find("start the backup daemon, which re-syncs from the primary"), std::string::npos);
  EXPECT_EQ(Snapshot(b_->data), before);
  // The daemon refuses the same way rather than apply over a mixed tree.
  Start(*b_, "backup");
  EXPECT_EQ(b_->proc->Wait(), 1);
  EXPECT_NE(b_->proc->Log().find(".hubsync/journal is damaged"), std::string::npos) << b_->proc->Log();
}

TEST_F(RecoverTest, ARunningDaemonIsLeftAlone) {
  Start(*b_, "backup");
  ASSERT_TRUE(WaitFor([&] { return StateDirLock::Holder(b_->state) == b_->proc->pid(); }, 10000));
  std::string out;
  EXPECT_EQ(Tool({"recover", "-c", b_->config}, &out), 1) << out;
  EXPECT_NE(out.find("in use by another hubsync process (pid " + std::to_string(b_->proc->pid())),
            std::string::npos) << out;
}

// Damaged state on restart (issue 9): a rebuildable record (the manifest
// cache) is rebuilt and replication goes on; one that cannot be rebuilt (a
// key, a message counter) stops only that peer's replication, with a log line
// naming the record, and the daemon stays up; nothing is sealed with a
// guessed counter.
TEST_F(HomeTest, DamagedStateFilesAreRebuiltOrNamedNeverGuessed) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  testing::HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  auto restart = [&](Gateway& g, const char* role) {
    g.proc->Stop();
    Start(g, role);
  };
  // The manifest caches: garbage on one side, a record cut short on the other.
  primary_.proc->Stop();
  b.proc->Stop();
  WriteFile(primary_.state + "/manifest.cache", "hubsync-cache v1\n\xff\xff\xff garbage");
  WriteFile(b.state + "/manifest.cache", std::string("hubsync-cache v1\n\x11\0devices/lamp", 30));
  StartAll();
  WriteFile(primary_.data + "/after-cache.json", "1");
  ASSERT_TRUE(AllConverged()) << "a damaged cache only costs re-hashing";

  // The backup's key record: named, the daemon stays up, nothing applied.
  WriteFile(b.state + "/keys/hub-b1.from-hub-p.key", "not a key file\n");
  restart(b, "backup");
  ASSERT_TRUE(WaitFor([&] { return b.proc->Log().find("keys/hub-b1.from-hub-p.key: bad header") !=
                                   std::string::npos; }, 10000)) << b.proc->Log();
  WriteFile(primary_.data + "/while-damaged.json", "x");
  EXPECT_FALSE(WaitFor([&] { return access((b.data + "/while-damaged.json").c_str(), F_OK) == 0; },
                       2000));
  int code = 0;
  EXPECT_FALSE(b.proc->Exited(&code)) << code;

  // The primary's send counter: named, never guessed (a guess below the
  // backup's mark would be refused as replays, one above it wastes nothing
  // but must come from the record).
  WriteFile(primary_.state + "/counters/hub-b1.e1.tx", "-12 not a number\n");
  restart(primary_, "primary");
  ASSERT_TRUE(WaitFor([&] {
    return primary_.proc->Log().find("counters/hub-b1.e1.tx is malformed") != std::string::npos;
  }, 10000)) << primary_.proc->Log();
  EXPECT_FALSE(primary_.proc->Exited(&code)) << code;
}

// Disk full on a backup (issue 9), end to end on a real filesystem: a tmpfs
// too small for the delta. The backup says "error" with the cause, the
// primary retries with a growing delay (never in a tight loop), nothing
// partial appears, and once there is room the backup converges.
class DiskFullTest : public HomeTest {
 protected:
  void TearDown() override {
    if (!mounted_) return;
    for (auto& [id, g] : backups_) g.proc.reset();  // nothing may hold the mount
    primary_.proc.reset();
    EXPECT_EQ(std::system(("umount '" + mounted_dir_ + "'").c_str()), 0);
  }
  bool Mount(const std::string& dir, const std::string& size) {
    int rc = std::system(("mount -t tmpfs -o size=" + size + ",mode=0755 tmpfs '" + dir + "'").c_str());
    mounted_ = rc == 0;
    mounted_dir_ = dir;
    return mounted_;
  }
  bool mounted_ = false;
  std::string mounted_dir_;
};

TEST_F(DiskFullTest, ABackupOutOfSpaceSaysSoBacksOffAndConvergesOnceThereIsRoom) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  ASSERT_TRUE(Mount(b.data, "256k")) << "the test mounts a tmpfs (it runs as root, as CI does)";
  WriteFile(primary_.data + "/devices/lamp.json", "on");
  WriteFile(primary_.data + "/db/hub.sqlite", std::string(600 * 1024, 'd'));
  const std::string gw = "hubsync/v1/home-1/gw/hub-b1/";
  Recorder requests(Recorder::Options(broker_->uri()), {gw + "manifest/req"});
  Recorder status(Recorder::Options(broker_->uri()), {gw + "status"});
  StartAll();
  ASSERT_TRUE(status.WaitForPayloadWith({"\"state\":\"error\"", "No space left on device"},
                                        kConvergeMs))
      << b.proc->Log();
  // Backed off: a tight loop would send hundreds of requests in 3 s.
  size_t at_error = requests.messages().size();
  EXPECT_FALSE(WaitFor([&] { return requests.messages().size() > at_error + 6; }, 3000))
      << requests.messages().size() - at_error << " attempts in 3 s";
  int code = 0;
  EXPECT_FALSE(b.proc->Exited(&code)) << "the backup exited with " << code;
  EXPECT_NE(access((b.data + "/db/hub.sqlite").c_str(), F_OK), 0) << "nothing partial appears";
  // Room again: the next attempt converges.
  ASSERT_EQ(std::system(("mount -o remount,size=8m '" + b.data + "'").c_str()), 0);
  ASSERT_TRUE(AllConverged());
}

// Disk full on the primary's state_dir: its message counters cannot be
// reserved, so it cannot seal. It says so (an error event with the cause),
// never seals under a counter it could not reserve, stays up, retries with a
// growing delay, and serves the backup once there is room.
TEST_F(DiskFullTest, APrimaryThatCannotReserveCountersSaysSoAndRecovers) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  std::string keys = testing::ReadFile(primary_.state + "/keys/hub-b1.key");
  ASSERT_FALSE(keys.empty());
  ASSERT_TRUE(Mount(primary_.state, "64k"));
  testing::MkdirP(primary_.state + "/keys");
  WriteFile(primary_.state + "/keys/hub-b1.key", keys);
  chmod((primary_.state + "/keys/hub-b1.key").c_str(), 0600);
  // Fill the rest: the counter reservation and the manifest cache find no room.
  std::system(("dd if=/dev/zero of='" + primary_.state + "/filler' bs=4k 2>/dev/null").c_str());
  WriteFile(primary_.data + "/devices/lamp.json", "on");
  Recorder events(Recorder::Options(broker_->uri()), {"hubsync/v1/home-1/events"});
  StartAll();
  ASSERT_TRUE(events.WaitForPayloadWith({"\"type\":\"error\"", "No space left on device"},
                                        kConvergeMs))
      << primary_.proc->Log();
  size_t errors_then = events.messages().size();
  EXPECT_FALSE(WaitFor([&] { return events.messages().size() > errors_then + 12; }, 3000))
      << "retried in a loop";
  int code = 0;
  EXPECT_FALSE(primary_.proc->Exited(&code)) << code;
  EXPECT_NE(access((b.data + "/devices/lamp.json").c_str(), F_OK), 0);
  unlink((primary_.state + "/filler").c_str());
  ASSERT_TRUE(AllConverged());
}

}  // namespace
}  // namespace hubsync
