// Power cuts at every operation of an apply and of recovery (issue 9): on
// CrashFs (crash_fs.h), for representative deltas, power fails before each
// operation in turn; the tree is rebuilt from what was durable (and, for the
// reorderings POSIX allows, plus one or all but one of the operations not yet
// made durable); recovery runs (and is itself cut at each of its operations
// for the strict model); the tree must then be exactly the old or the new
// one, and the next sync must reach the new one.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <set>
#include <string>

#include "apply_util.h"
#include "crash_fs.h"
#include "hubsync/applier.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::CrashFs;
using testing::SyncOnce;
using testing::TempDir;
using testing::TreeOf;
using testing::WriteFile;
using Tree = std::map<std::string, std::string>;

std::string Noise(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i + seed) * 2654435761u >> 13);
  return s;
}

struct Delta {
  const char* name;
  std::function<void(const std::string&)> old_tree, new_tree;
};

const std::vector<Delta>& Deltas() {
  static const std::vector<Delta> deltas = {
      {"new files, edits, deletes, a rename, a retargeted link, a mode change",
       [](const std::string& d) {
         WriteFile(d + "/a.json", "{\"on\":true}");
         WriteFile(d + "/dir/b.json", "b");
         WriteFile(d + "/dir/c.json", "moves elsewhere, same bytes");
         WriteFile(d + "/keep.txt", "mode changes");
         symlink("a.json", (d + "/link").c_str());
       },
       [](const std::string& d) {
         WriteFile(d + "/a.json", "{\"on\":false}");
         WriteFile(d + "/moved/c.json", "moves elsewhere, same bytes");
         WriteFile(d + "/keep.txt", "mode changes");
         chmod((d + "/keep.txt").c_str(), 0600);
         WriteFile(d + "/new/deep/n.json", "new");
         mkdir((d + "/dir").c_str(), 0755);
         symlink("keep.txt", (d + "/link").c_str());
       }},
      {"a directory turned into a file, a file into a directory",
       [](const std::string& d) {
         WriteFile(d + "/x/1", "one");
         WriteFile(d + "/x/2", "two");
         WriteFile(d + "/y", "a file");
       },
       [](const std::string& d) {
         WriteFile(d + "/x", "a file now");
         WriteFile(d + "/y/1", "in a directory now");
       }},
      {"and back",
       [](const std::string& d) {
         WriteFile(d + "/x", "a file now");
         WriteFile(d + "/y/1", "in a directory now");
       },
       [](const std::string& d) {
         WriteFile(d + "/x/1", "one");
         WriteFile(d + "/x/2", "two");
         WriteFile(d + "/y", "a file");
       }},
      {"a large file edited in the middle and grown",
       [](const std::string& d) { WriteFile(d + "/db/hub.sqlite", Noise(1300000, 1)); },
       [](const std::string& d) {
         std::string big = Noise(1300000, 1);  // above kBlockDigestMinSize: block reuse
         big.replace(700000, 65536, Noise(65536, 7));
         WriteFile(d + "/db/hub.sqlite", big + "appended rows");
       }},
  };
  return deltas;
}

// Pending operations a variant keeps: none (strict), all (a process crash),
// and, as journaling filesystems behave, the metadata operations up to some
// point in order with the content written since the last barrier either all
// kept or all lost, or every metadata operation with one write lost
// (prefixes and writes are sampled when there are many).
std::vector<std::pair<std::string, std::function<bool(size_t)>>> Variants(const CrashFs& fs) {
  std::vector<std::pair<std::string, std::function<bool(size_t)>>> v;
  v.push_back({"only what was durable", [](size_t) { return false; }});
  v.push_back({"everything (process crash)", [](size_t) { return true; }});
  std::vector<size_t> meta, data;
  for (size_t i = 0; i < fs.pending(); ++i) (fs.pending_is_data(i) ? data : meta).push_back(i);
  size_t step = std::max<size_t>(1, meta.size() / 12);
  for (size_t p = 1; p < meta.size(); p += step) {
    size_t end = meta[p];  // metadata before this index persisted
    const CrashFs* f = &fs;
    for (bool with_data : {false, true}) {
      v.push_back({"metadata ops before pending op " + std::to_string(end) +
                       (with_data ? ", every write" : ", no write"),
                   [f, end, with_data](size_t i) {
                     return f->pending_is_data(i) ? with_data : i < end;
                   }});
    }
  }
  step = std::max<size_t>(1, data.size() / 8);
  for (size_t k = 0; k < data.size(); k += step) {
    size_t lost = data[k];
    v.push_back({"everything but write " + std::to_string(lost), [lost](size_t i) { return i != lost; }});
  }
  return v;
}

