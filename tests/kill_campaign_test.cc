// The kill campaign (issue 9) as a test: real hubsync processes and a real
// Mosquitto. Each round the primary's tree moves to a new version (many
// files rewritten, some created and deleted, a directory turned into a file
// and back); the backup applying it is killed with SIGKILL at a point chosen
// by what it is doing (after the r-th staged file, or after the r-th rename
// of the commit once its journal exists), `hubsync recover` runs, the tree
// must be exactly the previous or the new version, and the restarted backup
// must converge without waiting for a timeout. Then the primary, and then the
// broker, are killed in the middle of transfers, and everything converges.
//
// HUBSYNC_KILL_POINTS sets the number of backup kills (default 200).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>
#include <set>
#include <string>

#include "harness.h"
#include "home_fixture.h"

namespace hubsync {
namespace {

using testing::Gateway;
using testing::HomeTest;
using testing::WaitFor;
using testing::WriteFile;
using Tree = std::map<std::string, std::string>;
using SteadyClock = std::chrono::steady_clock;

constexpr int kFiles = 120;
constexpr int kDirs = 6;

// Version k of the primary's tree (under `dir`): a third of the files rewritten each
// version, one file in seven created or deleted, "swap" a directory in even
// versions and a file in odd ones.
void WriteVersion(const std::string& dir, int k) {
  const std::string& data = dir;
  std::string pad(1500, static_cast<char>('a' + k % 26));
  for (int i = 0; i < kFiles; ++i) {
    if ((i + k) % 3 != 0 && k != 0) continue;
    WriteFile(data + "/set/d" + std::to_string(i % kDirs) + "/f" + std::to_string(i) + ".json",
              "{\"v\":" + std::to_string(k) + ",\"i\":" + std::to_string(i) + "}" + pad);
  }
  for (int e = 0; e < 7; ++e) {
    std::string p = data + "/extra/e" + std::to_string(e) + ".json";
    if (e == k % 7) {
      unlink(p.c_str());
    } else {
      WriteFile(p, "extra " + std::to_string(e) + " in version " + std::to_string(k));
    }
  }
  std::string swap = data + "/swap";
  std::system(("rm -rf '" + swap + "'").c_str());
  if (k % 2 == 0) {
    WriteFile(swap + "/inside", "a directory in version " + std::to_string(k));
  } else {
    WriteFile(swap, "a file in version " + std::to_string(k));
  }
}

// Watches a backup's data_dir through inotify for the moments a kill is
// chosen by: files closed in staging, the journal's appearance, renames into
// the tree.
class ApplyWatcher {
 public:
  explicit ApplyWatcher(const std::string& data) : data_(data) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    Add(data_ + "/.hubsync", IN_MOVED_TO | IN_CREATE);
    Add(data_ + "/.hubsync/staging", IN_CREATE);
    Add(data_ + "/home", IN_MOVED_TO);
    Add(data_ + "/home/set", IN_MOVED_TO);
    Add(data_ + "/home/extra", IN_MOVED_TO);
    for (int d = 0; d < kDirs; ++d) Add(data_ + "/home/set/d" + std::to_string(d), IN_MOVED_TO);
  }
  ~ApplyWatcher() { close(fd_); }
  // Waits until `count` files were closed in staging (commit = false) or
  // `count` renames happened after the journal appeared (commit = true):
  // true. False once `over()` says the apply is done without that (fewer
  // files than `count`), or after timeout_ms.
  bool WaitFor(bool commit, int count, const std::function<bool()>& over, int timeout_ms) {
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      if (!commit && staged_ >= count) return true;
      if (commit && journal_ && renamed_ >= count) return true;
      if (SteadyClock::now() >= deadline || over()) return false;
      struct pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) Drain();
    }
  }

 private:
  void Add(const std::string& dir, uint32_t mask) {
    int wd = inotify_add_watch(fd_, dir.c_str(), mask | IN_ONLYDIR);
    if (wd >= 0) dirs_[wd] = dir;
  }
  void Drain() {
    alignas(struct inotify_event) char buf[8192];
    while (true) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) return;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        p += sizeof(struct inotify_event) + ev->len;
        std::string name = ev->len ? ev->name : "";
        const std::string& dir = dirs_[ev->wd];
        if (dir == data_ + "/.hubsync/staging" && (ev->mask & IN_CREATE)) {
          Add(dir + "/" + name, IN_CLOSE_WRITE);  // a transfer's staging directory
        } else if (ev->mask & IN_CLOSE_WRITE) {
          ++staged_;
        } else if (dir == data_ + "/.hubsync" && name == "journal" && (ev->mask & IN_MOVED_TO)) {
          journal_ = true;
        } else if ((ev->mask & IN_MOVED_TO) && journal_) {
          ++renamed_;
        }
      }
    }
  }

  std::string data_;
  int fd_ = -1;
  std::map<int, std::string> dirs_;
  int staged_ = 0, renamed_ = 0;
  bool journal_ = false;
};

