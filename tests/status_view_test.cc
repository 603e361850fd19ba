#include "hubsync/status_view.h"

#include <gtest/gtest.h>

namespace hubsync {
namespace {

GatewayStatus Gw(const std::string& role, const std::string& state) {
  GatewayStatus s;
  s.role = role;
  s.state = state;
  s.files = 12;
  s.bytes = 5 * 1024 * 1024;
  s.last_sync = "2026-11-25T10:01:02.123Z";
  s.key_epoch = role == "backup" ? 2 : 0;
  return s;
}

TEST(StatusViewTest, HumanUnits) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(50LL * 1024 * 1024), "50 MiB");
  EXPECT_EQ(HumanDuration(0), "0 s");
  EXPECT_EQ(HumanDuration(1500), "1.5 s");
  EXPECT_EQ(HumanDuration(45000), "45 s");
  EXPECT_EQ(HumanDuration(125000), "2 min");
  EXPECT_EQ(HumanDuration(7200000), "2 h");
  EXPECT_EQ(HumanDuration(3LL * 86400000), "3 d");
}

TEST(StatusViewTest, ProgressBar) {
  EXPECT_EQ(ProgressBar(0, 100, 10), "[----------]   0%");
  EXPECT_EQ(ProgressBar(45, 100, 10), "[####------]  45%");
  EXPECT_EQ(ProgressBar(100, 100, 10), "[##########] 100%");
  EXPECT_EQ(ProgressBar(500, 100, 4), "[####] 100%") << "clamped";
  EXPECT_EQ(ProgressBar(0, 0, 4), "[----]   0%") << "no division by zero";
}

