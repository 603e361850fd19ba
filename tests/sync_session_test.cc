// One backup as the primary serves it (SyncSession), driven by hand: the
// test plays the backups, opening what a session sends with the backup's
// half of the key and sealing the answers.
#include "sync_session.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "apply_util.h"
#include "fake_transport.h"
#include "fault_fs.h"

namespace hubsync {
namespace testing {
namespace {

class SyncSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(data_.Sub("config/hub.json"), "{\"name\":\"home\"}");
    WriteFile(data_.Sub("db/hub.sqlite"), RandomBytesString(96 * 1024, 3));  // several chunks
    config_.home = "home";
    config_.gateway_id = "hub-p";
    config_.max_message_bytes = 16384;
    fs_ = std::make_unique<FaultFs>(NewPosixFileSystem(data_.path()));
    env_.config = config_;
    env_.fs = fs_.get();
    env_.state = &primary_state_;
    env_.clock = &clock_;
    current_ = Scan();
  }

  std::shared_ptr<const Manifest> Scan() {
    PathFilter none;
    return std::make_shared<const Manifest>(ScanTree(fs_.get(), &none));
  }

  SyncSession& AddBackup(const std::string& id) {
    KeyEntry k;
    k.epoch = 1;
    RandomBytes(k.key.data(), k.key.size());
    EXPECT_TRUE(KeyStore(&primary_state_).Put(id, k).ok());
    EXPECT_TRUE(KeyStore(&backup_state_).Put(id, k).ok());
    auto ch = SecureChannel::Create(&backup_state_, "home", id, false);
    EXPECT_TRUE(ch.ok());
    (*ch)->set_primary("hub-p");
    (*ch)->set_term(1);
    backup_channels_[id] = std::move(ch).value();
    SyncSession::Context ctx;
    ctx.env = &env_;
    ctx.topics = &topics_;
    ctx.outbox = &outbox_;
    ctx.filter = &filter_;
    ctx.policies = &policies_;
    ctx.current = &current_;
    ctx.claim = &claim_;
    ctx.fenced = [this](const Claim& c) { fenced_by_ = c; };
    ctx.status_changed = [] {};
    ctx.emit = [this](Event e) { events_.push_back(e.type); };
    ctx.join = [this](const SyncSession::DeltaKey& key) -> std::unique_ptr<DeltaReader> {
      for (auto& s : sessions_) {
        if (auto r = s->Join(key)) return r;
      }
      return nullptr;
    };
    sessions_.push_back(std::make_unique<SyncSession>(id, std::move(ctx)));
    return *sessions_.back();
  }

  // The messages sent to `id` since the last call, opened with its key.
  std::vector<Opened> Take(const std::string& id, const std::string& kind) {
    std::vector<Opened> out;
    std::vector<Message> rest;
    for (Message& m : transport_.sent) {
      if (m.topic != "hubsync/v1/home/gw/" + id + "/" + kind) {
        rest.push_back(std::move(m));
        continue;
      }
      auto o = backup_channels_[id]->Open(m.payload);
      EXPECT_TRUE(o.ok()) << o.status().ToString();
      if (o.ok()) out.push_back(std::move(o).value());
    }
    transport_.sent = std::move(rest);
    return out;
  }

  // The backup answers a request with its whole manifest.
  void AnswerRequest(SyncSession& s, const Opened& req, const Manifest& theirs) {
    ManifestHeader h;
    h.root = theirs.root();
    h.count = static_cast<uint32_t>(theirs.size());
    auto chunks = EncodeManifestChunks(h, theirs, 16384 - kEnvelopeOverhead - 1024);
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto sealed = backup_channels_[s.id()]->Seal(MsgKind::kManifestRes, req.header.transfer,
                                                   static_cast<uint32_t>(i),
                                                   i + 1 == chunks.size(), chunks[i]);
      ASSERT_TRUE(sealed.ok());
      Message m;
      m.topic = "hubsync/v1/home/gw/" + s.id() + "/manifest/res";
      m.payload = *sealed;
      s.OnSealed(false, m);
    }
  }