// The paths where `t` differs from both `a` and `b`, to name a failure.
std::string Differences(const Tree& t, const Tree& a, const Tree& b) {
  std::set<std::string> paths;
  for (const Tree* x : {&t, &a, &b}) {
    for (const auto& [p, v] : *x) paths.insert(p);
  }
  auto get = [](const Tree& x, const std::string& p) {
    auto it = x.find(p);
    return it == x.end() ? std::string("-") : it->second.substr(0, 20);
  };
  std::string out = "path: now | previous | new";
  for (const std::string& p : paths) {
    if (get(t, p) != get(a, p) || get(t, p) != get(b, p)) {
      out += "\n  " + p + ": " + get(t, p) + " | " + get(a, p) + " | " + get(b, p);
    }
  }
  return out;
}

// Moves the primary's tree (everything under data/home) to version k in one
// step: the next version is made in a copy beside it (mtimes kept) and the
// two directories are exchanged atomically, so the primary never sees a
// version half written, whatever the machine's load.
void SwitchVersion(const std::string& data, const std::string& scratch, int k) {
  std::system(("rm -rf '" + scratch + "' && mkdir -p '" + scratch + "' && cp -a '" + data +
               "/home' '" + scratch + "/home'").c_str());
  WriteVersion(scratch + "/home", k);
  ASSERT_EQ(renameat2(AT_FDCWD, (scratch + "/home").c_str(), AT_FDCWD, (data + "/home").c_str(),
                      RENAME_EXCHANGE), 0);
}

class KillCampaignTest : public HomeTest {
 protected:
  void SetUp() override {
    HomeTest::SetUp();
    // Changes are gathered for 150 ms, so each version reaches the backup as
    // one delta and "old" and "new" are the previous and this version.
    MakeHome(1, R"(,"policy":{"on_change":true,"delay_ms":150,"period_s":0})");
    b_ = &backups_["hub-b1"];
    WriteVersion(primary_.data + "/home", 0);
    StartAll();
    ASSERT_TRUE(AllConverged());
  }
  // Waits for the backup to hold `want`; returns the time it took (ms) or -1.
  int64_t Converge(const Tree& want, int timeout_ms = 30000) {
    auto t0 = SteadyClock::now();
    if (!WaitFor([&] { return Replicated(b_->data) == want; }, timeout_ms)) return -1;
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
  }
  Gateway* b_ = nullptr;
  std::mt19937 rng_{20261126};
};

