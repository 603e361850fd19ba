// hubsync benchmark: a real broker, real daemons, a generated hub tree, and
// rsync (daemon on loopback) over the same tree in the same run.
//
//   build/hubsync_bench [--files N] [--db-mib M] [--changes K] [--backups B] [--dir DIR]
//                       [--broker stock]
//   build/hubsync_bench --help
//
// --broker stock runs Mosquitto as a hub ships it (no set_tcp_nodelay: Nagle
// on the broker's sockets); the default is the test harness's broker, which
// sets it.
//
// Measures initial sync time, new-small-file latency (close on the primary ->
// rename on the backup, p50/p99), a 64 KiB in-place edit of the database
// (time and bytes on the wire), 100 bytes inserted near the start of it (the
// same), a check with nothing changed (bytes), the peak RSS of each daemon,
// and a new 20 MiB file sent to 1 and to B backups (time until all hold it,
// the primary's CPU). Figures go to stdout as a table.
//
// It never reports a figure it did not measure: every step waits for a
// condition (the primary's status saying "in_sync" at the root of the tree
// as it is on disk, computed here; a sync event), never a fixed time, and
// stops with an error (exit 1) when a step does not finish or rsync fails.
#include <sys/inotify.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include "../harness.h"
#include "hubsync/clock.h"
#include "hubsync/crypto.h"
#include "hubsync/messages.h"
#include "hubsync/scanner.h"
#include "hubsync/transport.h"

namespace hubsync {
namespace {

using testing::Broker;
using testing::Process;
using testing::WaitFor;
using testing::WriteFile;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

constexpr char kUsage[] =
    "usage: hubsync_bench [--files N] [--db-mib M] [--changes K] [--backups B] [--dir DIR]\n"
    "                     [--broker stock] [--only fanout]\n"
    "  --files N      JSON files in the generated tree (default 5000)\n"
    "  --db-mib M     size of the generated database file in MiB (default 50)\n"
    "  --changes K    new small files for the latency figure (default 100)\n"
    "  --backups B    backups for the fan-out figure (default 10)\n"
    "  --dir DIR      work directory (default: a temporary one, removed after)\n"
    "  --broker stock Mosquitto as a hub ships it (Nagle on); default: with set_tcp_nodelay\n"
    "  --only fanout  only the fan-out figure (no tree, no anchors)\n";

// The manifest root of `dir` as the primary computes it (no exclusions):
// what its status says once every backup holds that tree.
std::string TreeRoot(const std::string& dir) {
  auto fs = NewPosixFileSystem(dir);
  PathFilter none;
  Scanner scanner(fs.get(), &none);
  auto m = scanner.Scan(RealClock()->WallNs());
  return m.ok() ? ToHex(m->root()) : "";
}

// Counts every byte hubsync puts on the broker (payload + topic), by kind,
// and keeps the primary's latest status.
class WireMeter {
 public:
  // `primary`: whose status to follow ("" any primary's).
  explicit WireMeter(const std::string& uri, const std::string& primary = "")
      : primary_(primary), rec_(uri, [this](const Message& m) { Count(m); }, /*keep=*/false) {}
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    sync_bytes_ = 0;
    sync_events_ = 0;
  }
  uint64_t sync_bytes() { std::lock_guard<std::mutex> l(mu_); return sync_bytes_; }
  int sync_events() { std::lock_guard<std::mutex> l(mu_); return sync_events_; }
  // Whether the primary has said that every backup holds the tree `root`.
  bool PrimaryInSyncAt(const std::string& root) {
    std::lock_guard<std::mutex> l(mu_);
    return primary_state_ == "in_sync" && primary_root_ == root;
  }