  void SendAck(SyncSession& s, uint64_t transfer, const Ack& a) {
    auto sealed = backup_channels_[s.id()]->Seal(MsgKind::kAck, transfer, 0,
                                                 a.kind != Ack::Kind::kProgress, EncodeAck(a));
    ASSERT_TRUE(sealed.ok());
    Message m;
    m.topic = "hubsync/v1/home/gw/" + s.id() + "/ack";
    m.payload = *sealed;
    s.OnSealed(true, m);
  }

  // Plays a backup through a whole delta: acks every chunk as it comes, then
  // says it holds `root`. The records of the delta, in order.
  std::vector<DeltaRecord> Receive(SyncSession& s, const Digest& root) {
    std::vector<DeltaRecord> records;
    std::vector<std::string> plains;
    uint64_t transfer = 0;
    for (int rounds = 0; rounds < 1000; ++rounds) {
      std::vector<Opened> chunks = Take(s.id(), "delta");
      if (chunks.empty()) break;
      for (Opened& o : chunks) {
        transfer = o.header.transfer;
        plains.push_back(std::move(o.plain));
        std::vector<DeltaRecord> recs;
        EXPECT_TRUE(DecodeRecords(plains.back(), &recs).ok());
        records.insert(records.end(), recs.begin(), recs.end());
        Ack a;
        if (o.header.last) {
          a.kind = Ack::Kind::kDone;
          a.root = root;
        } else {
          a.kind = Ack::Kind::kProgress;
          a.chunk = o.header.chunk;
        }
        SendAck(s, transfer, a);
      }
    }
    kept_.push_back(std::move(plains));  // records view into them
    return records;
  }

  TempDir data_;
  Config config_;
  std::unique_ptr<FaultFs> fs_;
  MemoryStateStore primary_state_, backup_state_;
  ManualClock clock_;
  EngineEnv env_;
  Claim claim_{1, "hub-p"};
  Claim fenced_by_;
  Topics topics_{Config()};
  RecordingTransport transport_;
  Outbox outbox_{&transport_};
  PathFilter filter_;
  PolicySchedule policies_{Policy{true, 0, 0}, 0};
  std::shared_ptr<const Manifest> current_;
  std::vector<std::unique_ptr<SyncSession>> sessions_;
  std::map<std::string, std::unique_ptr<SecureChannel>> backup_channels_;
  std::vector<std::string> events_;
  std::vector<std::vector<std::string>> kept_;
};

TEST_F(SyncSessionTest, AFirstSyncAsksForTheManifestThenAChangeGoesAtOnceOnTheKnownRoot) {
  topics_ = Topics(config_);
  SyncSession& s = AddBackup("hub-b");
  Manifest empty;
  s.OnPresence(true, "behind", ToHex(empty.root()));
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  std::vector<Opened> req = Take("hub-b", "manifest/req");
  ASSERT_EQ(req.size(), 1u) << "no tree known: the exchange first";
  auto decoded = DecodeManifestRequest(req[0].plain, req[0].header.transfer);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->expect.empty());
  AnswerRequest(s, req[0], empty);
  std::vector<DeltaRecord> first = Receive(s, current_->root());
  ASSERT_FALSE(first.empty());
  EXPECT_NE(first.front().kind, RecKind::kBase) << "a delta after an exchange has no precondition";
  EXPECT_TRUE(s.Holds(current_->root()));
  EXPECT_FALSE(s.busy());

  // A change: the delta goes at once, applied only onto the root it knows.
  Digest before = current_->root();
  WriteFile(data_.Sub("config/hub.json"), "{\"name\":\"home 2\"}");
  current_ = Scan();
  s.Want();
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  EXPECT_TRUE(Take("hub-b", "manifest/req").empty()) << "nothing in doubt: no request";
  std::vector<DeltaRecord> second = Receive(s, current_->root());
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second.front().kind, RecKind::kBase);
  EXPECT_EQ(second.front().root, before);
  EXPECT_TRUE(s.Holds(current_->root()));
}

