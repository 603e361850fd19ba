// End to end: a real mosquitto, real hubsync processes, real directories.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "harness.h"
#include "home_fixture.h"
#include "hubsync/envelope.h"
#include "hubsync/messages.h"
#include "hubsync/paths.h"
#include "hubsync/transport.h"
#include "hubsync/wire.h"

namespace hubsync {
namespace {

using testing::Broker;
using testing::Gateway;
using testing::HomeTest;
using testing::HubData;
using testing::LockedHomeTest;
using testing::kConvergeMs;
using testing::Process;
using testing::Recorder;
using testing::Snapshot;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

TEST_F(HomeTest, PrimaryAndTwoBackupsConvergeThroughEveryKindOfChange) {
  MakeHome(2);
  HubData(primary_.data);
  WriteFile(backups_["hub-b2"].data + "/stale.json", "only on b2");  // backups differ
  WriteFile(backups_["hub-b1"].data + "/cache/local", "b1's own cache");
  StartAll();
  ASSERT_TRUE(AllConverged());
  EXPECT_EQ(testing::ReadFile(backups_["hub-b1"].data + "/cache/local"), "b1's own cache");

  const std::string& d = primary_.data;
  WriteFile(d + "/devices/lamp-2.json", R"({"type":"lamp"})");                 // add
  WriteFile(d + "/scenes/evening.json", R"({"lamp-1":{"on":false}})");          // edit
  unlink((d + "/users/alice.json").c_str());                                    // delete
  rename((d + "/config").c_str(), (d + "/settings").c_str());                   // rename dir
  WriteFile(d + "/a/b/c/d/e/f/deep file ü.json", "deep");                       // nested
  symlink("devices/lamp-2.json", (d + "/current-lamp").c_str());                // symlink
  WriteFile(d + "/empty.json", "");                                             // empty
  WriteFile(d + "/ignored.tmp", "excluded");
  ASSERT_TRUE(AllConverged());
  // Rename of a file and a type change.
  rename((d + "/devices/sensor-7.json").c_str(), (d + "/devices/sensor-8.json").c_str());
  unlink((d + "/empty.json").c_str());
  WriteFile(d + "/empty.json/now-a-dir", "x");
  ASSERT_TRUE(AllConverged());
  for (auto& [id, b] : backups_) {
    EXPECT_EQ(access((b.data + "/ignored.tmp").c_str(), F_OK), -1) << id;
    EXPECT_EQ(b.proc->Stop(), 0);
  }
  EXPECT_EQ(primary_.proc->Stop(), 0);
}

// The same home on the locked-down broker configuration that ships for hubs.

TEST_F(LockedHomeTest, SyncAndStatusWorkThroughPasswordsAndTheAcl) {
  MakeHome(2);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  WriteFile(primary_.data + "/devices/after.json", "x");
  unlink((primary_.data + "/users/alice.json").c_str());
  ASSERT_TRUE(AllConverged());
  // `hubsync status` with the read-only account: the broker binds client
  // ids to accounts, so a gateway's own account would take its session.
  std::string out;
  EXPECT_TRUE(WaitFor([&] {
    return Tool({"status", "-c", primary_.config, "--set", "broker.username=hub-viewer", "--set",
                 "broker.password_file=" + root_.Sub("broker/hub-viewer.pass")}, &out) == 0;
  }, 10000)) << out;
  EXPECT_EQ(primary_.proc->Log().find("lost the broker"), std::string::npos)
      << "the status command must not have kicked the primary off";
}

TEST_F(HomeTest, StoppedBackupCatchesUpAfterRestart) {
  MakeHome(2);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  Gateway& b2 = backups_["hub-b2"];
  ASSERT_EQ(b2.proc->Stop(), 0);
  WriteFile(primary_.data + "/devices/new.json", "while b2 was away");
  unlink((primary_.data + "/devices/lamp-1.json").c_str());
  ASSERT_TRUE(Converged(backups_["hub-b1"]));
  EXPECT_NE(Replicated(primary_.data), Replicated(b2.data));
  Start(b2, "backup");
  ASSERT_TRUE(AllConverged());
}

TEST_F(HomeTest, RestartedPrimaryResyncsEveryone) {
  MakeHome(1);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  ASSERT_EQ(primary_.proc->Stop(), 0);
  WriteFile(primary_.data + "/devices/while-primary-down.json", "x");
  Start(primary_, "primary");
  ASSERT_TRUE(AllConverged());
}

// Issue 11: a clustered broker may keep a backup's retained status on the
// node it was published on. A primary (re)starting elsewhere asks each
// backup directly instead of waiting for a status it may never see.
TEST_F(HomeTest, ARestartedPrimaryAsksBackupsDirectlyWithoutTheirRetainedStatus) {
  MakeHome(1);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  ASSERT_EQ(primary_.proc->Stop(), 0);
  // As on another node: the broker holds no status of the backup.
  Recorder rec(broker_->uri());
  Message forget;
  forget.topic = "hubsync/v1/home-1/gw/hub-b1/status";
  forget.retained = true;
  ASSERT_TRUE(rec.transport()->Publish(forget).ok());
  Recorder fresh(broker_->uri());
  ASSERT_TRUE(fresh.WaitForMessage("hubsync/v1/home-1/gw/hub-p/status"));
  ASSERT_FALSE(fresh.Saw(forget.topic)) << "the retained status is gone";
  WriteFile(primary_.data + "/devices/while-primary-down.json", "x");
  Start(primary_, "primary");
  ASSERT_TRUE(AllConverged());
  EXPECT_NE(primary_.proc->Log().find("no status seen from backup hub-b1 since connecting: "
                                      "asking it directly"),
            std::string::npos)
      << primary_.proc->Log();
}

TEST_F(HomeTest, BackupKilledMidSyncShowsNoPartialFileAndConvergesAfterRestart) {
  MakeHome(1);
  std::string big(96 << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  WriteFile(primary_.data + "/db/big.sqlite", big);
  Gateway& b = backups_["hub-b1"];
  StartAll();
  // Wait until the backup is streaming into staging, then kill it hard.
  ASSERT_TRUE(WaitFor([&] { return b.proc->Log().find("syncing") != std::string::npos ||
                                   Snapshot(b.data + "/.hubsync/staging").size() > 0; },
                      kConvergeMs));
  ASSERT_TRUE(WaitFor([&] {
    auto s = Snapshot(b.data + "/.hubsync/staging");
    for (auto& [p, v] : s) {
      if (v.size() > 1000) return true;  // some bytes staged
    }
    return false;
  }, kConvergeMs)) << b.proc->Log();
  b.proc->Kill(SIGKILL);
  // Nothing partial is visible: the file is absent or whole.
  struct stat st;
  if (stat((b.data + "/db/big.sqlite").c_str(), &st) == 0) {
    EXPECT_EQ(static_cast<size_t>(st.st_size), big.size());
  }
  Start(b, "backup");
  ASSERT_TRUE(AllConverged());
  EXPECT_TRUE(Snapshot(b.data + "/.hubsync/staging").empty());
}

TEST_F(HomeTest, SyncSurvivesABrokerKilledMidTransfer) {
  MakeHome(1);
  WriteFile(primary_.data + "/db/big.sqlite", std::string(64 << 20, 'x'));
  StartAll();
  Gateway& b = backups_["hub-b1"];
  ASSERT_TRUE(WaitFor([&] { return !Snapshot(b.data + "/.hubsync/staging").empty(); },
                      kConvergeMs));
  broker_->Kill9();
  broker_->Start();
  ASSERT_TRUE(broker_->up());
  ASSERT_TRUE(AllConverged());
}

TEST_F(HomeTest, LargeFileKeepsDaemonMemoryBounded) {
  MakeHome(1);
  {
    // 200 MiB written in pieces so the test itself stays small.
    FILE* f = fopen((primary_.data + "/db/huge.bin").c_str(), "wb");
    testing::MkdirP(primary_.data + "/db");
    if (!f) f = fopen((primary_.data + "/db/huge.bin").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string block(1 << 20, '\0');
    for (int i = 0; i < 200; ++i) {
      for (size_t j = 0; j < block.size(); j += 512) block[j] = static_cast<char>(i + j);
      fwrite(block.data(), 1, block.size(), f);
    }
    fclose(f);
  }
  Recorder rec(broker_->uri());
  StartAll();
  ASSERT_TRUE(AllConverged());
  // Progress (bytes done of total) showed in the backup's status on the way.
  bool saw_progress = false;
  for (const Message& m : rec.messages()) {
    saw_progress |= m.topic == "hubsync/v1/home-1/gw/hub-b1/status" &&
                    m.payload.find("\"progress\":{\"bytes_done\":") != std::string::npos;
  }
  EXPECT_TRUE(saw_progress);
  for (const Message& m : rec.messages()) {
    EXPECT_LE(m.payload.size(), 262144u) << m.topic;  // max_message_bytes
  }
  long primary_kb = primary_.proc->PeakRssKb();
  long backup_kb = backups_["hub-b1"].proc->PeakRssKb();
  RecordProperty("primary_peak_rss_kb", std::to_string(primary_kb));
  RecordProperty("backup_peak_rss_kb", std::to_string(backup_kb));
  std::printf("peak RSS after a 200 MiB file: primary %ld KiB, backup %ld KiB\n", primary_kb,
              backup_kb);
  EXPECT_GT(primary_kb, 0);
#ifdef __SANITIZE_ADDRESS__
  const long kLimitKb = 512 * 1024;  // shadow memory and quarantine, still << 200 MiB + slack
#else
  const long kLimitKb = 48 * 1024;   // a few 256 KiB chunks plus the libraries
#endif
  EXPECT_LT(primary_kb, kLimitKb);
  EXPECT_LT(backup_kb, kLimitKb);
}

TEST_F(HomeTest, NothingReadableOfNamesOrContentReachesTheBroker) {
  MakeHome(1);
  Recorder rec(broker_->uri());
  WriteFile(primary_.data + "/secret-name-XYZZY.json", "secret-content-PLUGH");
  StartAll();
  ASSERT_TRUE(AllConverged());
  bool saw_delta = false, saw_status = false, saw_event = false;
  // The primary's sync event arrives after the backup's final ack.
  EXPECT_TRUE(WaitFor([&] {
    saw_delta = saw_status = saw_event = false;
    for (const Message& m : rec.messages()) {
      saw_delta |= m.topic == "hubsync/v1/home-1/gw/hub-b1/delta";
      saw_status |= m.topic == "hubsync/v1/home-1/gw/hub-b1/status";
      saw_event |= m.topic == "hubsync/v1/home-1/events" &&
                   m.payload.find("\"sync\"") != std::string::npos;
    }
    return saw_delta && saw_status && saw_event;
  }, 10000)) << saw_delta << saw_status << saw_event << primary_.proc->Log();
  for (const Message& m : rec.messages()) {
    EXPECT_EQ(m.payload.find("XYZZY"), std::string::npos) << m.topic;
    EXPECT_EQ(m.payload.find("PLUGH"), std::string::npos) << m.topic;
  }
}

TEST_F(HomeTest, CraftedDeltaEscapingDataDirIsRefusedWithNothingApplied) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  WriteFile(b.data + "/existing.json", "untouched");
  TempDir outside;
  Start(b, "backup");
  Recorder rec(broker_->uri());
  ASSERT_TRUE(WaitFor([&] {
    for (auto& m : rec.messages()) {
      if (m.topic.find("hub-b1/status") != std::string::npos) return true;
    }
    return false;
  }, 10000));
  auto before = Snapshot(b.data);
  // An attacker holding the key (the worst case): a valid envelope whose
  // records try to write through a symlink pointing outside data_dir.
  auto state = NewPosixStateStore(primary_.state);
  auto ch = SecureChannel::Create(state.get(), "home-1", "hub-b1", true);
  ASSERT_TRUE(ch.ok()) << ch.status().ToString();
  (*ch)->set_primary("hub-p");
  (*ch)->set_term(1);
  std::string plain;
  DeltaRecord begin;
  begin.kind = RecKind::kBegin;
  EncodeRecord(begin, &plain);
  DeltaRecord link;
  link.kind = RecKind::kSymlink;
  link.path = "escape";
  link.target = outside.path();
  EncodeRecord(link, &plain);
  DeltaRecord file;
  file.kind = RecKind::kFile;
  file.path = "escape/owned";
  file.size = 3;
  file.digest = Sha256Of("pwn");
  file.mode = 0644;
  EncodeRecord(file, &plain);
  DeltaRecord data;
  data.kind = RecKind::kData;
  data.data = "pwn";
  EncodeRecord(data, &plain);
  DeltaRecord end;
  end.kind = RecKind::kEnd;
  EncodeRecord(end, &plain);
  auto sealed = (*ch)->Seal(MsgKind::kDelta, 99, 0, true, plain);
  ASSERT_TRUE(sealed.ok());
  Message m;
  m.topic = "hubsync/v1/home-1/gw/hub-b1/delta";
  m.payload = *sealed;
  ASSERT_TRUE(rec.transport()->Publish(m).ok());
  // The backup answers with an error ack and an error event that names the
  // refusal (not just any error).
  ASSERT_TRUE(WaitFor([&] {
    for (auto& msg : rec.messages()) {
      if (msg.topic == "hubsync/v1/home-1/events" &&
          msg.payload.find("\"type\":\"error\"") != std::string::npos &&
          msg.payload.find("a path's parent would not be a directory") != std::string::npos &&
          msg.payload.find("\"stage\":\"apply\"") != std::string::npos) {
        return true;
      }
    }
    return false;
  }, 10000)) << b.proc->Log();
  EXPECT_EQ(Snapshot(b.data), before);
  EXPECT_TRUE(Snapshot(outside.path()).empty());
  // The same message replayed is refused as a replay.
  ASSERT_TRUE(rec.transport()->Publish(m).ok());
  ASSERT_TRUE(WaitFor([&] {
    for (auto& msg : rec.messages()) {
      if (msg.payload.find("\"rejected\"") != std::string::npos) return true;
    }
    return false;
  }, 10000)) << b.proc->Log();
  EXPECT_EQ(Snapshot(b.data), before);
}

TEST_F(HomeTest, ANewKeyEpochFromKeygenTakesEffectWithoutRestarts) {
  MakeHome(1);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  Gateway& b = backups_["hub-b1"];
  Recorder rec(broker_->uri());
  std::string key = root_.Sub("rotated.key");
  ASSERT_EQ(Tool({"keygen", "-c", primary_.config, "--backup", "hub-b1", "--out", key}), 0);
  ASSERT_EQ(Tool({"keyimport", "-c", b.config, key}), 0);
  WriteFile(primary_.data + "/after-rotation.json", "new epoch");
  ASSERT_TRUE(AllConverged());
  // The delta came sealed under epoch 2, and the backup says so.
  EXPECT_TRUE(WaitFor([&] {
    for (const Message& m : rec.messages()) {
      if (m.topic == "hubsync/v1/home-1/gw/hub-b1/status" &&
          m.payload.find("\"state\":\"in_sync\"") != std::string::npos &&
          m.payload.find("\"key_epoch\":2") != std::string::npos) {
        return true;
      }
    }
    return false;
  }, 10000));
}

TEST_F(HomeTest, RetainedPoliciesGovernSyncsLive) {
  MakeHome(1);
  Gateway& b = backups_["hub-b1"];
  WriteFile(primary_.data + "/devices/lamp.json", "on");
  WriteFile(primary_.data + "/devices/lamp.cache", "scratch");
  WriteFile(primary_.data + "/scenes/evening.json", "dim");
  Recorder rec(broker_->uri());
  const std::string policy = "hubsync/v1/home-1/policy/";
  auto publish = [&](const std::string& module, const std::string& json) {
    Message m;
    m.topic = policy + module;
    m.payload = json;
    m.retained = true;
    ASSERT_TRUE(rec.transport()->Publish(m).ok());
  };
  auto on_backup = [&](const std::string& rel, const std::string& content) {
    return WaitFor([&] { return testing::ReadFile(b.data + "/" + rel) == content; }, kConvergeMs);
  };
  auto event = [&](const std::string& type, const std::string& needle) {
    return WaitFor([&] {
      for (const Message& m : rec.messages()) {
        if (m.topic == "hubsync/v1/home-1/events" && m.payload.find("\"type\":\"" + type + "\"") !=
            std::string::npos && m.payload.find(needle) != std::string::npos) return true;
      }
      return false;
    }, 10000);
  };
  // Retained before the primary starts: in force for the first sync.
  publish("devices", R"({"paths":["devices/**"],"exclude":["**/*.cache"]})");
  publish("db", R"({"paths":["db/**"],"delay_ms":1500})");
  StartAll();
  ASSERT_TRUE(on_backup("devices/lamp.json", "on"));
  ASSERT_TRUE(on_backup("scenes/evening.json", "dim"));
  EXPECT_NE(access((b.data + "/devices/lamp.cache").c_str(), F_OK), 0) << "excluded by policy";

  // Two modules, two timings: db waits for its delay after the last change.
  auto t0 = std::chrono::steady_clock::now();
  WriteFile(primary_.data + "/db/main.db", "v1");
  ASSERT_TRUE(on_backup("db/main.db", "v1"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500))
      << primary_.proc->Log();
  WriteFile(primary_.data + "/devices/lamp.json", "off");
  ASSERT_TRUE(on_backup("devices/lamp.json", "off"));

  // A period (which checks everything: it would have carried the db change
  // early) repairs a file edited by hand on the backup.
  publish("scenes", R"({"paths":["scenes/**"],"period_s":1})");
  ASSERT_TRUE(event("policy", "\"module\":\"scenes\""));
  WriteFile(b.data + "/scenes/evening.json", "edited on the backup");
  ASSERT_TRUE(on_backup("scenes/evening.json", "dim"));

  // A live change, an invalid policy (refused, the previous stays), a removal.
  publish("db", R"({"paths":["db/**"],"delay_ms":0})");
  ASSERT_TRUE(event("policy", "\"action\":\"changed\""));
  publish("db", R"({"paths":["db/**"],"delay_ms":"later"})");
  ASSERT_TRUE(event("rejected", "delay_ms: must be an integer"));
  t0 = std::chrono::steady_clock::now();
  WriteFile(primary_.data + "/db/main.db", "v2");
  ASSERT_TRUE(on_backup("db/main.db", "v2"));
  publish("devices", "");
  ASSERT_TRUE(event("policy", "\"action\":\"removed\""));
  ASSERT_TRUE(on_backup("devices/lamp.cache", "scratch")) << "no longer excluded";

  // The primary's status names the policies in force.
  ASSERT_TRUE(WaitFor([&] {
    for (const Message& m : rec.messages()) {
      if (m.topic != "hubsync/v1/home-1/gw/hub-p/status") continue;
      auto st = DecodeStatus(m.payload);
      if (st.ok() && st->policies.size() == 3 && st->policies.count("db") &&
          st->policies.count("scenes") && st->policies.count("default")) return true;
    }
    return false;
  }, 10000));
}

// Found by the systemd test: a backup restarted while nothing changed said
// "behind" for good, since the primary, knowing its tree, sent nothing.
TEST_F(HomeTest, ABackupRestartedWithNothingChangedIsInSyncAgain) {
  MakeHome(1);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  std::string out;
  auto status = [&] { return Tool({"status", "-c", primary_.config}, &out); };
  ASSERT_TRUE(WaitFor([&] { return status() == 0; }, kConvergeMs)) << out;
  Gateway& b = backups_["hub-b1"];
  ASSERT_EQ(b.proc->Stop(), 0);
  ASSERT_TRUE(WaitFor([&] { return status() == 3 && out.find("offline") != std::string::npos; },
                      10000)) << out;
  Start(b, "backup");
  ASSERT_TRUE(WaitFor([&] { return status() == 0; }, 10000)) << out << primary_.proc->Log();
}

TEST_F(HomeTest, StatusCommandReportsEveryGateway) {
  MakeHome(2);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  std::string out;
  ASSERT_TRUE(WaitFor([&] { return Tool({"status", "-c", primary_.config}, &out) == 0; },
                      kConvergeMs))
      << out;
  EXPECT_NE(out.find("hub-b1"), std::string::npos);
  EXPECT_NE(out.find("hub-b2"), std::string::npos);
  EXPECT_NE(out.find("in_sync"), std::string::npos);
  EXPECT_NE(out.find("2 backups: 2 in sync, 0 syncing, 0 not in sync"), std::string::npos) << out;
  // For scripts: the same statuses as JSON, with the verdict.
  ASSERT_EQ(Tool({"status", "-c", primary_.config, "--json"}, &out), 0) << out;
  auto report_ok = out.rfind("{\"in_sync\":true,\"primary\":\"hub-p\",\"term\":1,\"gateways\":{", 0) == 0;
  EXPECT_TRUE(report_ok) << out;
  EXPECT_NE(out.find("\"hub-b1\":{\"v\":1,\"role\":\"backup\",\"state\":\"in_sync\""),
            std::string::npos) << out;
  EXPECT_NE(out.find("\"policies\":{\"default\":"), std::string::npos) << out;
  // --watch follows changes live until interrupted.
  std::string watch_log = root_.Sub("watch.log");
  Process watch({HUBSYNC_BINARY, "status", "-c", primary_.config, "--watch"}, watch_log);
  watch.Start();
  ASSERT_TRUE(WaitFor([&] { return testing::ReadFile(watch_log).find("2 in sync") != std::string::npos; },
                      10000));
  ASSERT_EQ(backups_["hub-b2"].proc->Stop(), 0);
  ASSERT_TRUE(WaitFor([&] {
    std::string w = testing::ReadFile(watch_log);
    return w.find("offline") != std::string::npos && w.find("Ctrl-C to stop") != std::string::npos;
  }, 10000)) << testing::ReadFile(watch_log);
  EXPECT_EQ(watch.Stop(), 3) << "a backup is offline when the watch ends";
  EXPECT_EQ(Tool({"status", "-c", primary_.config}, &out), 3);
  EXPECT_NE(out.find("offline"), std::string::npos) << out;
  EXPECT_EQ(Tool({"status", "-c", primary_.config, "--json"}, &out), 3);
  EXPECT_EQ(out.rfind("{\"in_sync\":false", 0), 0u) << out;
}

// Issue 11: the status command never says "in sync" falsely. A configured
// backup never heard from is unknown; changes a policy holds back leave the
// backups pending (with when they are due), not in sync.
TEST_F(HomeTest, StatusShowsUnheardBackupsAsUnknownAndHeldChangesAsPending) {
  MakeHome(2);
  HubData(primary_.data);
  Start(primary_, "primary");
  Start(backups_["hub-b1"], "backup");
  ASSERT_TRUE(Converged(backups_["hub-b1"]));
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    return Tool({"status", "-c", primary_.config}, &out) == 3 &&
           out.find("hub-b1               backup   in_sync") != std::string::npos;
  }, kConvergeMs)) << out;
  EXPECT_NE(out.find("hub-b2               backup   unknown"), std::string::npos) << out;
  EXPECT_NE(out.find("1 unknown"), std::string::npos) << out;

  Start(backups_["hub-b2"], "backup");
  ASSERT_TRUE(AllConverged());
  ASSERT_TRUE(WaitFor([&] { return Tool({"status", "-c", primary_.config}, &out) == 0; },
                      kConvergeMs)) << out;

  // A day's delay on the database: its change is held back.
  Recorder rec(broker_->uri());
  PublishPolicy("db", R"({"paths":["db/**"],"delay_ms":86400000})");
  ASSERT_TRUE(PrimaryLogs("policy db applied"));
  WriteFile(primary_.data + "/db/hub.sqlite", "held back");
  WriteFile(primary_.data + "/devices/new.json", "goes at once");
  for (auto& [id, b] : backups_) {
    ASSERT_TRUE(WaitFor([&] { return testing::ReadFile(b.data + "/devices/new.json") == "goes at once"; },
                        kConvergeMs));
  }
  ASSERT_TRUE(WaitFor([&] {
    return Tool({"status", "-c", primary_.config}, &out) == 3 &&
           out.find("2 backups: 0 in sync, 0 syncing, 2 pending") != std::string::npos;
  }, kConvergeMs)) << out;
  EXPECT_NE(out.find("changes held back by a policy, due 20"), std::string::npos) << out;
  EXPECT_NE(out.find("hub-p                primary  pending"), std::string::npos) << out;
  ASSERT_EQ(Tool({"status", "-c", primary_.config, "--json"}, &out), 3);
  EXPECT_NE(out.find("\"state\":\"pending\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"due\":\"20"), std::string::npos) << out;
  for (auto& [id, b] : backups_) {
    EXPECT_NE(testing::ReadFile(b.data + "/db/hub.sqlite"), "held back");
    // The backup says so itself (Home Assistant reads its status).
    std::string topic = "hubsync/v1/home-1/gw/" + id + "/status";
    EXPECT_TRUE(WaitFor([&] {
      for (const Message& m : rec.messages()) {
        if (m.topic == topic && m.payload.find("\"state\":\"pending\"") != std::string::npos &&
            m.payload.find("\"due\":\"20") != std::string::npos) return true;
      }
      return false;
    }, 10000)) << id << "\n" << b.proc->Log();
  }
}

// Issue 11: Home Assistant as it is today. Configs with default_entity_id,
// the primary's own device, configs published again when Home Assistant
// announces itself (its birth message), and a revoked backup's removed.
TEST_F(HomeTest, HomeAssistantGetsConfigsOnItsBirthAndLosesARevokedBackups) {
  const std::string ha_on = R"(,"homeassistant":{"discovery":true})";
  MakeHome(2, ha_on);
  HubData(primary_.data);
  StartAll();
  ASSERT_TRUE(AllConverged());
  Recorder ha(Recorder::Options(broker_->uri()), {"homeassistant/#"});
  const std::string b2_topic = "homeassistant/binary_sensor/hubsync_home-1_hub-b2/in_sync/config";
  const std::string p_topic = "homeassistant/sensor/hubsync_home-1_hub-p/state/config";
  auto count = [&](const std::string& topic, bool empty) {
    size_t n = 0;
    for (const Message& m : ha.messages()) n += m.topic == topic && m.payload.empty() == empty;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return count(b2_topic, false) == 1 && count(p_topic, false) == 1; }, 10000));
  EXPECT_TRUE(ha.WaitForPayloadWith({"\"default_entity_id\":\"sensor.hubsync_home_1_hub_p_state\""}, 1000));

  // Home Assistant restarts: its birth brings every config again.
  Message birth;
  birth.topic = "homeassistant/status";
  birth.payload = "online";
  ASSERT_TRUE(ha.transport()->Publish(birth).ok());
  ASSERT_TRUE(WaitFor([&] { return count(p_topic, false) == 2 && count(b2_topic, false) == 2; }, 10000))
      << primary_.proc->Log();

  // hub-b2 leaves the config: revoked at the primary's start, and its
  // entities are removed (empty retained configs).
  ASSERT_EQ(primary_.proc->Stop(), 0);
  std::string kept_config = MakeGateway("hub-p", {"hub-b1"}, ha_on).config;
  ASSERT_EQ(kept_config, primary_.config);
  Start(primary_, "primary");
  ASSERT_TRUE(WaitFor([&] { return count(b2_topic, true) == 1; }, 10000)) << primary_.proc->Log();
  Recorder later(Recorder::Options(broker_->uri()), {"homeassistant/#"});
  ASSERT_TRUE(later.WaitForMessage(p_topic));
  EXPECT_FALSE(later.Saw(b2_topic)) << "the broker no longer keeps its config";
  EXPECT_TRUE(later.Saw("homeassistant/binary_sensor/hubsync_home-1_hub-b1/in_sync/config"));
}

TEST_F(HomeTest, BadConfigurationExitsTwoNamingTheKey) {
  MakeHome(1);
  std::string out;
  EXPECT_EQ(Tool({"primary", "-c", primary_.config, "--set", "broker.uri=nonsense"}, &out), 2);
  EXPECT_NE(out.find("broker.uri"), std::string::npos) << out;
  EXPECT_EQ(Tool({"primary", "-c", primary_.config, "--set", "data_dir=/nonexistent/x"}, &out), 2);
  EXPECT_NE(out.find("data_dir"), std::string::npos) << out;
  EXPECT_EQ(Tool({"primary", "-c", primary_.config, "--set", "surprise=1"}, &out), 2);
  EXPECT_NE(out.find("surprise"), std::string::npos) << out;
  EXPECT_EQ(Tool({"primary", "-c", root_.Sub("missing.json")}, &out), 2);
  EXPECT_EQ(Tool({"frobnicate", "-c", primary_.config}, &out), 2);
  EXPECT_EQ(Tool({"primary"}, &out), 2);
  EXPECT_EQ(Tool({"--version"}, &out), 0);
}

}  // namespace
}  // namespace hubsync
