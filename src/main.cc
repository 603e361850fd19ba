// The hubsync command line (SPEC 3). A thin shell over the library: parse
// arguments, load the config, hand over to a daemon or a one-shot command.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <condition_variable>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "hubsync/bridge.h"
#include "hubsync/config.h"
#include "hubsync/crypto.h"
#include "hubsync/daemon.h"
#include "hubsync/engine.h"
#include "hubsync/pairing.h"
#include "hubsync/recover.h"
#include "hubsync/keystore.h"
#include "hubsync/messages.h"
#include "hubsync/status_view.h"
#include "hubsync/transport.h"
#include "file_util.h"

namespace hubsync {
namespace {

constexpr char kVersion[] = "hubsync 0.1.0 (protocol v1)";
constexpr char kUsage[] =
    "usage:\n"
    "  hubsync primary   -c CONFIG [--set key.path=value]...   run the primary daemon\n"
    "  hubsync backup    -c CONFIG [--set ...]                 run a backup daemon\n"
    "  hubsync bridge    -c CONFIG                             run the BLE bridge (OOB topic)\n"
    "  hubsync pair      -c CONFIG [--window S] [--timeout S]  backup: pair or rotate its keys now (primary, standbys)\n"
    "                                                          primary: open a pairing window (120 s)\n"
    "  hubsync unpair    -c CONFIG ID                          (primary) revoke a backup's key\n"
    "  hubsync status    -c CONFIG [--json] [--watch] [--timeout MS]\n"
    "                                                          every gateway's sync state; exit 3\n"
    "                                                          when a backup is not in sync\n"
    "  hubsync recover   -c CONFIG                             (backup) finish or discard an apply\n"
    "                                                          a crash interrupted; no broker needed\n"
    "  hubsync promote   -c CONFIG [--force] [--timeout S]     (backup) make this hub the primary\n"
    "                                                          (its running daemon takes a new term)\n"
    "  hubsync keygen    -c CONFIG --backup ID --out FILE      make a key for a hub this hub serves\n"
    "                                                          (as primary, or as standby primary)\n"
    "  hubsync keyimport -c CONFIG FILE                        install a key another hub made\n"
    "  hubsync --version | --help\n"
    "exit codes: 0 done, 2 bad usage or configuration, 1 other errors\n";

int Usage(const std::string& problem) {
  std::fprintf(stderr, "hubsync: %s\n%s", problem.c_str(), kUsage);
  return 2;
}

struct Args {
  std::string command;
  std::string config_path;
  std::vector<Override> overrides;
  std::map<std::string, std::string> options;  // --backup, --out, --timeout
  std::set<std::string> flags;                 // --json, --watch, --force
  std::vector<std::string> positional;
};

// Returns 0 on success or the exit code to use.
int ParseArgs(int argc, char** argv, Args* a) {
  if (argc < 2) return Usage("missing command");
  a->command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (arg == "-c" || arg == "--config") {
      const char* v = value("-c");
      if (!v) return Usage("-c needs a file");
      a->config_path = v;
    } else if (arg == "--set") {
      const char* v = value("--set");
      if (!v) return Usage("--set needs key.path=value");
      auto o = ParseOverride(v);
      if (!o.ok()) return Usage(o.status().message());
      a->overrides.push_back(*o);
    } else if (arg == "--backup" || arg == "--out" || arg == "--timeout" || arg == "--window") {
      const char* v = value(arg.c_str());
      if (!v) return Usage(arg + " needs a value");
      a->options[arg.substr(2)] = v;
    } else if (arg == "--json" || arg == "--watch" || arg == "--force") {
      a->flags.insert(arg.substr(2));
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage("unknown option " + arg);
    } else {
      a->positional.push_back(arg);
    }
  }
  if (a->config_path.empty()) return Usage(a->command + " needs -c CONFIG");
  return 0;
}

int Keygen(const Config& c, const Args& a) {
  auto backup = a.options.find("backup");
  auto out = a.options.find("out");
  if (backup == a.options.end() || out == a.options.end()) {
    return Usage("keygen needs --backup ID and --out FILE");
  }
  if (!IsValidId(backup->second)) return Usage("--backup: not a valid gateway id");
  if (backup->second == c.gateway_id) return Usage("--backup: a hub makes no key for itself");
  Key key;
  if (Status s = RandomBytes(key.data(), key.size()); !s.ok()) {
    std::fprintf(stderr, "hubsync keygen: %s\n", s.ToString().c_str());
    return 1;
  }
  auto state = NewPosixStateStore(c.state_dir);
  // Stored only once the export is written, under the next epoch chosen
  // atomically against a running daemon's own key changes.
  auto e = KeyStore(state.get()).PutNext(backup->second, key, [&](const KeyEntry& entry) {
    return WriteFileAtomic(out->second, KeyStore::Export(c.home, backup->second, c.gateway_id, entry),
                           0600);
  });
  if (!e.ok()) {
    std::fprintf(stderr, "hubsync keygen: %s\n", e.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "hubsync keygen: key epoch %u for %s stored and written to %s (0600)\n",
               e->epoch, backup->second.c_str(), out->second.c_str());
  return 0;
}

int Keyimport(const Config& c, const Args& a) {
  if (a.positional.size() != 1) return Usage("keyimport needs one FILE");
  auto text = ReadSmallFile(a.positional[0]);
  if (!text.ok()) {
    std::fprintf(stderr, "hubsync keyimport: %s\n", text.status().ToString().c_str());
    return 1;
  }
  std::string maker;
  auto e = KeyStore::Import(*text, c.home, c.gateway_id, &maker);
  if (!e.ok()) {
    std::fprintf(stderr, "hubsync keyimport: %s\n", e.status().message().c_str());
    return 2;
  }
  // Installed next to the keys with other hubs: one per hub that made one
  // (the primary, a standby primary: SPEC 11).
  std::string record = maker.empty() ? c.gateway_id : KeyStore::MadeBy(c.gateway_id, maker);
  auto state = NewPosixStateStore(c.state_dir);
  // A key under an epoch already known would meet that epoch's counters.
  Status s = KeyStore(state.get()).PutNewer(record, *e);
  if (s.code() == Status::Code::kInvalidArgument) {
    std::fprintf(stderr, "hubsync keyimport: %s (make a new one with hubsync keygen on %s)\n",
                 s.message().c_str(), maker.empty() ? "the primary" : maker.c_str());
    return 2;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "hubsync keyimport: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "hubsync keyimport: key epoch %u with %s installed for %s\n", e->epoch,
               maker.empty() ? "the primary" : maker.c_str(), c.gateway_id.c_str());
  return 0;
}

// The pid of the daemon holding c's state_dir when it was started with the
// same config file as this command and its account is not overridden here,
// else 0. A broker set up as shipped (hub.conf: use_username_as_clientid)
// makes the account the client id, so a second connection under it
// disconnects the daemon.
int DaemonUsingConfig(const Config& c, const Args& a) {
  if (c.broker.username.empty()) return 0;  // anonymous: no account to share
  for (const Override& o : a.overrides) {
    if (o.first == "broker.username") return 0;
  }
  int pid = StateDirLock::Holder(c.state_dir);
  if (pid <= 0) return 0;
  auto read = ReadSmallFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!read.ok()) return 0;
  const std::string& cmdline = *read;
  std::vector<std::string> argv;
  for (size_t start = 0; start < cmdline.size();) {
    size_t end = cmdline.find('\0', start);
    if (end == std::string::npos) end = cmdline.size();
    argv.push_back(cmdline.substr(start, end - start));
    start = end + 1;
  }
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] != "-c") continue;
    char mine[PATH_MAX], theirs[PATH_MAX];
    std::string their_path = argv[i + 1];
    if (!their_path.empty() && their_path[0] != '/') {
      their_path = "/proc/" + std::to_string(pid) + "/cwd/" + their_path;
    }
    if (realpath(a.config_path.c_str(), mine) && realpath(their_path.c_str(), theirs) &&
        std::strcmp(mine, theirs) == 0) {
      return pid;
    }
  }
  return 0;
}