// Where `t` differs from the new tree (entries shortened), to name a failure.
std::string Differences(const Tree& t, const Tree& old_tree, const Tree& new_tree) {
  std::string out = "\nwhat differs from the new tree (path: now | new | old):";
  std::set<std::string> paths;
  for (const Tree* x : {&t, &new_tree}) for (const auto& [p, v] : *x) paths.insert(p);
  auto get = [](const Tree& x, const std::string& p) {
    auto it = x.find(p);
    return it == x.end() ? std::string("-") : it->second.substr(0, 24);
  };
  for (const std::string& p : paths) {
    if (get(t, p) != get(new_tree, p)) {
      out += "\n  " + p + ": " + get(t, p) + " | " + get(new_tree, p) + " | " + get(old_tree, p);
    }
  }
  return out;
}

struct Counts {
  size_t cuts = 0, variants = 0, recovery_cuts = 0;
};

void CutEverywhere(const Delta& delta, Counts* out) {
  Counts& counts = *out;
  TempDir old_src, new_src;
  delta.old_tree(old_src.path());
  delta.new_tree(new_src.path());
  CrashFs base;
  EXPECT_TRUE(SyncOnce(old_src.path(), &base).status.ok());
  base.CutPower([](size_t) { return true; });  // all of it durable
  const Tree old_tree = TreeOf(&base);
  CrashFs clean = base;
  EXPECT_TRUE(SyncOnce(new_src.path(), &clean).status.ok());
  const Tree new_tree = TreeOf(&clean);
  auto posix = NewPosixFileSystem(new_src.path());
  EXPECT_EQ(new_tree, TreeOf(posix.get())) << "the clean apply reaches the source tree";
  EXPECT_NE(old_tree, new_tree);
  const int total = clean.ops();
  PathFilter none;
  auto old_or_new = [&](const Tree& t) { return t == old_tree || t == new_tree; };

  for (int cut = 0; cut < total; ++cut) {
    CrashFs cut_fs = base;
    cut_fs.cut_at = cut;
    auto r = SyncOnce(new_src.path(), &cut_fs);
    // (The last operation is the best-effort removal of the committed
    // transfer's staging: cut there, the apply has already succeeded.)
    EXPECT_TRUE(r.status.code() == Status::Code::kAborted || (r.status.ok() && cut == total - 1))
        << "cut " << cut << ": " << r.status.ToString();
    ++counts.cuts;
    for (const auto& [what, keep] : Variants(cut_fs)) {
      CrashFs after = cut_fs;
      after.CutPower(keep);
      ++counts.variants;
      Applier::Recovery rec;
      Status s = Applier(&after, &none).Recover(&rec);
      ASSERT_TRUE(s.ok()) << delta.name << ": cut before op " << cut << ", " << what << ": "
                          << s.ToString();
      ASSERT_TRUE(old_or_new(TreeOf(&after)))
          << delta.name << ": cut before op " << cut << ", " << what
          << ": a tree that is neither old nor new" << Differences(TreeOf(&after), old_tree, new_tree);
    }
    // Strict model: recovery itself is cut at each of its operations.
    CrashFs strict = cut_fs;
    strict.CutPower([](size_t) { return false; });
    for (int rcut = 0;; ++rcut) {
      CrashFs again = strict;
      again.cut_at = rcut;
      if (Applier(&again, &none).Recover().ok()) break;  // recovery has fewer ops than rcut
      ++counts.recovery_cuts;
      again.CutPower([](size_t) { return false; });
      Status s = Applier(&again, &none).Recover();
      ASSERT_TRUE(s.ok()) << delta.name << ": cut at " << cut << ", recovery cut at " << rcut
                          << ": " << s.ToString();
      ASSERT_TRUE(old_or_new(TreeOf(&again)))
          << delta.name << ": cut at " << cut << ", recovery cut at " << rcut
          << Differences(TreeOf(&again), old_tree, new_tree);
      ASSERT_LT(rcut, 10000);
    }
    // And the next sync converges.
    Status next = SyncOnce(new_src.path(), &strict).status;
    EXPECT_TRUE(next.ok()) << delta.name << ": cut at " << cut << ": the next sync: " << next.ToString();
    EXPECT_EQ(TreeOf(&strict), new_tree) << delta.name << ": cut at " << cut;
  }
}

TEST(CrashTest, PowerCutAtEveryOperationLeavesOldOrNewAfterRecovery) {
  Counts all;
  for (const Delta& d : Deltas()) {
    Counts c;
    CutEverywhere(d, &c);
    if (::testing::Test::HasFatalFailure()) return;
    std::printf("  %-70s %4zu cuts, %5zu power-loss states, %5zu cuts in recovery\n", d.name,
                c.cuts, c.variants, c.recovery_cuts);
    all.cuts += c.cuts;
    all.variants += c.variants;
    all.recovery_cuts += c.recovery_cuts;
  }
  std::printf("  total: %zu cuts, %zu power-loss states recovered, %zu cuts in recovery\n",
              all.cuts, all.variants, all.recovery_cuts);
  EXPECT_GT(all.cuts, 50u);
}