// Issue 11: a clustered broker may keep a backup's retained status on
// another node, so after a (re)connect the primary asks every backup
// directly instead of waiting to see its status.
TEST_F(SyncSessionTest, AfterAReconnectEveryBackupIsAskedDirectlyWithoutItsStatus) {
  topics_ = Topics(config_);
  SyncSession& here = AddBackup("hub-b1");
  SyncSession& away = AddBackup("hub-b2");
  for (auto& s : sessions_) s->Reconnected(clock_.NowMs());  // no status seen from either
  for (auto& s : sessions_) s->Tick(clock_.NowMs(), true, INT64_MAX);
  EXPECT_TRUE(transport_.sent.empty()) << "retained policies and statuses come first";
  clock_.Advance(SyncSession::kProbeDelayMs);
  for (auto& s : sessions_) s->Tick(clock_.NowMs(), true, INT64_MAX);
  std::vector<Opened> req = Take("hub-b1", "manifest/req");
  ASSERT_EQ(req.size(), 1u) << "asked without a status";
  EXPECT_EQ(Take("hub-b2", "manifest/req").size(), 1u);
  EXPECT_FALSE(here.busy()) << "not known to be there yet: not counted as syncing";
  Manifest empty;
  AnswerRequest(here, req[0], empty);
  EXPECT_TRUE(here.busy()) << "its answer shows it is there";
  Receive(here, current_->root());
  EXPECT_TRUE(here.Holds(current_->root()));

  // The one that never answers is asked again, then left without an error
  // until its status shows it.
  int64_t end = clock_.NowMs() + PrimaryEngine::kPhaseTimeoutMs + 1000;
  size_t asked = 0;
  while (clock_.NowMs() < end) {
    clock_.Advance(100);
    away.Tick(clock_.NowMs(), true, INT64_MAX);
    asked += Take("hub-b2", "manifest/req").size();
  }
  EXPECT_GE(asked, 2u);
  EXPECT_FALSE(away.busy());
  EXPECT_EQ(away.error(), "") << "silence after a reconnect is no failure";
  EXPECT_TRUE(std::find(events_.begin(), events_.end(), "error") == events_.end());
  clock_.Advance(60000);
  away.Tick(clock_.NowMs(), true, INT64_MAX);
  EXPECT_TRUE(Take("hub-b2", "manifest/req").empty()) << "waits for its status now";
  away.OnPresence(true, "behind", ToHex(empty.root()));
  away.Tick(clock_.NowMs(), true, INT64_MAX);
  EXPECT_EQ(Take("hub-b2", "manifest/req").size(), 1u);
}

// A backup whose status we see is never asked blindly: gone, it is left
// alone; back, it is asked at once (not at the next repeat of a request it
// never got).
TEST_F(SyncSessionTest, ABackupSeenThroughItsStatusIsAskedOnlyWhenThere) {
  topics_ = Topics(config_);
  SyncSession& s = AddBackup("hub-b1");
  Manifest empty;
  s.Reconnected(clock_.NowMs());
  s.OnPresence(true, "behind", ToHex(empty.root()));
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  std::vector<Opened> req = Take("hub-b1", "manifest/req");
  ASSERT_EQ(req.size(), 1u);
  s.OnPresence(false, "offline", "");  // killed before it answered
  clock_.Advance(SyncSession::kProbeDelayMs);
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  EXPECT_TRUE(Take("hub-b1", "manifest/req").empty()) << "no request to a backup known to be away";
  s.OnPresence(true, "behind", ToHex(empty.root()));
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  req = Take("hub-b1", "manifest/req");
  ASSERT_EQ(req.size(), 1u) << "asked at once when back";
  AnswerRequest(s, req[0], empty);
  Receive(s, current_->root());
  EXPECT_TRUE(s.Holds(current_->root()));
}