 private:
  void Count(const Message& m) {
    auto ends = [&](const char* suffix) {
      size_t n = strlen(suffix);
      return m.topic.size() > n && m.topic.compare(m.topic.size() - n, n, suffix) == 0;
    };
    std::lock_guard<std::mutex> l(mu_);
    if (m.topic.find("/manifest/") != std::string::npos || ends("/delta") || ends("/ack")) {
      sync_bytes_ += m.payload.size() + m.topic.size();
    }
    if (ends("/events") && m.payload.find("\"type\":\"sync\"") != std::string::npos) {
      ++sync_events_;
    }
    if (ends("/status") &&
        (primary_.empty() || m.topic.find("/gw/" + primary_ + "/status") != std::string::npos)) {
      auto st = DecodeStatus(m.payload);
      if (st.ok() && st->role == "primary") {
        primary_state_ = st->state;
        primary_root_ = st->root;
      }
    }
  }
  std::mutex mu_;
  uint64_t sync_bytes_ = 0;
  int sync_events_ = 0;
  std::string primary_state_, primary_root_;
  const std::string primary_;
  testing::Recorder rec_;  // last: destroyed first, before what Count touches
};

std::string Json(std::mt19937& rng, int i) {
  char buf[256];
  snprintf(buf, sizeof buf,
           "{\"id\":\"device-%05d\",\"type\":\"%s\",\"room\":\"room-%u\",\"fw\":\"%u.%u\","
           "\"state\":{\"on\":%s,\"level\":%u}}\n",
           i, i % 3 ? "lamp" : "sensor", unsigned(rng() % 20), unsigned(rng() % 9),
           unsigned(rng() % 99), rng() % 2 ? "true" : "false", unsigned(rng() % 100));
  return buf;
}

void GenerateTree(const std::string& d, int files, int db_mib) {
  std::mt19937 rng(42);
  for (int i = 0; i < files; ++i) {
    std::string dir = d + "/devices/group-" + std::to_string(i / 250);
    if (i % 250 == 0) testing::MkdirP(dir);
    FILE* f = fopen((dir + "/device-" + std::to_string(i) + ".json").c_str(), "wb");
    std::string j = Json(rng, i);
    fwrite(j.data(), 1, j.size(), f);
    fclose(f);
  }
  testing::MkdirP(d + "/db");
  FILE* f = fopen((d + "/db/hub.sqlite").c_str(), "wb");
  std::string block(1 << 20, '\0');
  for (int m = 0; m < db_mib; ++m) {
    for (size_t i = 0; i < block.size(); i += 8) {
      uint64_t v = rng();
      memcpy(&block[i], &v, 8);
    }
    fwrite(block.data(), 1, block.size(), f);
  }
  fclose(f);
}

void EditDb(const std::string& path, uint64_t offset, uint32_t seed) {
  FILE* f = fopen(path.c_str(), "r+b");
  fseeko(f, static_cast<off_t>(offset), SEEK_SET);
  std::string patch(65536, '\0');
  std::mt19937 rng(seed);
  for (auto& c : patch) c = static_cast<char>(rng());
  fwrite(patch.data(), 1, patch.size(), f);
  fclose(f);
}

// Inserts 100 bytes 4 KiB into the file (everything after moves): the new
// version is written beside the tree and renamed over, as an application
// saving a file would.
void InsertIntoDb(const std::string& path, const std::string& scratch, uint32_t seed) {
  std::string content = testing::ReadFile(path);
  std::string insert(100, '\0');
  std::mt19937 rng(seed);
  for (auto& c : insert) c = static_cast<char>(rng());
  content.insert(std::min<size_t>(4096, content.size()), insert);
  WriteFile(scratch, content);
  std::rename(scratch.c_str(), path.c_str());
}

int Sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::string o;
  while (size_t n = fread(buf, 1, sizeof buf, p)) o.append(buf, n);
  int rc = pclose(p);
  if (out) *out = o;
  return WEXITSTATUS(rc);
}

struct RsyncRun {
  double ms = 0;
  uint64_t bytes = 0;  // sent + received, as rsync --stats reports
  int rc = 0;          // rsync's exit code; the figures count only when 0
  std::string out;
};

RsyncRun Rsync(const std::string& url, const std::string& dest, bool compress = false) {
  auto t0 = Clock::now();
  std::string out;
  RsyncRun r;
  r.rc = Sh(std::string("rsync -a --delete --stats ") + (compress ? "-z " : "") + "'" + url +
                "' '" + dest + "/' 2>&1",
            &out);
  r.ms = Ms(Clock::now() - t0);
  r.out = out;
  auto num = [&](const std::string& label) -> uint64_t {
    size_t at = out.find(label + ": ");
    if (at == std::string::npos) return 0;
    uint64_t v = 0;
    for (size_t i = at + label.size() + 2; i < out.size(); ++i) {
      if (out[i] == ',') continue;
      if (out[i] < '0' || out[i] > '9') break;
      v = v * 10 + static_cast<uint64_t>(out[i] - '0');
    }
    return v;
  };
  r.bytes = num("Total bytes sent") + num("Total bytes received");
  return r;
}