// `hubsync status`: reads the retained status topics and prints one row per
// gateway (or JSON); with --watch, follows them live until Ctrl-C. Exit code
// 0 when every backup is in sync, 3 when one is not (or none is known), 4,
// 5 or 6 when the broker refused us, cannot be reached or did not answer
// (StatusExit).
int PrintStatus(const Config& c, const Args& a) {
  constexpr size_t kMaxStatusRows = 1024;  // a flood of made-up gateways stays bounded
  int64_t timeout_ms = 3000;
  if (a.options.count("timeout")) timeout_ms = std::atoll(a.options.at("timeout").c_str());
  const bool json = a.flags.count("json") > 0, watch = a.flags.count("watch") > 0;
  if (int pid = DaemonUsingConfig(c, a); pid > 0) {
    std::fprintf(stderr,
                 "hubsync status: warning: %s is the config of the running daemon (pid %d); a broker "
                 "that makes the username the client id (hub.conf) disconnects the daemon while "
                 "this runs under its account \"%s\": use a reader account (make-passwords.sh "
                 "--reader ID, then --set broker.username=ID --set broker.password_file=...)\n",
                 a.config_path.c_str(), pid, c.broker.username.c_str());
  }
  auto t = NewMqttTransport(LanMqttOptions(c, "hubsync-status-" + std::to_string(getpid())));
  std::mutex mu;
  std::condition_variable cv;
  StatusRows rows;
  bool connected = false;
  std::optional<LinkEvent> failed;  // the first failed attempt
  uint64_t changes = 0;
  auto last_msg = std::chrono::steady_clock::now();
  std::string prefix = c.TopicPrefix() + "gw/";
  t->SetHandlers(
      [&](Message m) {
        auto st = DecodeStatus(m.payload);
        if (!st.ok()) return;
        std::string gw = m.topic.substr(prefix.size());
        gw = gw.substr(0, gw.find('/'));
        if (!IsValidId(gw)) return;
        std::lock_guard<std::mutex> l(mu);
        if (!rows.count(gw) && rows.size() >= kMaxStatusRows) return;
        rows[gw] = *st;
        ++changes;
        last_msg = std::chrono::steady_clock::now();
        cv.notify_all();
      },
      [&](const LinkEvent& e) {
        std::lock_guard<std::mutex> l(mu);
        connected = e.up();
        if (!e.up() && !failed) failed = e;
        cv.notify_all();
      });
  Status s = t->Connect();
  if (!s.ok()) {
    std::fprintf(stderr, "hubsync status: %s\n", s.ToString().c_str());
    return 1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_until(l, deadline, [&] { return connected || failed; }) || !connected) {
      using Kind = LinkEvent::Kind;
      if (!failed) {
        std::fprintf(stderr, "hubsync status: no answer from the broker at %s in %lld ms\n",
                     c.broker.uri.c_str(), static_cast<long long>(timeout_ms));
        return kStatusBrokerTimedOut;
      }
      std::fprintf(stderr, "hubsync status: %s\n", failed->reason.c_str());
      switch (failed->kind) {
        case Kind::kRefused:
        case Kind::kNotMqtt5: return kStatusBrokerRefused;
        case Kind::kTimedOut: return kStatusBrokerTimedOut;
        default: return kStatusBrokerUnreachable;
      }
    }
  }
  // Retained statuses come first; then every gateway is asked to say its
  // status live, which reaches us from any node of a clustered broker
  // (retained messages may stay on the node they were published on).
  t->SubscribeAndWait(prefix + "+/status", 1);
  Message ask;
  ask.topic = c.TopicPrefix() + "status/ask";
  t->Publish(ask);
  {
    // Retained messages arrive right after subscribing; stop once quiet.
    std::unique_lock<std::mutex> l(mu);
    last_msg = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline) {
      auto quiet_until = last_msg + std::chrono::milliseconds(300);
      if (cv.wait_until(l, quiet_until) == std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= last_msg + std::chrono::milliseconds(300)) {
        break;
      }
    }
  }
  const bool tty = isatty(STDOUT_FILENO);
  auto show = [&](const StatusRows& r) {
    if (json) {
      std::printf("%s\n", EncodeStatusReport(r).c_str());
    } else {
      if (watch && tty) std::printf("\033[H\033[J");  // redraw in place
      if (watch) {
        std::printf("hubsync status: home %s, %s (Ctrl-C to stop)\n", c.home.c_str(),
                    FormatIso8601(RealClock()->WallNs()).substr(0, 19).c_str());
      }
      std::printf("%s", FormatStatusTable(r).c_str());
      if (watch && !tty) std::printf("\n");
    }
    std::fflush(stdout);
  };
  StatusRows snapshot;
  {
    std::lock_guard<std::mutex> l(mu);
    snapshot = rows;
  }
  ReconcileStatus(&snapshot, c.backups);
  show(snapshot);
  if (watch) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    uint64_t shown = changes;
    while (true) {
      timespec zero = {0, 0};
      if (sigtimedwait(&stop, nullptr, &zero) > 0) break;
      std::unique_lock<std::mutex> l(mu);
      cv.wait_for(l, std::chrono::milliseconds(200), [&] { return changes != shown; });
      if (changes == shown) continue;
      shown = changes;
      snapshot = rows;
      l.unlock();
      ReconcileStatus(&snapshot, c.backups);
      show(snapshot);
    }
  }
  t->Disconnect(nullptr);
  return AllBackupsInSync(snapshot) ? kStatusInSync : kStatusNotInSync;
}

