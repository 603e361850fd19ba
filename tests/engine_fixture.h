// The engines driven deterministically: an in-process broker, a manual clock
// and a fake change source; real files in temporary directories, state in
// memory stores. Shared by engine_test.cc and primary_fault_test.cc.
#ifndef HUBSYNC_TESTS_ENGINE_FIXTURE_H_
#define HUBSYNC_TESTS_ENGINE_FIXTURE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fake_transport.h"
#include "hubsync/engine.h"
#include "test_util.h"

namespace hubsync {
namespace testing {

class EngineTest : public ::testing::Test {
 protected:
  void Build(const Policy& policy) {
    Config pc;
    pc.home = "home";
    pc.gateway_id = "hub-p";
    pc.data_dir = primary_dir_.path();
    // The engines keep their state in memory stores: a state_dir that does
    // not exist proves they reach it only through the StateStore seam.
    pc.state_dir = "/nonexistent/hubsync-state-p";
    pc.backups = {"hub-b"};
    pc.policy = policy;
    pc.homeassistant.discovery = discovery_;
    Config bc = pc;
    bc.gateway_id = "hub-b";
    bc.data_dir = backup_dir_.path();
    bc.state_dir = "/nonexistent/hubsync-state-b";
    bc.backups.clear();
    KeyEntry k;
    k.epoch = 1;
    RandomBytes(k.key.data(), k.key.size());
    ASSERT_TRUE(KeyStore(&primary_state_).Put("hub-b", k).ok());
    ASSERT_TRUE(KeyStore(&backup_state_).Put("hub-b", k).ok());
    bt_ = broker_.NewClient();
    pfs_ = NewPosixFileSystem(pc.data_dir);
    if (wrap_primary_fs_) pfs_ = wrap_primary_fs_(std::move(pfs_));
    bfs_ = NewPosixFileSystem(bc.data_dir);
    primary_config_ = pc;
    backup_config_ = bc;
    backup_ = std::make_unique<BackupEngine>(
        Env(bc, bt_.get(), bfs_.get(), backup_store_ ? backup_store_ : &backup_state_));
    bt_->SetHandlers([this](Message m) { backup_->OnMessage(m); },
                     [this](const LinkEvent& e) { backup_->OnConnection(e); });
    ASSERT_TRUE(backup_->Start().ok());
    bt_->Connect();
    StartPrimary();
  }
  EngineEnv Env(const Config& c, Transport* t, FileSystem* fs, StateStore* state) {
    EngineEnv e;
    e.config = c;
    e.transport = t;
    e.fs = fs;
    e.state = state;
    e.clock = &clock_;
    return e;
  }
  // A new backup process on the same data_dir and state (the old one
  // vanished without a word: no will).
  void RestartBackup() {
    bt_->connected_ = false;
    old_transports_.push_back(std::move(bt_));
    backup_.reset();
    bt_ = broker_.NewClient();
    backup_ = std::make_unique<BackupEngine>(
        Env(backup_config_, bt_.get(), bfs_.get(), backup_store_ ? backup_store_ : &backup_state_));
    bt_->SetHandlers([this](Message m) { backup_->OnMessage(m); },
                     [this](const LinkEvent& e) { backup_->OnConnection(e); });
    ASSERT_TRUE(backup_->Start().ok());
    bt_->Connect();
  }
  // A new primary process on the same data_dir and state (the old one's
  // connection is dropped; the broker forgets nothing it retained).
  void StartPrimary() {
    if (pt_) {
      pt_->connected_ = false;
      old_transports_.push_back(std::move(pt_));
    }
    primary_.reset();
    pt_ = broker_.NewClient();
    EngineEnv pe = Env(primary_config_, pt_.get(), pfs_.get(),
                       primary_store_ ? primary_store_ : &primary_state_);
    pe.changes = &changes_;
    pe.log = [this](LogLevel, const std::string& line) { primary_log_.push_back(line); };
    primary_ = std::make_unique<PrimaryEngine>(pe);
    pt_->SetHandlers([this](Message m) { primary_->OnMessage(m); },
                     [this](const LinkEvent& e) { primary_->OnConnection(e); });
    ASSERT_TRUE(primary_->Start().ok());
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
  // The primary runs once while the backup is away: whatever it sends then
  // (a request, a delta) never reaches the backup.
  void BackupMissesWhatThePrimarySendsNext() {
    bt_->connected_ = false;
    primary_->Tick(clock_.NowMs());
    broker_.Pump();
    bt_->connected_ = true;
  }
  // The trees differ until `ms` have passed, then agree and the primary
  // says so.
  void ExpectConvergedOnlyAfter(int64_t ms) {
    Settle();
    EXPECT_NE(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
    clock_.Advance(ms);
    Settle();
    EXPECT_EQ(Snapshot(primary_dir_.path()), Snapshot(backup_dir_.path()));
    EXPECT_TRUE(primary_->AllInSync());
  }
  void Change(const std::string& rel, const std::string& content) {
    WriteFile(primary_dir_.Sub(rel), content);
    changes_.Push(rel);
    primary_->OnChanges();
  }
  int Requests() { return broker_.Count("hubsync/v1/home/gw/hub-b/manifest/req"); }
  // Syncs the primary started: distinct transfers among its requests and
  // deltas (a sync against a known tree sends no request).
  // Transfers started towards the backup: requests and deltas.
  int Syncs() { return Transfers(true); }
  // Transfers that shipped changes (a request alone, such as the one telling
  // a backup that a policy holds changes back, ships none).
  int DeltaSyncs() { return Transfers(false); }
  int Transfers(bool with_requests) {
    std::set<uint64_t> transfers;
    for (const Message& m : broker_.log()) {
      if ((!with_requests || m.topic != "hubsync/v1/home/gw/hub-b/manifest/req") &&
          m.topic != "hubsync/v1/home/gw/hub-b/delta") {
        continue;
      }
      auto h = DecodeEnvelopeHeader(m.payload);
      if (h.ok()) transfers.insert(h->transfer);
    }
    return static_cast<int>(transfers.size());
  }
  // The primary's latest status and events of `type`.
  GatewayStatus PrimaryStatus() {
    GatewayStatus last;
    for (const Message& m : broker_.log()) {
      if (m.topic != "hubsync/v1/home/gw/hub-p/status") continue;
      auto st = DecodeStatus(m.payload);
      if (st.ok()) last = *st;
    }
    return last;
  }
  std::vector<Event> Events(const std::string& type) {
    std::vector<Event> out;
    for (const Message& m : broker_.log()) {
      if (m.topic != "hubsync/v1/home/events") continue;
      auto e = DecodeEvent(m.payload);
      if (e.ok() && e->type == type) out.push_back(*e);
    }
    return out;
  }

  bool discovery_ = false;
  // Set before Build: wraps the primary's data_dir filesystem.
  std::function<std::unique_ptr<FileSystem>(std::unique_ptr<FileSystem>)> wrap_primary_fs_;
  // Set before Build (or a restart): the primary's state, else primary_state_.
  StateStore* primary_store_ = nullptr;
  StateStore* backup_store_ = nullptr;  // set before Build: the backup's state
  TempDir primary_dir_, backup_dir_;
  MemoryStateStore primary_state_, backup_state_;
  FakeBroker broker_;
  ManualClock clock_;
  FakeChangeSource changes_;
  Config primary_config_, backup_config_;
  std::unique_ptr<FakeTransport> pt_, bt_;
  std::vector<std::unique_ptr<FakeTransport>> old_transports_;
  std::unique_ptr<FileSystem> pfs_, bfs_;
  std::unique_ptr<PrimaryEngine> primary_;
  std::unique_ptr<BackupEngine> backup_;
  std::vector<std::string> primary_log_;
};

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_ENGINE_FIXTURE_H_
