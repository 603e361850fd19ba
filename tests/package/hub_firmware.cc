// Hub firmware embedding hubsync: loads a hubsync config and runs the backup
// (or primary) engine in-process with the library's real seams, the way a
// hub's own main loop would host it.
//
//   hub_firmware backup|primary CONFIG
#include <cstdio>
#include <string>

#include "hubsync/config.h"
#include "hubsync/daemon.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: hub_firmware backup|primary CONFIG\n");
    return 2;
  }
  hubsync::BlockStopSignals();
  std::string role = argv[1];
  auto config = hubsync::LoadConfig(argv[2], {});
  if (!config.ok()) {
    std::fprintf(stderr, "hub_firmware: %s\n", config.status().message().c_str());
    return 2;
  }
  std::fprintf(stderr, "hub_firmware: embedding hubsync as %s of home %s\n", role.c_str(),
               config->home.c_str());
  return hubsync::RunDaemon(role == "primary" ? hubsync::Role::kPrimary : hubsync::Role::kBackup,
                            *config);
}