// Error injection (issue 9): EIO or ENOSPC at every operation of an apply.
// The failure names its cause; the tree is old or new (or, after a failure
// past the journal, finished to new before the backup describes it again);
// the next sync with the same applier (no restart) converges, and so does a
// restart.
TEST(CrashTest, AnErrorAtEveryOperationLeavesOldOrNewAndTheNextSyncConverges) {
  size_t injected = 0;
  PathFilter none;
  for (const Delta& delta : Deltas()) {
    TempDir old_src, new_src;
    delta.old_tree(old_src.path());
    delta.new_tree(new_src.path());
    CrashFs base;
    ASSERT_TRUE(SyncOnce(old_src.path(), &base).status.ok());
    base.CutPower([](size_t) { return true; });
    const Tree old_tree = TreeOf(&base);
    CrashFs clean = base;
    Applier probe(&clean, &none);
    ASSERT_TRUE(probe.Recover().ok());
    const int start = clean.ops();
    ASSERT_TRUE(testing::SyncThrough(probe, new_src.path(), &clean).status.ok());
    const Tree new_tree = TreeOf(&clean);
    for (const Status& error : {Status::IoError("Input/output error"),
                                Status::IoError("No space left on device")}) {
      for (int n = start; n < clean.ops(); ++n, ++injected) {
        CrashFs fs = base;
        Applier a(&fs, &none);
        ASSERT_TRUE(a.Recover().ok());
        fs.fail_at = n;
        fs.fail_with = error;
        auto r = testing::SyncThrough(a, new_src.path(), &fs);
        const std::string where = std::string(delta.name) + ": " + error.message() + " at op " +
                                  std::to_string(n);
        if (r.status.ok()) {  // a best-effort step failed (staging cleanup)
          EXPECT_EQ(TreeOf(&fs), new_tree) << where;
          continue;
        }
        EXPECT_NE(r.status.message().find(error.message()), std::string::npos)
            << where << ": the cause is not reported: " << r.status.ToString();
        if (!a.journal_pending()) {
          Tree t = TreeOf(&fs);
          EXPECT_TRUE(t == old_tree || t == new_tree) << where << Differences(t, old_tree, new_tree);
        }
        CrashFs restarted = fs;
        auto again = testing::SyncThrough(a, new_src.path(), &fs);
        ASSERT_TRUE(again.status.ok()) << where << ": the next sync: " << again.status.ToString();
        EXPECT_EQ(TreeOf(&fs), new_tree) << where;
        Applier fresh(&restarted, &none);
        Status rec = fresh.Recover();
        ASSERT_TRUE(rec.ok()) << where << ", restarted: " << rec.ToString();
        Tree t = TreeOf(&restarted);
        EXPECT_TRUE(t == old_tree || t == new_tree) << where << ", restarted";
      }
    }
  }
  std::printf("  %zu errors injected\n", injected);
}

// The model itself: a write and its name are kept only once made durable.
TEST(CrashFsTest, KeepsOnlyWhatABarrierMadeDurable) {
  CrashFs fs;
  ASSERT_TRUE(fs.MakeDir("d", 0755).ok());
  ASSERT_TRUE(fs.SyncAll().ok());
  auto f = fs.Create("d/f");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("data").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  CrashFs no_name = fs;
  no_name.CutPower([](size_t) { return false; });
  EXPECT_FALSE(no_name.Stat("d/f").ok()) << "the file's data was synced, its name was not";
  ASSERT_TRUE(fs.SyncDir("d").ok());
  ASSERT_TRUE(fs.Rename("d/f", "g").ok());
  CrashFs renamed = fs, not_renamed = fs;
  renamed.CutPower([](size_t) { return true; });
  EXPECT_EQ(TreeOf(&renamed), TreeOf(&fs)) << "keeping every pending op is the live tree";
  not_renamed.CutPower([](size_t) { return false; });
  EXPECT_TRUE(not_renamed.Stat("d/f").ok());
  EXPECT_FALSE(not_renamed.Stat("g").ok());
  // A name made durable before its data: an empty file.
  auto h = fs.Create("h");
  ASSERT_TRUE(h.ok() && (*h)->Append("lost").ok());
  ASSERT_TRUE(fs.SyncDir("").ok());
  fs.CutPower([](size_t) { return false; });
  auto st = fs.Stat("h");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 0u);
  // A cut stops everything from the chosen operation on.
  fs.cut_at = fs.ops() + 1;
  EXPECT_TRUE(fs.MakeDir("one", 0755).ok());
  EXPECT_EQ(fs.MakeDir("two", 0755).code(), Status::Code::kAborted);
  EXPECT_EQ(fs.Stat("one").status().code(), Status::Code::kAborted);
}

}  // namespace
}  // namespace hubsync