// Asked blindly while it was still starting: when its birth arrives, it is
// asked again at once, not at the next repeat of the request it missed.
TEST_F(SyncSessionTest, ABackupThatAppearsDuringTheBlindRequestIsAskedAgainAtOnce) {
  topics_ = Topics(config_);
  SyncSession& s = AddBackup("hub-b1");
  s.Reconnected(clock_.NowMs());
  clock_.Advance(SyncSession::kProbeDelayMs);
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  ASSERT_EQ(Take("hub-b1", "manifest/req").size(), 1u) << "the blind request, missed";
  Manifest empty;
  s.OnPresence(true, "behind", ToHex(empty.root()));
  s.Tick(clock_.NowMs(), true, INT64_MAX);
  std::vector<Opened> req = Take("hub-b1", "manifest/req");
  ASSERT_EQ(req.size(), 1u) << "asked again with no time passed";
  AnswerRequest(s, req[0], empty);
  Receive(s, current_->root());
  EXPECT_TRUE(s.Holds(current_->root()));
}

TEST_F(SyncSessionTest, BackupsAtTheSameTreeShareOneReadOfTheDelta) {
  topics_ = Topics(config_);
  std::vector<SyncSession*> all = {&AddBackup("hub-b1"), &AddBackup("hub-b2"),
                                   &AddBackup("hub-b3")};
  Manifest empty;
  for (SyncSession* s : all) {
    s->OnPresence(true, "behind", ToHex(empty.root()));
    s->Tick(clock_.NowMs(), true, INT64_MAX);
    std::vector<Opened> req = Take(s->id(), "manifest/req");
    ASSERT_EQ(req.size(), 1u);
    AnswerRequest(*s, req[0], empty);
  }
  for (SyncSession* s : all) Receive(*s, current_->root());
  for (SyncSession* s : all) ASSERT_TRUE(s->Holds(current_->root()));

  // A new large file: one read of it for the three.
  WriteFile(data_.Sub("db/new.bin"), RandomBytesString(120 * 1024, 9));
  current_ = Scan();
  int reads = fs_->reads;
  for (SyncSession* s : all) {
    s->Want();
    s->Tick(clock_.NowMs(), true, INT64_MAX);
  }
  std::vector<std::vector<DeltaRecord>> got;
  for (SyncSession* s : all) got.push_back(Receive(*s, current_->root()));
  int shared_reads = fs_->reads - reads;
  for (SyncSession* s : all) EXPECT_TRUE(s->Holds(current_->root())) << s->id();
  for (size_t i = 1; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), got[0].size());
    for (size_t j = 0; j < got[0].size(); ++j) {
      EXPECT_EQ(got[i][j].kind, got[0][j].kind);
      EXPECT_EQ(got[i][j].data, got[0][j].data);
    }
  }
  // A change of the same shape to one backup alone reads as much.
  WriteFile(data_.Sub("db/new2.bin"), RandomBytesString(120 * 1024, 10));
  current_ = Scan();
  reads = fs_->reads;
  all[0]->Want();
  all[0]->Tick(clock_.NowMs(), true, INT64_MAX);
  Receive(*all[0], current_->root());
  EXPECT_TRUE(all[0]->Holds(current_->root()));
  EXPECT_GT(shared_reads, 0);
  EXPECT_EQ(shared_reads, fs_->reads - reads) << "three backups, one read";

  // Now hub-b1 is a change ahead of the others: the next delta differs.
  WriteFile(data_.Sub("config/hub.json"), "{\"name\":\"home 3\"}");
  current_ = Scan();
  for (size_t i : {1, 0, 2}) {
    all[i]->Want();
    all[i]->Tick(clock_.NowMs(), true, INT64_MAX);
  }
  auto names = [](const std::vector<DeltaRecord>& records) {
    std::set<std::string> out;
    for (const DeltaRecord& r : records) {
      if (r.kind == RecKind::kFile) out.insert(std::string(r.path));
    }
    return out;
  };
  std::set<std::string> ahead = names(Receive(*all[0], current_->root()));
  std::set<std::string> behind = names(Receive(*all[1], current_->root()));
  EXPECT_EQ(ahead, std::set<std::string>({"config/hub.json"}));
  EXPECT_EQ(behind, std::set<std::string>({"config/hub.json", "db/new2.bin"}));
  EXPECT_EQ(names(Receive(*all[2], current_->root())), behind);
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
