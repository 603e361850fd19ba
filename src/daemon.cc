#include "hubsync/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <thread>
#include <type_traits>

#include "file_util.h"
#include "hubsync/event_loop.h"

namespace hubsync {

void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

LogFn StderrLogger(const std::string& tag, LogLevel min) {
  auto mu = std::make_shared<std::mutex>();
  return [tag, min, mu](LogLevel level, const std::string& text) {
    if (level < min) return;
    static const char* kNames[] = {"debug", "info", "warn", "error"};
    std::string line = FormatIso8601(RealClock()->WallNs()) + " hubsync[" + tag + "] " +
                       kNames[static_cast<int>(level)] + ": " + text + "\n";
    std::lock_guard<std::mutex> l(*mu);
    fputs(line.c_str(), stderr);
  };
}

namespace {

const char* RoleName(Role r) { return r == Role::kPrimary ? "primary" : "backup"; }

// `hubsync promote` queues SIGUSR2 with one of these values (sigqueue), so
// the request needs no file the daemon's user might not be able to read;
// the daemon answers in the state_dir record kPromoteResult.
constexpr int kPromoteSignalValue = 1;
constexpr int kPromoteForcedSignalValue = 2;
constexpr char kPromoteResult[] = "promote.result";

}  // namespace

int RunDaemon(Role start_role, const Config& config) {
  Role role = start_role;
  LogFn log = StderrLogger(std::string(RoleName(role)) + "/" + config.gateway_id, config.log_level);
  // Keys and counters are this process's alone while it runs.
  auto lock = StateDirLock::Acquire(config.state_dir);
  if (!lock.ok()) {
    log(LogLevel::kError, "cannot start: " + lock.status().message());
    return 1;
  }
  std::unique_ptr<FileSystem> fs = NewPosixFileSystem(config.data_dir);
  std::unique_ptr<StateStore> state = NewPosixStateStore(config.state_dir);
  PathFilter filter(config.exclude);
  std::unique_ptr<ChangeSource> changes;

  EventLoop loop(RealClock());
  MqttOptions mo = LanMqttOptions(config, "hubsync-" + config.home + "-" + config.gateway_id);

  EngineEnv env;
  env.config = config;
  env.fs = fs.get();
  env.state = state.get();
  env.clock = RealClock();
  // The broker publishes this will (retained "offline") if we vanish.
  {
    GatewayStatus offline;
    offline.role = RoleName(role);
    offline.state = "offline";
    mo.will.topic = Topics(config).Status(config.gateway_id);
    mo.will.payload = EncodeStatus(offline);
    mo.will.retained = true;
  }
  std::unique_ptr<Transport> transport = NewMqttTransport(mo);
  env.transport = transport.get();
  std::unique_ptr<Transport> oob;
  if (!config.oob.uri.empty()) {
    oob = NewMqttTransport(OobMqttOptions(config, mo.client_id + "-oob"));
    env.oob = oob.get();
  }

  // The engine of the current role, and how it starts: a primary watches
  // data_dir, taking changes before its first scan so none falls between.
  std::unique_ptr<Engine> engine;
  auto make_engine = [&](Role r) -> Status {
    if (changes) changes->Stop();
    changes.reset();
    env.log = StderrLogger(std::string(RoleName(r)) + "/" + config.gateway_id, config.log_level);
    env.changes = nullptr;
    if (r == Role::kPrimary) {
      changes = NewInotifySource(config.data_dir, &filter);
      env.changes = changes.get();
      engine = std::make_unique<PrimaryEngine>(env);
      Status s = changes->Start([&] { loop.Post([&] { engine->OnChanges(); }); });
      if (!s.ok()) return Status::IoError("cannot watch data_dir: " + s.ToString());
    } else {
      engine = std::make_unique<BackupEngine>(env);
    }
    log = env.log;
    role = r;
    return Status::Ok();
  };
  if (Status s = make_engine(role); !s.ok()) {
    log(LogLevel::kError, s.message());
    return 1;
  }
  int exit_code = 0;
  // The last news of each connection, handed to an engine that takes over.
  std::optional<LinkEvent> lan_state, oob_state;
  // A role change the engine asks for (SPEC 11): the other engine starts
  // over the same seams and connections, told of them as if they had just
  // come up. A failure to start it is fatal (the unit restarts the daemon,
  // whose stored term then decides its role).
  auto hand_over = [&] {
    std::optional<Role> next = engine->Handover();
    if (!next) return;
    Role from = role;
    Status st = make_engine(*next);
    if (st.ok()) st = engine->Start();
    if (!st.ok()) {
      log(LogLevel::kError, "cannot start as " + std::string(RoleName(*next)) + ": " + st.ToString());
      exit_code = 1;
      loop.Stop();
      return;
    }
    log(LogLevel::kInfo, std::string("now ") + RoleName(role) + " (was " + RoleName(from) + ")");
    if (lan_state) engine->OnConnection(*lan_state);
    if (oob_state) engine->OnOobConnection(*oob_state);
  };
  // Received messages wait in a bounded queue (EventLoop::PostBounded): a
  // flood faster than the engine works is dropped, said once per 1,000.
  // They go to whichever engine runs when they are handled.
  auto deliver = [&](Message m, bool lan) {
    size_t bytes = m.payload.size() + m.topic.size() + 256;
    if (loop.PostBounded(bytes, [&engine, &hand_over, lan, m = std::move(m)] {
          if (lan) engine->OnMessage(m);
          else engine->OnOobMessage(m);
          hand_over();  // a message may end a role (promote request, fencing)
        })) {
      return;
    }
    if (loop.dropped() % 1000 == 1) {
      log(LogLevel::kWarn, "incoming messages arrive faster than they are handled: " +
                               std::to_string(loop.dropped()) + " dropped so far");
    }
  };
  // Connecting (Paho takes ~100 ms to) goes on while the engine reads the
  // tree; what arrives waits in the loop until Start is done.
  transport->SetHandlers([&](Message m) { deliver(std::move(m), true); },
                         [&](const LinkEvent& e) {
                           loop.Post([&engine, &lan_state, e] {
                             lan_state = e;
                             engine->OnConnection(e);
                           });
                         });
  Status s = transport->Connect();
  if (!s.ok()) {
    log(LogLevel::kError, "broker.uri: " + s.ToString());
    return 1;
  }
  if (oob) {
    oob->SetHandlers([&](Message m) { deliver(std::move(m), false); },
                     [&](const LinkEvent& e) {
                       loop.Post([&engine, &oob_state, e] {
                         oob_state = e;
                         engine->OnOobConnection(e);
                       });
                     });
    s = oob->Connect();
    if (!s.ok()) {
      log(LogLevel::kError, "oob.uri: " + s.ToString());
      return 1;
    }
  }
  s = engine->Start();
  if (!s.ok()) {
    log(LogLevel::kError, "cannot start: " + s.ToString());
    return 1;
  }
  log(LogLevel::kInfo, std::string("started as ") + RoleName(role) + " of home " + config.home +
                           " on " + config.broker.uri);

  // SIGUSR2 queued with a promote value is `hubsync promote`; any other
  // SIGUSR2 is `hubsync pair` asking to rotate the key.
  auto on_usr2 = [&](int value) {
    if (value != kPromoteSignalValue && value != kPromoteForcedSignalValue) {
      engine->RotateKey();
      return;
    }
    auto done = engine->Promote(value == kPromoteForcedSignalValue);
    if (done.ok()) hand_over();  // answered once we serve
    std::string result = !done.ok()   ? "refused " + done.status().message() + "\n"
                         : exit_code  ? "refused this hub could not start as primary\n"
                                      : "ok " + std::to_string(done->claim.term) + " " + done->lost + "\n";
    if (!done.ok()) log(LogLevel::kWarn, "promotion refused: " + done.status().message());
    if (Status w = state->Put(kPromoteResult, result); !w.ok()) {
      log(LogLevel::kError, "cannot answer hubsync promote: " + w.ToString());
    }
  };

  std::thread signals([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    while (true) {
      siginfo_t info{};
      int sig = sigwaitinfo(&set, &info);
      if (sig < 0) continue;  // EINTR
      if (sig == SIGUSR1) {
        log(LogLevel::kInfo, "SIGUSR1: checking every backup now");
        loop.Post([&engine] { engine->CheckAll(); });
        continue;
      }
      if (sig == SIGUSR2) {
        int value = info.si_code == SI_QUEUE ? info.si_value.sival_int : 0;
        loop.Post([&on_usr2, value] { on_usr2(value); });
        continue;
      }
      log(LogLevel::kInfo, std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
      loop.Stop();
      return;
    }
  });
  loop.Run([&](int64_t now) {
    int64_t next = engine->Tick(now);
    if (engine->Handover()) {
      hand_over();
      return now;  // the new engine's first tick at once
    }
    return next;
  });
  if (exit_code != 0) kill(getpid(), SIGTERM);  // release the signal thread
  signals.join();
  if (changes) changes->Stop();
  Message final_status = engine->FinalStatus();
  if (oob) oob->Disconnect(nullptr);
  transport->Disconnect(&final_status);
  log(LogLevel::kInfo, "stopped");
  return exit_code;
}

}  // namespace hubsync