// `hubsync recover`: what hubsync-recover.service runs at boot, before the
// hub's own services read data_dir.
int Recover(const Config& c) {
  auto r = RecoverDataDir(c);
  if (!r.ok()) {
    std::string why = r.status().message();
    if (r.status().code() == Status::Code::kCorruption) {
      why += "; the tree may mix old and new files: move " + c.data_dir + "/" + kStagingDirName +
             " aside and start the backup daemon, which re-syncs from the primary";
    }
    std::fprintf(stderr, "hubsync recover: cannot recover %s: %s\n", c.data_dir.c_str(), why.c_str());
    return 1;
  }
  if (r->finished) {
    std::fprintf(stderr, "hubsync recover: finished the interrupted apply of transfer %llu "
                         "(%zu steps): %s holds the new state\n",
                 static_cast<unsigned long long>(r->transfer), r->steps, c.data_dir.c_str());
  }
  if (r->discarded) {
    std::fprintf(stderr, "hubsync recover: discarded %zu uncommitted transfer(s)%s\n", r->discarded,
                 r->finished ? "" : ": the tree keeps its old state");
  }
  if (!r->finished && !r->discarded) {
    std::fprintf(stderr, "hubsync recover: nothing to recover in %s\n", c.data_dir.c_str());
  }
  return 0;
}