TEST_F(KillCampaignTest, EveryKillLeavesOldOrNewAfterRecoverAndConvergesWithoutATimeout) {
  const char* env = std::getenv("HUBSYNC_KILL_POINTS");
  const int points = env ? std::atoi(env) : 200;
  int in_staging = 0, in_commit = 0, after_apply = 0, finished = 0, discarded = 0;
  int64_t slowest = 0;
  int stalls = 0;
  std::vector<int64_t> times;
  Tree prev = Replicated(primary_.data);
  int k = 1;
  for (; k <= points; ++k) {
    ApplyWatcher watch(b_->data);
    SwitchVersion(primary_.data, root_.Sub("next"), k);
    const Tree cur = Replicated(primary_.data);
    // 65 % of the kills in the commit window (after the r-th rename), the
    // rest while files are staged (after the r-th staged file).
    bool commit = std::uniform_int_distribution<int>(0, 99)(rng_) < 65;
    int r = std::uniform_int_distribution<int>(0, commit ? 30 : 40)(rng_);
    bool hit = watch.WaitFor(commit, r, [&] { return Replicated(b_->data) == cur; }, 10000);
    ASSERT_EQ(b_->proc->Kill(SIGKILL), 128 + SIGKILL) << "round " << k;
    std::string out;
    ASSERT_EQ(Tool({"recover", "-c", b_->config}, &out), 0) << "round " << k << ": " << out;
    finished += out.find("finished the interrupted apply") != std::string::npos;
    discarded += out.find("discarded") != std::string::npos;
    Tree now = Replicated(b_->data);
    ASSERT_TRUE(now == prev || now == cur)
        << "round " << k << (commit ? ": commit window, " : ": staging, ") << "r = " << r
        << ": after recover the tree is neither the previous nor the new version\n" << out
        << Differences(now, prev, cur);
    if (!hit) {
      ++after_apply;
    } else {
      (commit ? in_commit : in_staging) += 1;
    }
    Start(*b_, "backup");
    int64_t took = Converge(cur);
    ASSERT_GE(took, 0) << "round " << k << ": the restarted backup did not converge\n"
                       << b_->proc->Log().substr(0, 4000);
    slowest = std::max(slowest, took);
    times.push_back(took);
    if (took > 5000) {  // a stall: keep the evidence (the last lines of both logs)
      ++stalls;
      auto tail = [](const std::string& log) {
        return log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
      };
      std::printf("round %d: converged after %lld ms\n--- primary\n%s\n--- backup\n%s\n", k,
                  static_cast<long long>(took), tail(primary_.proc->Log()).c_str(),
                  tail(b_->proc->Log()).c_str());
    }
    prev = cur;
  }
  std::sort(times.begin(), times.end());
  std::printf("  backup kills: %d (%d in staging, %d in the commit window, %d after the apply); "
              "recover finished %d, discarded %d; convergence after a restart: median %lld ms, "
              "slowest %lld ms, %d over 5 s\n",
              points, in_staging, in_commit, after_apply, finished, discarded,
              static_cast<long long>(times[times.size() / 2]), static_cast<long long>(slowest),
              stalls);
  EXPECT_GT(in_commit, points / 3) << "the commit window is where a crash matters most";
  EXPECT_GT(finished, 0);
  // A restarted backup is served at once, not after the primary's 15 s
  // timeout. (Seen twice in ~900 kills on a loaded machine before the
  // backup reserved its counters before announcing itself; kept as a bound
  // with the logs printed above, see issue 9's note.)
  EXPECT_LT(times[times.size() / 2], 1000);
  EXPECT_LE(stalls, points / 100) << "stalls after a restart";

  // The primary, killed while it streams a version; then the broker.
  int primary_kills = 0, broker_kills = 0;
  for (int round = 0; round < 30; ++round, ++k) {
    bool broker = round >= 20;
    ApplyWatcher watch(b_->data);
    SwitchVersion(primary_.data, root_.Sub("next"), k);
    const Tree cur = Replicated(primary_.data);
    watch.WaitFor(false, std::uniform_int_distribution<int>(0, 30)(rng_),
                  [&] { return Replicated(b_->data) == cur; }, 10000);
    if (broker) {
      broker_->Kill9();
      broker_->Start();
      ASSERT_TRUE(broker_->up());
      ++broker_kills;
    } else {
      ASSERT_EQ(primary_.proc->Kill(SIGKILL), 128 + SIGKILL);
      Start(primary_, "primary");
      ++primary_kills;
    }
    int64_t took = Converge(cur);
    ASSERT_GE(took, 0) << (broker ? "broker" : "primary") << " kill " << round
                       << ": no convergence\n" << primary_.proc->Log().substr(0, 4000);
  }
  std::printf("  primary kills: %d, broker kills: %d, all converged\n", primary_kills, broker_kills);
}

}  // namespace
}  // namespace hubsync
