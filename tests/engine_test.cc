// The engines driven deterministically: an in-process broker, a manual
// clock and a fake change source; real files in temporary directories.
#include "hubsync/engine.h"

#include <gtest/gtest.h>

#include "fake_transport.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::FakeBroker;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

class EngineTest : public ::testing::Test {
 protected:
  void Build(const Policy& policy) {
    Config pc;
    pc.home = "home";
    pc.gateway_id = "hub-p";
    pc.data_dir = primary_dir_.path();
    pc.state_dir = primary_state_.path();
    pc.backups = {"hub-b"};
    pc.policy = policy;
    Config bc = pc;
    bc.gateway_id = "hub-b";
    bc.data_dir = backup_dir_.path();
    bc.state_dir = backup_state_.path();
    bc.backups.clear();
    KeyEntry k;
    k.epoch = 1;
    RandomBytes(k.key.data(), k.key.size());
    ASSERT_TRUE(KeyStore(pc.state_dir).Put("hub-b", k).ok());
    ASSERT_TRUE(KeyStore(bc.state_dir).Put("hub-b", k).ok());
    pt_ = broker_.NewClient();
    bt_ = broker_.NewClient();
    pfs_ = NewPosixFileSystem(pc.data_dir);
    bfs_ = NewPosixFileSystem(bc.data_dir);
    EngineEnv pe;
    pe.config = pc;
    pe.transport = pt_.get();
    pe.fs = pfs_.get();
    pe.clock = &clock_;
    pe.changes = &changes_;
    EngineEnv be;
    be.config = bc;
    be.transport = bt_.get();
    be.fs = bfs_.get();
    be.clock = &clock_;
    primary_ = std::make_unique<PrimaryEngine>(pe);
    backup_ = std::make_unique<BackupEngine>(be);
    pt_->SetHandlers([this](Message m) { primary_->OnMessage(m); },
                     [this](bool up) { primary_->OnConnection(up); });
    bt_->SetHandlers([this](Message m) { backup_->OnMessage(m); },
                     [this](bool up) { backup_->OnConnection(up); });
    ASSERT_TRUE(backup_->Start().ok());
    ASSERT_TRUE(primary_->Start().ok());
    bt_->Connect();
    pt_->Connect();
  }
  // Runs ticks and deliveries until quiet at the current time.
  void Settle() {
    for (int i = 0; i < 1000; ++i) {
      primary_->Tick(clock_.NowMs());
      backup_->Tick(clock_.NowMs());
      if (broker_.Pump() == 0) return;
    }
    FAIL() << "engines never settled";
  }
  void Change(const std::string& rel, const std::string& content) {
    WriteFile(primary_dir_.Sub(rel), content);
    changes_.Push(rel);
    primary_->OnChanges();
  }
  int Requests() { return broker_.Count("hubsync/v1/home/gw/hub-b/manifest/req"); }

  TempDir primary_dir_, primary_state_, backup_dir_, backup_state_;
  FakeBroker broker_;
  ManualClock clock_;
  FakeChangeSource changes_;
  std::unique_ptr<testing::FakeTransport> pt_, bt_;
  std::unique_ptr<FileSystem> pfs_, bfs_;
  std::unique_ptr<PrimaryEngine> primary_;
  std::unique_ptr<BackupEngine> backup_;
};

TEST_F(EngineTest, OnChangeSyncsAtOnce) {
  WriteFile(primary_dir_.Sub("a.json"), "1");
  Build(Policy{true, 0, 0});
  Settle();
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
  EXPECT_TRUE(primary_->AllInSync());
  Change("b.json", "2");
  Settle();
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
  EXPECT_EQ(primary_->root(), backup_->root());
}

TEST_F(EngineTest, DelayGivesOneSyncPerBurstWithACap) {
  Build(Policy{true, 1000, 0});
  Settle();
  int base = Requests();
  // A burst: three changes 300 ms apart, then quiet.
  for (int i = 0; i < 3; ++i) {
    Change("burst-" + std::to_string(i), "x");
    clock_.Advance(300);
    Settle();
  }
  EXPECT_EQ(Requests(), base);  // still inside the delay
  clock_.Advance(800);          // 1000 ms after the last change
  Settle();
  EXPECT_EQ(Requests(), base + 1);
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
  // A steady stream every 500 ms never goes quiet for 1000 ms: the cap
  // (4 x delay after the first change) forces a sync anyway.
  base = Requests();
  for (int i = 0; i < 8; ++i) {
    Change("stream-" + std::to_string(i), "y");
    clock_.Advance(500);
    Settle();
  }
  EXPECT_GE(Requests(), base + 1);
}

TEST_F(EngineTest, PeriodRepairsABackupEditedByHand) {
  WriteFile(primary_dir_.Sub("config.json"), "truth");
  Build(Policy{false, 0, 60});
  Settle();
  EXPECT_EQ(testing::ReadFile(backup_dir_.Sub("config.json")), "truth");
  WriteFile(backup_dir_.Sub("config.json"), "edited by hand");
  WriteFile(backup_dir_.Sub("stray.json"), "not on the primary");
  clock_.Advance(59000);
  Settle();
  EXPECT_EQ(testing::ReadFile(backup_dir_.Sub("config.json")), "edited by hand");
  clock_.Advance(1000);
  Settle();
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
}

TEST_F(EngineTest, OverflowRescansEverything) {
  Build(Policy{true, 0, 0});
  Settle();
  // Files appear without individual events, then the queue overflows.
  WriteFile(primary_dir_.Sub("unseen/1.json"), "1");
  WriteFile(primary_dir_.Sub("unseen/2.json"), "2");
  changes_.Push("", true);
  primary_->OnChanges();
  Settle();
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
}

TEST_F(EngineTest, LostMessagesAreRecoveredByTimeout) {
  WriteFile(primary_dir_.Sub("a.json"), "1");
  Build(Policy{true, 0, 0});
  // Drop everything the first sync sends, as a broker restart would.
  primary_->Tick(clock_.NowMs());
  broker_.Pump();
  bt_->connected_ = false;  // the backup misses the request
  primary_->Tick(clock_.NowMs());
  broker_.Pump();
  bt_->connected_ = true;
  EXPECT_NE(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
  clock_.Advance(PrimaryEngine::kPhaseTimeoutMs + 1);
  Settle();
  clock_.Advance(1000);  // backoff
  Settle();
  EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
}

}  // namespace
}  // namespace hubsync
