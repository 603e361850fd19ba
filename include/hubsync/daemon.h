// One owner object per daemon (asio-server style): it builds the real seams
// (Paho transport, POSIX filesystem, inotify, real clock), the EventLoop and
// the engine, installs SIGINT/SIGTERM handling, runs until a signal, and
// shuts down on one path: stop the loop, publish the final "offline"
// status, disconnect.
#ifndef HUBSYNC_DAEMON_H_
#define HUBSYNC_DAEMON_H_

#include <string>

#include "hubsync/config.h"
#include "hubsync/engine.h"

namespace hubsync {

// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it
// starts later). Call first thing in main.
void BlockStopSignals();

// Logs "TIME hubsync[ROLE/ID] LEVEL: text" lines to stderr at or above `min`.
LogFn StderrLogger(const std::string& tag, LogLevel min);

// Runs a daemon until SIGINT/SIGTERM. Returns the process exit code
// (0 on a clean stop, 1 on a fatal error, logged).
int RunDaemon(Role role, const Config& config);

}  // namespace hubsync

#endif  // HUBSYNC_DAEMON_H_