// A gateway's config in `dir` (data and state under it), with the bench's
// policy: sync on change, at once.
std::string WriteConfig(const std::string& dir, const std::string& id, const std::string& uri,
                        const std::string& backups) {
  std::string path = dir + "/config.json";
  testing::MkdirP(dir + "/data");
  WriteFile(path, R"({"home":"bench","gateway_id":")" + id + R"(","broker":{"uri":")" + uri +
                      R"("},"data_dir":")" + dir + R"(/data","state_dir":")" + dir +
                      R"(/state","backups":[)" + backups +
                      R"(],"policy":{"on_change":true,"delay_ms":0,"period_s":0},"log_level":")" + std::string(getenv("BENCH_LOG") ? getenv("BENCH_LOG") : "info") + R"("})");
  return path;
}

// CPU time (user + system) a process has used so far, in ms.
double CpuMs(pid_t pid) {
  std::string stat = testing::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields;
  size_t at = close + 2;
  while (at < stat.size()) {
    size_t sp = stat.find(' ', at);
    fields.push_back(stat.substr(at, sp - at));
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  if (fields.size() < 13) return -1;  // utime, stime are fields 14, 15 (11, 12 here)
  return (std::stod(fields[11]) + std::stod(fields[12])) * 1000.0 / sysconf(_SC_CLK_TCK);
}

struct FanOutRun {
  double ms = -1;      // new file written -> every backup holds it (primary says in_sync)
  double cpu_ms = -1;  // the primary's CPU time for it
  double backups_cpu_ms = -1;  // every backup's, together
};

// One primary and `n` backups on a small tree, in sync; then a new `mib` MiB
// file (noise): how long until every backup holds it, and what it costs the
// primary. Empty figures (ms < 0) if it never converged.
FanOutRun FanOut(const std::string& bin, const std::string& uri, const std::string& base, int n,
                 int mib) {
  FanOutRun run;
  std::string list;
  for (int i = 0; i < n; ++i) list += std::string(i ? "," : "") + "\"fan-b" + std::to_string(i) + "\"";
  std::string pdir = base + "/fan-" + std::to_string(n) + "/primary";
  std::string pc = WriteConfig(pdir, "fan-p" + std::to_string(n), uri, list);
  WriteFile(pdir + "/data/config/hub.json", "{\"name\":\"bench\"}");
  std::vector<std::unique_ptr<Process>> backups;
  for (int i = 0; i < n; ++i) {
    std::string id = "fan-b" + std::to_string(i);
    std::string bdir = base + "/fan-" + std::to_string(n) + "/" + id;
    std::string bc = WriteConfig(bdir, id, uri, "");
    Sh(bin + " keygen -c " + pc + " --backup " + id + " --out " + bdir + "/k 2>/dev/null");
    Sh(bin + " keyimport -c " + bc + " " + bdir + "/k 2>/dev/null");
    backups.push_back(std::make_unique<Process>(std::vector<std::string>{bin, "backup", "-c", bc},
                                                bdir + "/log"));
    backups.back()->Start();
  }
  WireMeter meter(uri, "fan-p" + std::to_string(n));
  Process primary({bin, "primary", "-c", pc}, pdir + "/log");
  primary.Start();
  if (!WaitFor([&] { return meter.PrimaryInSyncAt(TreeRoot(pdir + "/data")); }, 60000)) return run;
  double cpu0 = CpuMs(primary.pid()), backups_cpu0 = 0;
  for (auto& b : backups) backups_cpu0 += CpuMs(b->pid());
  std::string content = testing::RandomBytesString(size_t(mib) << 20, 99);
  auto t0 = Clock::now();
  WriteFile(pdir + "/data/db/new.bin", content);
  std::string root = TreeRoot(pdir + "/data");
  if (!WaitFor([&] { return meter.PrimaryInSyncAt(root); }, 300000)) return run;
  run.ms = Ms(Clock::now() - t0);
  run.cpu_ms = CpuMs(primary.pid()) - cpu0;
  run.backups_cpu_ms = -backups_cpu0;
  for (auto& b : backups) run.backups_cpu_ms += CpuMs(b->pid());
  primary.Stop();
  for (auto& b : backups) b->Stop();
  return run;
}

// FanOut to one backup, then to `fan`; false (said why) if either never
// converged.
bool FanOutBoth(const std::string& bin, const std::string& uri, const std::string& base, int fan,
                FanOutRun* one, FanOutRun* many) {
  std::printf("a new 20 MiB file to 1 backup, then to %d...\n", fan);
  *one = FanOut(bin, uri, base, 1, 20);
  *many = FanOut(bin, uri, base, fan, 20);
  if (one->ms >= 0 && many->ms >= 0) return true;
  std::fprintf(stderr, "fan-out: the backups never all held the new file (logs in %s/fan-*)\n",
               base.c_str());
  return false;
}

void PrintFanOut(int fan, const FanOutRun& one, const FanOutRun& many) {
  char label[64];
  std::snprintf(label, sizeof label, "new 20 MiB file, %d backups: time", fan);
  std::printf("%-40s %11.1f ms %14s %10s\n", "new 20 MiB file, 1 backup: time", one.ms, "-", "-");
  std::printf("%-40s %11.1f ms %14s %9.2fx\n", label, many.ms, "-", many.ms / one.ms);
  std::printf("%-40s %11.1f ms %14s %10s\n", "  primary CPU, 1 backup", one.cpu_ms, "-", "-");
  std::snprintf(label, sizeof label, "  primary CPU, %d backups", fan);
  std::printf("%-40s %11.1f ms %14s %9.2fx\n", label, many.cpu_ms, "-", many.cpu_ms / one.cpu_ms);
  std::printf("%-40s %11.1f ms %14s %10s\n", "  backup CPU, 1 backup", one.backups_cpu_ms, "-", "-");
  std::snprintf(label, sizeof label, "  backups' CPU, %d backups", fan);
  std::printf("%-40s %11.1f ms %14s %9.2fx\n", label, many.backups_cpu_ms, "-",
              many.backups_cpu_ms / one.backups_cpu_ms);
}

// Waits (up to timeout_ms) for `name` to be renamed into the directory
// watched by inotify descriptor `in`: true if it was.
bool AwaitRename(int in, const std::string& name, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    struct pollfd pfd = {in, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    alignas(struct inotify_event) char buf[4096];
    ssize_t n = read(in, buf, sizeof buf);
    for (char* q = buf; n > 0 && q < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(q);
      if (ev->len && name == ev->name) return true;
      q += sizeof(struct inotify_event) + ev->len;
    }
  }
  return false;
}

// The anchor for latency: lsyncd (delay 0, rsync to a local directory, as
// lsyncd's own default.rsync does) mirroring `src`; close of a new small file
// in src/devices/group-0 to its rename in the mirror. Empty if lsyncd is
// missing or never mirrored the tree.
std::vector<double> LsyncdLatency(const std::string& base, const std::string& src, int changes) {
  std::vector<double> lat;
  if (access("/usr/bin/lsyncd", X_OK) != 0) return lat;
  std::string dst = base + "/lsyncd-mirror";
  testing::MkdirP(dst + "/devices/group-0");
  WriteFile(base + "/lsyncd.conf",
            "settings { nodaemon = true, logfile = \"" + base + "/lsyncd.log\" }\n"
            "sync { default.rsync, source = \"" + src + "\", target = \"" + dst + "\", delay = 0 }\n");
  int in = inotify_init1(IN_CLOEXEC);
  inotify_add_watch(in, (dst + "/devices/group-0").c_str(), IN_MOVED_TO);
  Process lsyncd({"/usr/bin/lsyncd", base + "/lsyncd.conf"}, base + "/lsyncd.out");
  lsyncd.Start();
  // Its start is a full rsync; a first file tells when it watches.
  WriteFile(src + "/devices/group-0/lsyncd-ready.json", "{}");
  // (The startup rsync itself may carry that file; at 100,000 files it
  // runs for seconds after, and changes wait for it.)
  auto started = [&] {
    return testing::ReadFile(base + "/lsyncd.log").find("Startup of") != std::string::npos;
  };
  if (AwaitRename(in, "lsyncd-ready.json", 120000) && WaitFor(started, 300000)) {
    std::mt19937 rng(11);
    for (int i = 0; i < changes; ++i) {
      std::string name = "lsyncd-" + std::to_string(i) + ".json";
      WriteFile(src + "/devices/group-0/" + name, Json(rng, 200000 + i));
      auto t = Clock::now();
      if (!AwaitRename(in, name, 10000)) break;
      lat.push_back(Ms(Clock::now() - t));
    }
  }
  lsyncd.Stop();
  close(in);
  if (lat.size() != static_cast<size_t>(changes)) lat.clear();
  return lat;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int Main(int argc, char** argv) {
  int files = 5000, db_mib = 50, changes = 100, fan = 10;
  bool stock = false, only_fanout = false;
  std::string base;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    bool known = a == "--files" || a == "--db-mib" || a == "--changes" || a == "--dir" ||
                 a == "--broker" || a == "--backups" || a == "--only";
    if (!known || i + 1 == argc) {
      std::fprintf(stderr, "hubsync_bench: %s %s\n%s", known ? "missing a value after" : "unknown option",
                   a.c_str(), kUsage);
      return 2;
    }
    std::string v = argv[++i];
    int n = std::atoi(v.c_str());
    if (a == "--dir") {
      base = v;
    } else if (a == "--only") {
      if (v != "fanout") {
        std::fprintf(stderr, "hubsync_bench: --only takes \"fanout\"\n%s", kUsage);
        return 2;
      }
      only_fanout = true;
    } else if (a == "--broker") {
      if (v != "stock") {
        std::fprintf(stderr, "hubsync_bench: --broker takes \"stock\"\n%s", kUsage);
        return 2;
      }
      stock = true;
    } else if (n <= 0 && !(a == "--db-mib" && v == "0")) {
      std::fprintf(stderr, "hubsync_bench: %s needs a positive number, not \"%s\"\n%s",
                   a.c_str(), v.c_str(), kUsage);
      return 2;
    } else {
      (a == "--files" ? files : a == "--db-mib" ? db_mib : a == "--backups" ? fan : changes) = n;
    }
  }
  testing::TempDir tmp;
  if (base.empty()) base = tmp.path();
  std::string bin = HUBSYNC_BINARY;
  std::string p = base + "/primary", b = base + "/backup", r = base + "/rsync-mirror";
  testing::MkdirP(p + "/data");
  testing::MkdirP(b + "/data");
  testing::MkdirP(r);
  testing::MkdirP(r + "-z");
  if (!only_fanout) {
    std::printf("generating %d JSON files + a %d MiB database...\n", files, db_mib);
    GenerateTree(p + "/data", files, db_mib);
  }

  const int broker_port = testing::FreePort();
  Broker broker = stock ? Broker(base + "/broker", broker_port,
                                 "listener " + std::to_string(broker_port) + " 127.0.0.1\n"
                                 "allow_anonymous true\nuser root\n")
                        : Broker(base + "/broker");
  std::printf("broker: %s\n", stock ? "stock Mosquitto (Nagle on)" : "harness (set_tcp_nodelay)");
  if (!broker.up()) {
    std::fprintf(stderr, "mosquitto did not start\n");
    return 1;
  }
  std::string pc = WriteConfig(p, "hub-primary", broker.uri(), "\"hub-backup\""),
              bc = WriteConfig(b, "hub-backup", broker.uri(), "");
  Sh(bin + " keygen -c " + pc + " --backup hub-backup --out " + base + "/k 2>/dev/null");
  Sh(bin + " keyimport -c " + bc + " " + base + "/k 2>/dev/null");
  if (only_fanout) {
    FanOutRun one, many;
    if (!FanOutBoth(bin, broker.uri(), base, fan, &one, &many)) return 1;
    PrintFanOut(fan, one, many);
    return 0;
  }
  WireMeter meter(broker.uri());

  // 1. Initial sync.
  std::printf("initial sync...\n");
  auto t0 = Clock::now();
  Process backup({bin, "backup", "-c", bc}, b + "/log");
  Process primary({bin, "primary", "-c", pc}, p + "/log");
  backup.Start();
  primary.Start();
  if (!WaitFor([&] { return meter.sync_events() >= 1; }, 600000)) {
    std::fprintf(stderr, "initial sync did not finish\n%s\n%s", primary.Log().c_str(),
                 backup.Log().c_str());
    return 1;
  }
  double initial_ms = Ms(Clock::now() - t0);
  uint64_t initial_bytes = meter.sync_bytes();

  // 2. New small file latency: close on the primary -> rename on the backup.
  std::printf("latency of %d new small files...\n", changes);
  int in = inotify_init1(IN_CLOEXEC);
  inotify_add_watch(in, (b + "/data/devices/group-0").c_str(), IN_MOVED_TO);
  std::vector<double> lat;
  std::mt19937 rng(7);
  double primary_cpu0 = CpuMs(primary.pid()), backup_cpu0 = CpuMs(backup.pid());
  for (int i = 0; i < changes; ++i) {
    std::string name = "new-" + std::to_string(i) + ".json";
    std::string j = Json(rng, 100000 + i);
    FILE* f = fopen((p + "/data/devices/group-0/" + name).c_str(), "wb");
    fwrite(j.data(), 1, j.size(), f);
    fclose(f);
    auto t = Clock::now();
    bool seen = false;
    while (!seen) {
      struct pollfd pfd = {in, POLLIN, 0};
      if (poll(&pfd, 1, 10000) <= 0) break;
      alignas(struct inotify_event) char buf[4096];
      ssize_t n = read(in, buf, sizeof buf);
      for (char* q = buf; q < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(q);
        if (ev->len && name == ev->name) seen = true;
        q += sizeof(struct inotify_event) + ev->len;
      }
    }
    if (!seen) {
      std::fprintf(stderr, "change %d never arrived\n", i);
      return 1;
    }
    lat.push_back(Ms(Clock::now() - t));
  }
  close(in);
  double primary_cpu = (CpuMs(primary.pid()) - primary_cpu0) / changes,
         backup_cpu = (CpuMs(backup.pid()) - backup_cpu0) / changes;
  // Every sync done (the last acks landed) before the next step is timed.
  auto settled = [&](const char* step) {
    std::string root = TreeRoot(p + "/data");
    if (WaitFor([&] { return meter.PrimaryInSyncAt(root); }, 60000)) return true;
    std::fprintf(stderr, "%s: the primary never reported the backup in sync\n%s\n%s", step,
                 primary.Log().c_str(), backup.Log().c_str());
    return false;
  };
  if (!settled("new small files")) return 1;
  // One change to the tree: the time until its sync event, and its bytes on
  // the wire once every sync is done. False (said why) if it never synced.
  auto measure = [&](const char* step, const std::function<void()>& change, double* ms,
                     uint64_t* bytes) {
    std::printf("%s...\n", step);
    meter.Reset();
    auto start = Clock::now();
    change();
    if (!WaitFor([&] { return meter.sync_events() >= 1; }, 120000)) {
      std::fprintf(stderr, "%s: never synced\n", step);
      return false;
    }
    *ms = Ms(Clock::now() - start);
    if (!settled(step)) return false;
    *bytes = meter.sync_bytes();
    return true;
  };

  // 3. 64 KiB in-place edit of the database; 100 bytes inserted near its start.
  double edit_ms = 0, insert_ms = 0;
  uint64_t edit_bytes = 0, insert_bytes = 0;
  if (!measure("64 KiB in-place database edit",
               [&] { EditDb(p + "/data/db/hub.sqlite", (uint64_t(db_mib) << 20) / 3, 1); },
               &edit_ms, &edit_bytes) ||
      !measure("100 bytes inserted near the start of the database",
               [&] { InsertIntoDb(p + "/data/db/hub.sqlite", base + "/insert.tmp", 1); },
               &insert_ms, &insert_bytes)) {
    return 1;
  }

  // 4. A check with nothing changed (what period_s does), forced by SIGUSR1:
  // its bytes are counted once its sync event says it ran.
  meter.Reset();
  kill(primary.pid(), SIGUSR1);
  if (!WaitFor([&] { return meter.sync_events() >= 1; }, 30000)) {
    std::fprintf(stderr, "the no-change check never ran\n");
    return 1;
  }
  if (!settled("no-change check")) return 1;
  uint64_t check_bytes = meter.sync_bytes();

  long primary_rss = primary.PeakRssKb(), backup_rss = backup.PeakRssKb();
  primary.Stop();
  backup.Stop();

  // 5. lsyncd on the same tree, for the latency anchor.
  std::printf("lsyncd (delay 0) latency of %d new small files...\n", changes);
  std::vector<double> lsyncd_lat = LsyncdLatency(base, p + "/data", changes);

  // 6. Fan-out: a new 20 MiB file to one backup, then to `backups`.
  FanOutRun one, many;
  if (!FanOutBoth(bin, broker.uri(), base, fan, &one, &many)) return 1;

  // rsync on the same tree (the edit above is already in it).
  std::printf("rsync baseline...\n");
  int port = testing::FreePort();
  WriteFile(base + "/rsyncd.conf", "use chroot = no\nuid = root\ngid = root\n[hub]\npath = " + p +
                                       "/data\nread only = yes\n");
  Process rsyncd({"/usr/bin/rsync", "--daemon", "--no-detach", "--address=127.0.0.1",
                  "--port=" + std::to_string(port), "--config=" + base + "/rsyncd.conf"},
                 base + "/rsyncd.log");
  rsyncd.Start();
  WaitFor([&] { return testing::PortOpen(port); }, 5000);
  std::string url = "rsync://127.0.0.1:" + std::to_string(port) + "/hub/";
  RsyncRun r_init = Rsync(url, r);
  RsyncRun r_init_z = Rsync(url, r + "-z", true);  // compressed, into an empty tree
  EditDb(p + "/data/db/hub.sqlite", (uint64_t(db_mib) << 20) / 3, 2);
  RsyncRun r_edit = Rsync(url, r);
  InsertIntoDb(p + "/data/db/hub.sqlite", base + "/insert.tmp", 2);
  RsyncRun r_insert = Rsync(url, r);
  RsyncRun r_none = Rsync(url, r);
  rsyncd.Stop();
  for (const RsyncRun* run : {&r_init, &r_init_z, &r_edit, &r_insert, &r_none}) {
    if (run->rc != 0) {
      std::fprintf(stderr, "rsync failed (exit %d): no baseline\n%s", run->rc, run->out.c_str());
      return 1;
    }
  }

  std::printf("\nhubsync benchmark: %d JSON files + %d MiB database, 1 backup, loopback\n", files,
              db_mib);
  std::printf("%-40s %14s %14s %10s\n", "measure", "hubsync", "rsync", "ratio");
  auto row = [](const char* what, double h, double rs, const char* unit) {
    char hs[32], rss[32], ratio[32];
    snprintf(hs, sizeof hs, "%.1f %s", h, unit);
    if (rs > 0) {
      snprintf(rss, sizeof rss, "%.1f %s", rs, unit);
      snprintf(ratio, sizeof ratio, "%.3f", h / rs);
    } else {
      snprintf(rss, sizeof rss, "-");
      snprintf(ratio, sizeof ratio, "-");
    }
    std::printf("%-40s %14s %14s %10s\n", what, hs, rss, ratio);
  };
  row("initial sync time", initial_ms, r_init.ms, "ms");
  row("initial sync bytes on the wire", initial_bytes / 1024.0, r_init.bytes / 1024.0, "KiB");
  row("  the same against rsync -z", initial_bytes / 1024.0, r_init_z.bytes / 1024.0, "KiB");
  row("new small file latency p50", Percentile(lat, 0.5), 0, "ms");
  row("new small file latency p99", Percentile(lat, 0.99), 0, "ms");
  row("  primary CPU per new small file", primary_cpu, 0, "ms");
  row("  backup CPU per new small file", backup_cpu, 0, "ms");
  if (lsyncd_lat.empty()) {
    std::printf("%-40s %14s\n", "  lsyncd (delay 0) latency", "not measured (lsyncd missing or failed)");
  } else {
    std::printf("%-40s %11.1f ms %14s %10s\n", "  lsyncd (delay 0) latency p50",
                Percentile(lsyncd_lat, 0.5), "-", "-");
    std::printf("%-40s %11.1f ms %14s %10s\n", "  lsyncd (delay 0) latency p99",
                Percentile(lsyncd_lat, 0.99), "-", "-");
  }
  row("64 KiB db edit: time", edit_ms, r_edit.ms, "ms");
  row("64 KiB db edit: bytes on the wire", edit_bytes / 1024.0, r_edit.bytes / 1024.0, "KiB");
  row("100 B inserted at 4 KiB: time", insert_ms, r_insert.ms, "ms");
  row("100 B inserted at 4 KiB: bytes on the wire", insert_bytes / 1024.0,
      r_insert.bytes / 1024.0, "KiB");
  row("no-change check: bytes on the wire", check_bytes / 1024.0, r_none.bytes / 1024.0, "KiB");
  PrintFanOut(fan, one, many);
  row("peak RSS primary", primary_rss / 1024.0, 0, "MiB");
  row("peak RSS backup", backup_rss / 1024.0, 0, "MiB");
  std::printf("(latency: %zu changes; close() on the primary to rename() on the backup)\n",
              lat.size());
  return 0;
}

}  // namespace
}  // namespace hubsync

int main(int argc, char** argv) { return hubsync::Main(argc, argv); }