TEST(StatusViewTest, TableHasOneRowPerGatewayPrimaryFirstAndABarWhileSyncing) {
  StatusRows rows;
  rows["hub-a"] = Gw("backup", "in_sync");
  GatewayStatus syncing = Gw("backup", "syncing");
  syncing.lag_ms = 3200;
  syncing.progress_done = 2 * 1024 * 1024;
  syncing.progress_total = 4 * 1024 * 1024;
  syncing.progress_files_done = 30;
  syncing.progress_files_total = 60;
  rows["hub-b"] = syncing;
  GatewayStatus failed = Gw("backup", "error");
  failed.error = "disk full";
  rows["hub-c"] = failed;
  rows["hub-z-primary"] = Gw("primary", "syncing");
  std::string t = FormatStatusTable(rows);
  EXPECT_LT(t.find("hub-z-primary"), t.find("hub-a")) << t;
  EXPECT_NE(t.find("hub-b                backup   syncing      -      12    5.0 MiB  2026-11-25T10:01:02Z    3.2 s    e2"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("[###############---------------]  50%  2.0 MiB of 4.0 MiB, 30 of 60 entries"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("    error: disk full"), std::string::npos);
  EXPECT_NE(t.find("3 backups: 1 in sync, 1 syncing, 1 not in sync"), std::string::npos) << t;
  EXPECT_EQ(FormatStatusTable({}).find("no gateway"), FormatStatusTable({}).find("(no") + 1);
}

TEST(StatusViewTest, InSyncOnlyWhenEveryBackupIs) {
  StatusRows rows;
  EXPECT_FALSE(AllBackupsInSync(rows)) << "no backup known";
  rows["p"] = Gw("primary", "in_sync");
  EXPECT_FALSE(AllBackupsInSync(rows));
  rows["a"] = Gw("backup", "in_sync");
  EXPECT_TRUE(AllBackupsInSync(rows));
  rows["b"] = Gw("backup", "offline");
  EXPECT_FALSE(AllBackupsInSync(rows));
}

TEST(StatusViewTest, WithoutAPrimaryNoBackupCanBeShownInSync) {
  StatusRows rows;
  rows["a"] = Gw("backup", "in_sync");
  EXPECT_FALSE(AllBackupsInSync(rows));
  EXPECT_NE(FormatStatusTable(rows).find("(no primary has published a status)"), std::string::npos);
}

TEST(StatusViewTest, ReconcileShowsConfiguredBackupsUnheardOfAndChecksRoots) {
  StatusRows rows;
  rows["p"] = Gw("primary", "behind");
  rows["p"].root = std::string(64, 'b');
  rows["a"] = Gw("backup", "in_sync");
  rows["a"].root = std::string(64, 'b');
  rows["c"] = Gw("backup", "in_sync");  // its retained status is stale: the primary moved on
  rows["c"].root = std::string(64, 'a');
  ReconcileStatus(&rows, {"a", "c", "d"});
  EXPECT_EQ(rows["a"].state, "in_sync");
  EXPECT_EQ(rows["c"].state, "behind");
  ASSERT_TRUE(rows.count("d"));
  EXPECT_EQ(rows["d"].state, "unknown");
  EXPECT_EQ(rows["d"].role, "backup");
  EXPECT_FALSE(AllBackupsInSync(rows));
  std::string t = FormatStatusTable(rows);
  EXPECT_NE(t.find("no status heard from it"), std::string::npos) << t;
  EXPECT_NE(t.find("3 backups: 1 in sync, 0 syncing, 1 unknown, 1 not in sync"), std::string::npos) << t;

  // Held back by a policy: pending, with when it is due.
  rows.erase("d");
  rows["p"].state = "pending";
  rows["p"].due = "2026-11-27T10:00:00.000Z";
  rows["c"].state = "in_sync";
  ReconcileStatus(&rows, {});
  EXPECT_EQ(rows["c"].state, "pending");
  t = FormatStatusTable(rows);
  EXPECT_NE(t.find("changes held back by a policy, due 2026-11-27T10:00:00Z"), std::string::npos) << t;
  EXPECT_NE(t.find("2 backups: 1 in sync, 0 syncing, 1 pending, 0 not in sync"), std::string::npos) << t;
  EXPECT_FALSE(AllBackupsInSync(rows));
}

TEST(StatusViewTest, JsonReportCarriesEveryStatusAndTheVerdict) {
  StatusRows rows;
  rows["p"] = Gw("primary", "in_sync");
  rows["p"].policies["default"] = "0123456789abcdef";
  rows["a"] = Gw("backup", "in_sync");
  std::string j = EncodeStatusReport(rows);
  EXPECT_EQ(j.rfind("{\"in_sync\":true,\"primary\":\"p\",\"term\":1,\"gateways\":{", 0), 0u) << j;
  EXPECT_NE(j.find("\"a\":{\"v\":1,\"role\":\"backup\",\"state\":\"in_sync\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"policies\":{\"default\":\"0123456789abcdef\"}"), std::string::npos) << j;
}

// SPEC 11: who is primary, and two hubs claiming it (split brain) is said
// and never "in sync"; a fenced primary does not count.
TEST(StatusViewTest, ThePrimaryIsNamedAndTwoClaimantsAreFlagged) {
  StatusRows rows;
  rows["hub-b1"] = Gw("primary", "in_sync");
  rows["hub-b1"].term = 2;
  rows["hub-p"] = Gw("primary", "fenced");
  rows["hub-p"].term = 2;
  rows["hub-p"].primary = "hub-b1";
  rows["hub-b2"] = Gw("backup", "in_sync");
  rows["hub-b2"].term = 2;
  rows["hub-b2"].primary = "hub-b1";
  EXPECT_EQ(Claimants(rows), std::vector<std::string>{"hub-b1"});
  EXPECT_TRUE(AllBackupsInSync(rows));
  std::string table = FormatStatusTable(rows);
  EXPECT_NE(table.find("primary: hub-b1 (term 2)"), std::string::npos) << table;
  EXPECT_EQ(table.find("WARNING"), std::string::npos) << table;

  // From the new primary's config, the old one is a backup (not in sync).
  StatusRows seen = rows;
  ReconcileStatus(&seen, {"hub-b2", "hub-p"});
  EXPECT_EQ(seen["hub-p"].role, "backup");
  EXPECT_FALSE(AllBackupsInSync(seen));

  rows["hub-p"].state = "in_sync";  // a returning primary that has not heard yet
  rows["hub-p"].term = 1;
  rows["hub-p"].primary = "hub-p";
  EXPECT_FALSE(AllBackupsInSync(rows));
  table = FormatStatusTable(rows);
  EXPECT_NE(table.find("primary: hub-b1 (term 2)"), std::string::npos) << "the higher term";
  EXPECT_NE(table.find("WARNING: 2 hubs claim to be primary: hub-b1 (term 2) hub-p (term 1)"),
            std::string::npos) << table;
  rows["hub-p"].term = 2;  // a tie: the smaller id wins
  EXPECT_EQ(CurrentPrimary(rows)->first, "hub-b1");
  rows["hub-b2"].primary = "hub-a";
  EXPECT_NE(FormatStatusTable(rows).find("follows hub-a (term 2)"), std::string::npos);
}

}  // namespace
}  // namespace hubsync
