#include "hubsync/policy.h"

#include <gtest/gtest.h>

#include <climits>

namespace hubsync {
namespace {

ModulePolicy Parse(const std::string& json) {
  auto p = ParseModulePolicy(json);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : ModulePolicy{};
}

std::string Problem(const std::string& json) {
  auto p = ParseModulePolicy(json);
  EXPECT_FALSE(p.ok()) << json;
  return p.ok() ? "" : p.status().message();
}

Policy Default(bool on_change, int64_t delay_ms, int64_t period_s) {
  Policy p;
  p.on_change = on_change;
  p.delay_ms = delay_ms;
  p.period_s = period_s;
  return p;
}

TEST(PolicyParseTest, ReadsEveryFieldWithModuleDefaults) {
  ModulePolicy p = Parse(R"({"paths":["devices/**","scenes/**"],"on_change":true,
      "delay_ms":2000,"period_s":600,"exclude":["**/*.cache"]})");
  EXPECT_EQ(p.paths, (std::vector<std::string>{"devices/**", "scenes/**"}));
  EXPECT_TRUE(p.when.on_change);
  EXPECT_EQ(p.when.delay_ms, 2000);
  EXPECT_EQ(p.when.period_s, 600);
  EXPECT_EQ(p.exclude, std::vector<std::string>{"**/*.cache"});
  ModulePolicy d = Parse(R"({"paths":["x/**"]})");
  EXPECT_TRUE(d.when.on_change);
  EXPECT_EQ(d.when.delay_ms, 0);
  EXPECT_EQ(d.when.period_s, 0);
}

TEST(PolicyParseTest, InvalidPoliciesNameTheProblem) {
  EXPECT_NE(Problem("not json").find("invalid JSON"), std::string::npos);
  EXPECT_NE(Problem("[1]").find("object"), std::string::npos);
  EXPECT_NE(Problem(R"({"on_change":true})").find("paths"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":[]})").find("paths"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":"x"})").find("paths"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"delay":5})").find("delay: unknown key"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"delay_ms":-1})").find("delay_ms"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"delay_ms":"5"})").find("delay_ms"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"period_s":1e9})").find("period_s"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"on_change":1})").find("on_change"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["/etc/**"]})").find("leading /"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["a/../b"]})").find(".."), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"exclude":[""]})").find("exclude"), std::string::npos);
  EXPECT_NE(Problem(R"({"paths":["x"],"on_change":false})").find("never sync"), std::string::npos);
}

TEST(PolicyParseTest, HashIgnoresHowTheJsonWasWritten) {
  ModulePolicy a = Parse(R"({"paths":["d/**"],"delay_ms":5})");
  ModulePolicy b = Parse(R"({ "delay_ms" : 5, "on_change": true, "paths" : [ "d/**" ], "exclude": [] })");
  ModulePolicy c = Parse(R"({"paths":["d/**"],"delay_ms":6})");
  EXPECT_EQ(PolicyHash(a), PolicyHash(b));
  EXPECT_NE(PolicyHash(a), PolicyHash(c));
  EXPECT_EQ(PolicyHash(a).size(), 16u);
}

class ScheduleTest : public ::testing::Test {
 protected:
  PolicySchedule::Due Poll(int64_t now) { return s_->Poll(now, &next_); }
  void Make(Policy def) { s_ = std::make_unique<PolicySchedule>(def, 0); }
  std::unique_ptr<PolicySchedule> s_;
  int64_t next_ = 0;
};

TEST_F(ScheduleTest, OnChangeSyncsAtOnceAndNothingIsDueOtherwise) {
  Make(Default(true, 0, 0));
  EXPECT_FALSE(Poll(10).sync);
  EXPECT_EQ(next_, INT64_MAX);
  s_->OnChanged({"a.json"}, 20);
  EXPECT_TRUE(Poll(20).sync);
  EXPECT_FALSE(Poll(21).sync) << "one sync per change";
}

TEST_F(ScheduleTest, DelayGivesOneSyncAfterABurst) {
  Make(Default(true, 1000, 0));
  s_->OnChanged({"a"}, 0);
  EXPECT_FALSE(Poll(0).sync);
  EXPECT_EQ(next_, 1000);
  s_->OnChanged({"b"}, 600);
  EXPECT_FALSE(Poll(1000).sync) << "the burst goes on: wait from its last change";
  EXPECT_EQ(next_, 1600);
  EXPECT_TRUE(Poll(1600).sync);
  EXPECT_FALSE(Poll(5000).sync);
}

TEST_F(ScheduleTest, HeldUntilSaysWhenHeldChangesAreDue) {
  Make(Default(true, 1000, 0));
  EXPECT_EQ(s_->HeldUntil(), INT64_MAX) << "nothing held";
  s_->OnChanged({"a"}, 0);
  s_->OnChanged({"b"}, 600);
  EXPECT_EQ(s_->HeldUntil(), 1600);
  EXPECT_TRUE(Poll(1600).sync);
  EXPECT_EQ(s_->HeldUntil(), INT64_MAX);
  // Only a period brings changes that neither on_change nor a delay sends.
  Make(Default(false, 0, 60));
  s_->OnChanged({"a"}, 5);
  EXPECT_EQ(s_->HeldUntil(), 60000);
}

TEST_F(ScheduleTest, ASteadyStreamCannotPostponeTheDelayedSyncPastTheCap) {
  Make(Default(true, 1000, 0));
  int syncs = 0;
  int64_t first_sync = -1;
  for (int64_t t = 0; t <= 10000; t += 100) {  // a change every 100 ms
    s_->OnChanged({"db/x"}, t);
    if (Poll(t).sync) {
      ++syncs;
      if (first_sync < 0) first_sync = t;
    }
  }
  EXPECT_EQ(first_sync, MaxDelayMs(1000));
  EXPECT_EQ(MaxDelayMs(1000), 4000);
  EXPECT_EQ(MaxDelayMs(100), 1100);
  EXPECT_GE(syncs, 2);
}

TEST_F(ScheduleTest, PeriodChecksEveryPeriodWithoutChanges) {
  Make(Default(true, 0, 60));
  EXPECT_FALSE(Poll(0).check);
  EXPECT_EQ(next_, 60000);
  EXPECT_TRUE(Poll(60000).check);
  EXPECT_EQ(next_, 120000);
  EXPECT_FALSE(Poll(60001).check);
  EXPECT_TRUE(Poll(120500).check);
}

TEST_F(ScheduleTest, ModulesMatchByNameOrderAndTheRestIsDefault) {
  Make(Default(true, 0, 0));
  s_->Set("b-scenes", Parse(R"({"paths":["scenes/**","shared/**"]})"), 0);
  s_->Set("a-devices", Parse(R"({"paths":["devices/**","shared/**"]})"), 0);
  EXPECT_EQ(s_->ModuleOf("devices/lamp.json"), "a-devices");
  EXPECT_EQ(s_->ModuleOf("devices"), "a-devices") << "the directory itself";
  EXPECT_EQ(s_->ModuleOf("scenes/x/y.json"), "b-scenes");
  EXPECT_EQ(s_->ModuleOf("shared/z"), "a-devices") << "first by name wins";
  EXPECT_EQ(s_->ModuleOf("users/u.json"), "");
  EXPECT_TRUE(s_->Remove("a-devices"));
  EXPECT_FALSE(s_->Remove("a-devices"));
  EXPECT_EQ(s_->ModuleOf("shared/z"), "b-scenes");
}

TEST_F(ScheduleTest, TwoModulesWithDifferentTimingAndADefault) {
  Make(Default(false, 0, 3600));  // default: only hourly
  s_->Set("devices", Parse(R"({"paths":["devices/**"]})"), 0);                  // at once
  s_->Set("db", Parse(R"({"paths":["db/**"],"delay_ms":5000})"), 0);           // debounced
  s_->OnChanged({"users/u.json"}, 100);
  EXPECT_FALSE(Poll(100).sync) << "the default waits for its period";
  s_->OnChanged({"db/main.sqlite"}, 200);
  EXPECT_FALSE(Poll(200).sync);
  EXPECT_EQ(next_, 5200);
  s_->OnChanged({"devices/lamp.json"}, 300);
  EXPECT_TRUE(Poll(300).sync) << "devices sync at once";
  EXPECT_FALSE(s_->Held("devices/lamp.json"));
  EXPECT_TRUE(s_->Held("db/main.sqlite")) << "the db change waits for its own delay";
  EXPECT_TRUE(s_->Held("users/u.json")) << "the default waits for its period";
  EXPECT_EQ(next_, 5200);
  EXPECT_TRUE(Poll(5200).sync) << "the db change, when its delay ends";
  EXPECT_FALSE(s_->Held("db/main.sqlite"));
  s_->OnChanged({"db/main.sqlite"}, 6000);
  EXPECT_FALSE(Poll(10999).sync);
  EXPECT_TRUE(Poll(11000).sync);
  EXPECT_TRUE(s_->Held("users/u.json"));
  EXPECT_TRUE(Poll(3600 * 1000).check);
  EXPECT_FALSE(s_->AnyHeld()) << "a check carries everything";
}

// A sync's tree: what is due from the primary's tree, the backup's version
// of whatever a module still holds back.
TEST_F(ScheduleTest, TheDueTreeKeepsTheBackupsVersionOfHeldModules) {
  Make(Default(true, 0, 0));
  s_->Set("db", Parse(R"({"paths":["db/**"],"delay_ms":5000})"), 0);
  auto entry = [](const std::string& path, EntryType type, const std::string& content) {
    Entry e;
    e.path = path;
    e.type = type;
    e.mode = type == EntryType::kDir ? 0755 : 0644;
    e.digest = Sha256Of(content);
    return e;
  };
  Manifest backup = {entry("db", EntryType::kDir, ""), entry("db/main", EntryType::kFile, "v1"),
                     entry("old.json", EntryType::kFile, "x"),
                     entry("users", EntryType::kDir, "")};
  Manifest now = {entry("db", EntryType::kDir, ""), entry("db/main", EntryType::kFile, "v2"),
                  entry("db/new", EntryType::kFile, "n"), entry("users", EntryType::kDir, ""),
                  entry("users/ann.json", EntryType::kFile, "ann")};
  Manifest out;
  EXPECT_FALSE(DueTree(now, backup, *s_, &out)) << "nothing held: the whole tree";
  s_->OnChanged({"db/main", "db/new", "users/ann.json", "old.json"}, 100);
  Poll(100);  // the default is due at once; db waits
  ASSERT_TRUE(DueTree(now, backup, *s_, &out));
  std::vector<std::string> paths;
  for (const Entry& e : out) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"db", "db/main", "users", "users/ann.json"}));
  EXPECT_EQ(out[1].digest, Sha256Of("v1")) << "the backup's db, not the primary's";
  // A held directory that a due change needs as a parent: the whole tree.
  s_->Set("cfg", Parse(R"({"paths":["cfg"],"delay_ms":5000})"), 0);
  Manifest with_dir = now;
  with_dir.Put(entry("cfg", EntryType::kDir, ""));
  with_dir.Put(entry("cfg/a.json", EntryType::kFile, "a"));
  s_->OnChanged({"cfg", "cfg/a.json"}, 200);
  Poll(200);
  EXPECT_FALSE(DueTree(with_dir, backup, *s_, &out));
}

TEST_F(ScheduleTest, ReplacingAndRemovingPoliciesTakeEffectAtOnce) {
  Make(Default(true, 0, 0));
  s_->Set("db", Parse(R"({"paths":["db/**"],"delay_ms":5000})"), 0);
  s_->OnChanged({"db/x"}, 0);
  EXPECT_FALSE(Poll(0).sync);
  s_->Set("db", Parse(R"({"paths":["db/**"],"delay_ms":100})"), 50);
  EXPECT_TRUE(Poll(100).sync) << "the pending change follows the new delay";
  s_->OnChanged({"db/x"}, 200);
  EXPECT_FALSE(Poll(200).sync);
  EXPECT_TRUE(s_->Remove("db"));
  EXPECT_TRUE(Poll(200).sync) << "its pending change moved to the default (on_change)";
  s_->Set("p", Parse(R"({"paths":["p/**"],"period_s":10})"), 1000);
  EXPECT_EQ(next_, INT64_MAX) << "next_ is from the previous Poll";
  Poll(1000);
  EXPECT_EQ(next_, 11000) << "a new period starts when the policy arrives";
}

TEST_F(ScheduleTest, ExclusionsAreTheUnionAndHashesListEveryPolicy) {
  Make(Default(true, 0, 3600));
  s_->Set("a", Parse(R"({"paths":["a/**"],"exclude":["**/*.cache","tmp/**"]})"), 0);
  s_->Set("b", Parse(R"({"paths":["b/**"],"exclude":["**/*.cache"]})"), 0);
  EXPECT_EQ(s_->Exclusions({"**/*.tmp"}),
            (std::vector<std::string>{"**/*.tmp", "**/*.cache", "tmp/**"}));
  auto h = s_->Hashes();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h["default"], PolicyHash(Default(true, 0, 3600)));
  EXPECT_EQ(h["a"], s_->HashOf("a"));
  EXPECT_NE(h["a"], h["b"]);
}

TEST_F(ScheduleTest, AnOverflowCountsAsAChangeEverywhere) {
  Make(Default(false, 0, 60));
  s_->Set("d", Parse(R"({"paths":["d/**"],"delay_ms":500})"), 0);
  s_->OnChangedEverywhere(10);
  EXPECT_FALSE(Poll(10).sync);
  EXPECT_TRUE(Poll(510).sync);
}

}  // namespace
}  // namespace hubsync
