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

// The shared shape of both daemons; Engine is PrimaryEngine or BackupEngine.
template <typename Engine>
int Run(const char* role, const Config& config, bool watch_changes) {
  LogFn log = StderrLogger(std::string(role) + "/" + config.gateway_id, config.log_level);
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
  if (watch_changes) changes = NewInotifySource(config.data_dir, &filter);

  EventLoop loop(RealClock());
  MqttOptions mo = LanMqttOptions(config, "hubsync-" + config.home + "-" + config.gateway_id);

  EngineEnv env;
  env.config = config;
  env.fs = fs.get();
  env.state = state.get();
  env.clock = RealClock();
  env.changes = changes.get();
  env.log = log;
  // The broker publishes this will (retained "offline") if we vanish.
  {
    GatewayStatus offline;
    offline.role = role;
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
  Engine engine(env);

  // Changes are taken before the first scan so none falls between them.
  if constexpr (std::is_same_v<Engine, PrimaryEngine>) {
    Status s = changes->Start([&] { loop.Post([&] { engine.OnChanges(); }); });
    if (!s.ok()) {
      log(LogLevel::kError, "cannot watch data_dir: " + s.ToString());
      return 1;
    }
  }
  // Received messages wait in a bounded queue (EventLoop::PostBounded): a
  // flood faster than the engine works is dropped, said once per 1,000.
  auto deliver = [&](Message m, void (Engine::*handler)(const Message&)) {
    size_t bytes = m.payload.size() + m.topic.size() + 256;
    if (loop.PostBounded(bytes, [&engine, handler, m = std::move(m)] { (engine.*handler)(m); })) {
      return;
    }
    if (loop.dropped() % 1000 == 1) {
      log(LogLevel::kWarn, "incoming messages arrive faster than they are handled: " +
                               std::to_string(loop.dropped()) + " dropped so far");
    }
  };
  // Connecting (Paho takes ~100 ms to) goes on while the engine reads the
  // tree; what arrives waits in the loop until Start is done.
  transport->SetHandlers(
      [&](Message m) { deliver(std::move(m), &Engine::OnMessage); },
      [&](const LinkEvent& e) { loop.Post([&engine, e] { engine.OnConnection(e); }); });
  Status s = transport->Connect();
  if (!s.ok()) {
    log(LogLevel::kError, "broker.uri: " + s.ToString());
    return 1;
  }
  if (oob) {
    oob->SetHandlers(
        [&](Message m) { deliver(std::move(m), &Engine::OnOobMessage); },
        [&](const LinkEvent& e) { loop.Post([&engine, e] { engine.OnOobConnection(e); }); });
    s = oob->Connect();
    if (!s.ok()) {
      log(LogLevel::kError, "oob.uri: " + s.ToString());
      return 1;
    }
  }
  s = engine.Start();
  if (!s.ok()) {
    log(LogLevel::kError, "cannot start: " + s.ToString());
    return 1;
  }
  log(LogLevel::kInfo, std::string("started as ") + role + " of home " + config.home +
                           " on " + config.broker.uri);

  std::thread signals([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    while (true) {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGUSR1) {
        log(LogLevel::kInfo, "SIGUSR1: checking every backup now");
        loop.Post([&engine] { engine.CheckAll(); });
        continue;
      }
      if (sig == SIGUSR2) {  // `hubsync pair` asks the running daemon to rotate
        loop.Post([&engine] { engine.RotateKey(); });
        continue;
      }
      log(LogLevel::kInfo, std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
      loop.Stop();
      return;
    }
  });
  loop.Run([&](int64_t now) { return engine.Tick(now); });
  signals.join();
  if (changes) changes->Stop();
  Message final_status = engine.FinalStatus();
  if (oob) oob->Disconnect(nullptr);
  transport->Disconnect(&final_status);
  log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int RunDaemon(Role role, const Config& config) {
  if (role == Role::kPrimary) return Run<PrimaryEngine>("primary", config, true);
  return Run<BackupEngine>("backup", config, false);
}

}  // namespace hubsync