// `hubsync promote` (SPEC 11): the running backup daemon, which holds
// state_dir, is asked (SIGUSR2 queued with a value) and answers in a
// record once it serves as primary, or why not.
int Promote(const Config& c, const Args& a) {
  int64_t timeout_s = a.options.count("timeout") ? std::atoll(a.options.at("timeout").c_str()) : 60;
  if (timeout_s <= 0) return Usage("--timeout: a number of seconds");
  int pid = StateDirLock::Holder(c.state_dir);
  if (pid <= 0) {
    std::fprintf(stderr, "hubsync promote: no daemon runs on state_dir %s: start the backup "
                         "(hubsync backup -c CONFIG) and promote it\n", c.state_dir.c_str());
    return 1;
  }
  auto state = NewPosixStateStore(c.state_dir);
  Status s = state->Remove("promote.result");
  if (!s.ok()) {
    std::fprintf(stderr, "hubsync promote: %s\n", s.ToString().c_str());
    return 1;
  }
  // The request is the signal's value (daemon.cc): 2 forced, 1 not.
  union sigval value;
  value.sival_int = a.flags.count("force") ? 2 : 1;
  if (sigqueue(pid, SIGUSR2, value) != 0) {
    std::fprintf(stderr, "hubsync promote: cannot signal the daemon (pid %d): %s\n", pid,
                 std::strerror(errno));
    return 1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    auto result = state->Get("promote.result");
    if (result.ok()) {
      state->Remove("promote.result");
      std::string text = result->substr(0, result->find('\n'));
      if (text.rfind("ok ", 0) == 0) {  // "ok <term> <what a forced promotion lost>"
        std::string rest = text.substr(3);
        size_t space = rest.find(' ');
        std::string term = rest.substr(0, space);
        std::string lost = space == std::string::npos ? "" : rest.substr(space + 1);
        std::fprintf(stderr, "hubsync promote: %s is the primary of home %s in term %s\n",
                     c.gateway_id.c_str(), c.home.c_str(), term.c_str());
        if (!lost.empty()) std::fprintf(stderr, "hubsync promote: forced: %s\n", lost.c_str());
        return 0;
      }
      std::fprintf(stderr, "hubsync promote: refused: %s\n",
                   text.rfind("refused ", 0) == 0 ? text.substr(8).c_str() : text.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "hubsync promote: the daemon (pid %d) did not answer within %lld s\n", pid,
               static_cast<long long>(timeout_s));
  return 1;
}

int Unpair(const Config& c, const Args& a) {
  if (a.positional.size() != 1 || !IsValidId(a.positional[0])) {
    return Usage("unpair needs one backup id");
  }
  Status s = Revoke(NewPosixStateStore(c.state_dir).get(), a.positional[0]);
  if (!s.ok()) {
    std::fprintf(stderr, "hubsync unpair: %s\n", s.ToString().c_str());
    return 1;
  }
  const std::string& id = a.positional[0];
  std::fprintf(stderr, "hubsync unpair: %s revoked: its key is gone, its messages are refused\n",
               id.c_str());
  // hubsync does not administer the broker; what is left for its admin:
  std::fprintf(stderr,
               "hubsync unpair: its broker account still exists; on the hub broker run\n"
               "  mosquitto_passwd -D /etc/hubsync/broker/passwd %s\n"
               "and delete its \"user %s\" blocks from /etc/hubsync/broker/acl and oob.acl (or\n"
               "run broker-config/make-passwords.sh again without it), then reload the broker\n"
               "(systemctl reload mosquitto)\n",
               id.c_str(), id.c_str());
  return 0;
}

// Whether `hubsync pair` on this config pairs as a backup: it serves nobody,
// or, not promoted, holds a key as a backup or follows another hub's term.
// (A standby lists `backups` too, but holds a key with its primary.)
bool PairsAsBackup(const Config& c, StateStore* state) {
  if (c.backups.empty()) return true;
  auto claim = LoadClaim(*state);
  if (claim.ok() && claim->primary == c.gateway_id) return false;  // promoted: a primary now
  std::string prefix = c.gateway_id + ".from-";
  for (const std::string& name : state->List("keys")) {
    if (name == c.gateway_id || name.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return claim.ok() && !claim->empty();
}

// "hub-p:2 hub-b1:1" (PairingRound::Summary) as a sentence.
std::string DescribeAdopted(const std::string& summary) {
  std::string out;
  size_t at = 0;
  while (at < summary.size()) {
    size_t end = summary.find(' ', at);
    if (end == std::string::npos) end = summary.size();
    std::string item = summary.substr(at, end - at);
    size_t colon = item.rfind(':');
    if (colon != std::string::npos) {
      out += (out.empty() ? "" : ", ") + std::string("key epoch ") + item.substr(colon + 1) +
             " with " + item.substr(0, colon);
    }
    at = end + 1;
  }
  return out.empty() ? "no key" : out;
}

// On a primary: open the pairing window. On a backup: run the out-of-band
// exchange now (a first key, or a new epoch) with every hub that answers
// over the bridges (its primary, and each standby that would serve it), and
// confirm each over the LAN.
int Pair(const Config& c, const Args& a) {
  auto state = NewPosixStateStore(c.state_dir);
  if (a.options.count("window") || !PairsAsBackup(c, state.get())) {
    int64_t seconds = a.options.count("window") ? std::atoll(a.options.at("window").c_str()) : 120;
    if (seconds <= 0 || seconds > 86400) return Usage("--window: 1 to 86400 seconds");
    Status s = OpenPairingWindow(state.get(), seconds, RealClock()->NowMs(), RealClock()->BootId());
    if (!s.ok()) {
      std::fprintf(stderr, "hubsync pair: %s\n", s.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "hubsync pair: pairing window open for %lld s\n",
                 static_cast<long long>(seconds));
    return 0;
  }
  if (c.oob.uri.empty()) {
    std::fprintf(stderr, "hubsync: oob.uri: required for pairing\n");
    return 2;
  }
  int64_t timeout_s = a.options.count("timeout") ? std::atoll(a.options.at("timeout").c_str()) : 60;
  if (timeout_s <= 0) return Usage("--timeout: a number of seconds");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  // Only the process holding state_dir seals with its keys: a running
  // backup daemon is asked (SIGUSR2) to pair, and we wait for its round's
  // result.
  if (int pid = StateDirLock::Holder(c.state_dir); pid != 0) {
    Status cleared = state->Remove(kPairResult);
    if (pid < 0 || !cleared.ok() || kill(pid, SIGUSR2) != 0) {
      std::fprintf(stderr, "hubsync pair: state_dir %s is in use by another process; stop it "
                           "and run hubsync pair again\n", c.state_dir.c_str());
      return 1;
    }
    std::fprintf(stderr, "hubsync pair: asked the running backup daemon (pid %d) to pair\n", pid);
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto result = state->Get(kPairResult); result.ok()) {
        state->Remove(kPairResult);
        std::string text = result->substr(0, result->find('\n'));
        std::string summary = text.rfind("ok ", 0) == 0 ? text.substr(3) : "";
        std::fprintf(stderr, "hubsync pair: %s agreed and confirmed by the daemon\n",
                     DescribeAdopted(summary).c_str());
        return summary.empty() ? 1 : 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::fprintf(stderr, "hubsync pair: the daemon agreed no new key within %lld s "
                         "(is the bridge up and the primary listening?)\n",
                 static_cast<long long>(timeout_s));
    return 1;
  }
  auto lock = StateDirLock::Acquire(c.state_dir);
  if (!lock.ok()) {
    std::fprintf(stderr, "hubsync pair: %s\n", lock.status().message().c_str());
    return 1;
  }
  auto round = PairingRound::Create(state.get(), c.home, c.gateway_id);
  if (!round.ok()) {
    std::fprintf(stderr, "hubsync pair: %s\n", round.status().ToString().c_str());
    return 1;
  }
  round->set_limits(static_cast<size_t>(c.max_message_bytes), c.compress);
  auto claim = LoadClaim(*state);
  uint64_t term = claim.ok() ? claim->term : 0;
  Topics topics(c);
  auto oob = NewMqttTransport(OobMqttOptions(c, "hubsync-pair-" + std::to_string(getpid())));
  auto lan = NewMqttTransport(LanMqttOptions(c, "hubsync-pair-lan-" + std::to_string(getpid())));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> welcomes, proofs;  // guarded by mu
  bool up = false, lan_up = false;            // guarded by mu
  oob->SetHandlers(
      [&](Message m) {
        std::lock_guard<std::mutex> l(mu);
        welcomes.push_back(std::move(m.payload));
        cv.notify_all();
      },
      [&](const LinkEvent& e) {
        bool connected = e.up();
        if (connected) oob->Subscribe(topics.Welcome(c.gateway_id), 1);
        std::lock_guard<std::mutex> l(mu);
        up = connected;
        cv.notify_all();
      });
  lan->SetHandlers(
      [&](Message m) {
        std::lock_guard<std::mutex> l(mu);
        proofs.push_back(std::move(m.payload));
        cv.notify_all();
      },
      [&](const LinkEvent& e) {
        bool connected = e.up();
        if (connected) {
          lan->Subscribe(topics.ManifestReq(c.gateway_id), 1);
          lan->Subscribe(topics.Delta(c.gateway_id), 1);
        }
        std::lock_guard<std::mutex> l(mu);
        lan_up = connected;
        cv.notify_all();
      });
  if (!oob->Connect().ok() || !lan->Connect().ok()) return 1;
  // Each welcome's key is a candidate, confirmed over the LAN, and adopted
  // once its maker proves it on our request or delta topic (PairingRound).
  auto now_ms = [] { return RealClock()->NowMs(); };
  auto next_hello = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> l(mu);
  while (std::chrono::steady_clock::now() < deadline && !round->Done(now_ms())) {
    if (up && round->saying_hello() && std::chrono::steady_clock::now() >= next_hello) {
      Message hello;
      hello.topic = topics.Hello(c.gateway_id);
      hello.payload = EncodePairHello(round->hello());
      oob->Publish(hello);
      next_hello = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    }
    auto wake = round->saying_hello() ? next_hello
                                      : std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
    cv.wait_until(l, std::min(wake, deadline), [&] { return !welcomes.empty() || !proofs.empty(); });
    std::vector<std::string> ws, ps;
    ws.swap(welcomes);
    ps.swap(proofs);
    bool lan_ready = lan_up;
    l.unlock();
    for (const std::string& text : ws) {
      auto w = DecodePairWelcome(text);
      if (!w.ok() || w->backup != c.gateway_id || !lan_ready) continue;
      auto confirmation = round->OnWelcome(*w, term, now_ms());
      if (!confirmation.ok()) {
        std::fprintf(stderr, "hubsync pair: refused a welcome: %s\n",
                     confirmation.status().message().c_str());
        continue;
      }
      if (!*confirmation) continue;
      Message m;
      m.topic = topics.Ack(c.gateway_id);
      m.payload = (*confirmation)->sealed;
      lan->Publish(m);
      std::fprintf(stderr, "hubsync pair: derived key epoch %u with %s%s; confirmation sent\n",
                   (*confirmation)->epoch, (*confirmation)->maker.c_str(),
                   (*confirmation)->standby ? " (a standby)" : "");
    }
    for (const std::string& msg : ps) {
      auto adopted = round->TryProof(msg, now_ms());
      if (!adopted.ok()) {
        std::fprintf(stderr, "hubsync pair: %s\n", adopted.status().ToString().c_str());
        return 1;
      }
    }
    l.lock();
  }
  l.unlock();
  oob->Disconnect(nullptr);
  lan->Disconnect(nullptr);
  if (round->adopted().empty()) {
    std::fprintf(stderr, "hubsync pair: no key agreed and confirmed within %lld s (is the bridge "
                         "up and the primary listening?)\n",
                 static_cast<long long>(timeout_s));
    return 1;
  }
  std::fprintf(stderr, "hubsync pair: %s agreed and confirmed\n",
               DescribeAdopted(round->Summary()).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  if (argc >= 2 && (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version"))) {
    std::printf("%s\n", kVersion);
    return 0;
  }
  if (argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::printf("%s", kUsage);
    return 0;
  }
  BlockStopSignals();
  Args a;
  if (int rc = ParseArgs(argc, argv, &a)) return rc;
  static const char* kCommands[] = {"primary", "backup", "bridge",    "pair",
                                    "unpair",  "status", "keygen",    "keyimport", "recover",
                                    "promote"};
  bool known = false;
  for (const char* k : kCommands) known |= a.command == k;
  if (!known) return Usage("unknown command " + a.command);
  auto config = LoadConfig(a.config_path, a.overrides);
  if (!config.ok()) {
    std::fprintf(stderr, "hubsync: %s\n", config.status().message().c_str());
    return 2;
  }
  if (a.command == "primary") return RunDaemon(Role::kPrimary, *config);
  if (a.command == "backup") return RunDaemon(Role::kBackup, *config);
  if (a.command == "keygen") return Keygen(*config, a);
  if (a.command == "keyimport") return Keyimport(*config, a);
  if (a.command == "status") return PrintStatus(*config, a);
  if (a.command == "bridge") return RunBridge(*config);
  if (a.command == "unpair") return Unpair(*config, a);
  if (a.command == "recover") return Recover(*config);
  if (a.command == "promote") return Promote(*config, a);
  return Pair(*config, a);
}

}  // namespace
}  // namespace hubsync

int main(int argc, char** argv) { return hubsync::Main(argc, argv); }
