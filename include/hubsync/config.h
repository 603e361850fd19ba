// The daemon configuration of SPEC section 4, parsed from JSON.
//
// LoadConfig reads a file, applies `--set key.path=value` overrides (the value
// is taken as JSON when it parses as JSON, otherwise as a string), then checks
// every key. Any problem yields Status::InvalidArgument whose message names the
// key, e.g. "broker.uri: must look like tcp://HOST:PORT". Unknown keys are an
// error so that a typo never silently falls back to a default.
#ifndef HUBSYNC_CONFIG_H_
#define HUBSYNC_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hubsync/status.h"

namespace hubsync {

// A config file larger than this is refused (exit 2) before it is parsed.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// When to sync (SPEC 7). With several set, any of them triggers a sync.
struct Policy {
  bool on_change = true;
  int64_t delay_ms = 0;     // 0: no debounce
  int64_t period_s = 3600;  // 0: no periodic sync
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct Config {
  std::string home;
  std::string gateway_id;
  struct Broker {
    std::string uri;
    std::string username;       // empty: connect without credentials
    std::string password_file;  // empty: no password
    std::string password;       // read from password_file at load time
    std::string ca_file;        // the CA that signed the broker (TLS URIs only); empty:
                                // the system's roots. Chain and host name are verified.
  } broker;
  // This hub's OOB listener; it requires an account (the shipped one has no
  // anonymous access), usually this hub's own gateway account there.
  struct Oob {
    std::string uri;
    std::string username;
    std::string password_file;
    std::string password;  // read from password_file at load time
  } oob;
  // Home Assistant MQTT discovery (published by the primary for each backup).
  struct HomeAssistant {
    bool discovery = false;
    std::string prefix = "homeassistant";
  } homeassistant;
  std::string data_dir;
  std::string state_dir;
  std::vector<std::string> exclude;
  std::vector<std::string> backups;
  Policy policy;
  struct Bridge {
    std::string link;
    bool listen = true;
    std::string backup;  // the backup whose pairing this link carries ("" = gateway_id)
  } bridge;
  int64_t max_message_bytes = 262144;
  // Compress what is sealed when that saves space (zstd). Message sizes then
  // depend on content: set false where someone who can watch sizes on the
  // LAN can also put chosen bytes into the replicated files.
  bool compress = true;
  LogLevel log_level = LogLevel::kInfo;

  // "hubsync/v1/<home>/"
  std::string TopicPrefix() const { return "hubsync/v1/" + home + "/"; }
};

// A "key.path=value" override from the command line.
using Override = std::pair<std::string, std::string>;

// Splits "a.b=value" into {"a.b","value"}; error names the argument.
Result<Override> ParseOverride(const std::string& arg);

// Parses and validates configuration text. `origin` names the source in errors.
Result<Config> ParseConfig(const std::string& json_text,
                           const std::vector<Override>& overrides);

// Reads `path`, then ParseConfig, then checks the filesystem facts: data_dir
// exists and is a directory, the password file is readable. state_dir is
// created (mode 0700) when missing.
Result<Config> LoadConfig(const std::string& path,
                          const std::vector<Override>& overrides);

// Valid ids for home and gateways: [A-Za-z0-9_-]{1,64}. They become topic
// levels and file names, so nothing else is allowed.
bool IsValidId(const std::string& id);

}  // namespace hubsync

#endif  // HUBSYNC_CONFIG_H_
