#include "hubsync/config.h"
#include "hubsync/ha_discovery.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_util.h"

namespace hubsync {
namespace {

const char kMinimal[] =
    R"({"home":"home-1","gateway_id":"hub-a","broker":{"uri":"tcp://127.0.0.1:1883"},)"
    R"("data_dir":"/tmp","state_dir":"/tmp/st"})";

TEST(ConfigTest, MinimalGetsDefaults) {
  auto c = ParseConfig(kMinimal, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->home, "home-1");
  EXPECT_TRUE(c->policy.on_change);
  EXPECT_EQ(c->policy.delay_ms, 0);
  EXPECT_EQ(c->policy.period_s, 3600);
  EXPECT_EQ(c->max_message_bytes, 262144);
  EXPECT_TRUE(c->compress);
  EXPECT_TRUE(c->backups.empty());
  EXPECT_EQ(c->TopicPrefix(), "hubsync/v1/home-1/");
  EXPECT_FALSE(c->homeassistant.discovery);
  EXPECT_EQ(c->homeassistant.prefix, "homeassistant");
}

TEST(ConfigTest, FullExampleFromSpecParses) {
  const char* text = R"({
    "home": "home-1", "gateway_id": "hub-living-room",
    "broker": { "uri": "tcp://127.0.0.1:1883", "username": "hub-living-room",
                "password_file": "/etc/hubsync/broker.pass", "ca_file": null },
    "oob":    { "uri": "tcp://127.0.0.1:1884" },
    "data_dir": "/var/lib/hub/data", "state_dir": "/var/lib/hubsync",
    "exclude": ["cache/**", "**/*.tmp", "db/*-wal"],
    "backups": ["hub-kitchen", "hub-bedroom"],
    "policy":  { "on_change": true, "delay_ms": 0, "period_s": 3600 },
    "bridge":  { "link": "unix:/run/hubsync/ble.sock", "listen": true },
    "max_message_bytes": 262144, "log_level": "info" })";
  auto c = ParseConfig(text, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->backups.size(), 2u);
  EXPECT_EQ(c->exclude[2], "db/*-wal");
  EXPECT_EQ(c->bridge.link, "unix:/run/hubsync/ble.sock");
}

struct BadCase {
  std::vector<Override> overrides;
  std::string key;  // the message must start with it
};

TEST(ConfigTest, BadInputNamesTheKey) {
  const BadCase cases[] = {
      {{{"colour", "\"red\""}}, "colour"},
      {{{"broker.port", "1883"}}, "broker.port"},
      {{{"broker.uri", "127.0.0.1:1883"}}, "broker.uri"},
      {{{"broker.uri", "tcp://host"}}, "broker.uri"},
      {{{"broker.uri", "tcp://host:99999"}}, "broker.uri"},
      {{{"broker.uri", "5"}}, "broker.uri"},
      {{{"home", "a/b"}}, "home"},
      {{{"gateway_id", ""}}, "gateway_id"},
      {{{"policy.delay_ms", "\"soon\""}}, "policy.delay_ms"},
      {{{"policy.period_s", "-1"}}, "policy.period_s"},
      {{{"policy.on_change", "1"}}, "policy.on_change"},
      {{{"exclude", "[1]"}}, "exclude"},
      {{{"backups", "[\"hub-a\"]"}}, "backups"},
      {{{"backups", "[\"x\",\"x\"]"}}, "backups"},
      {{{"max_message_bytes", "10"}}, "max_message_bytes"},
      {{{"compress", "\"yes\""}}, "compress"},
      {{{"log_level", "loud"}}, "log_level"},
      {{{"bridge.link", "tcp:x"}}, "bridge.link"},
      {{{"homeassistant.discovery", "\"yes\""}}, "homeassistant.discovery"},
      {{{"homeassistant.prefix", "\"ha/#\""}}, "homeassistant.prefix"},
      {{{"homeassistant.colour", "1"}}, "homeassistant.colour"},
      // Issue 8, finding 4: a trust file with a plaintext URI stayed plaintext.
      {{{"broker.ca_file", "/etc/hubsync/ca.crt"}}, "broker.ca_file"},
  };
  for (const auto& c : cases) {
    auto r = ParseConfig(kMinimal, c.overrides);
    ASSERT_FALSE(r.ok()) << c.key;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(c.key + ":", 0), 0u) << r.status().message();
  }
}

TEST(ConfigTest, MissingRequiredKeys) {
  auto r = ParseConfig(R"({"home":"h","gateway_id":"g","data_dir":"/d","state_dir":"/s"})", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "broker.uri: required");
  r = ParseConfig(R"({"home":"h","gateway_id":"g","broker":{"uri":"tcp://a:1"},"state_dir":"/s"})",
                  {});
  EXPECT_EQ(r.status().message(), "data_dir: required");
  r = ParseConfig("{not json", {});
  EXPECT_EQ(r.status().message().rfind("config: invalid JSON", 0), 0u);
}

TEST(ConfigTest, OverridesSetNestedValuesAndStrings) {
  auto r = ParseConfig(kMinimal, {{"broker.uri", "tcp://127.0.0.1:18830"},
                                  {"policy.delay_ms", "250"},
                                  {"backups", "[\"b1\",\"b2\"]"},
                                  {"log_level", "debug"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->broker.uri, "tcp://127.0.0.1:18830");
  EXPECT_EQ(r->policy.delay_ms, 250);
  EXPECT_EQ(r->backups.size(), 2u);
  EXPECT_EQ(r->log_level, LogLevel::kDebug);
  EXPECT_FALSE(ParseOverride("novalue").ok());
  EXPECT_FALSE(ParseOverride("=x").ok());
  auto o = ParseOverride("a.b=c=d");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->second, "c=d");
}

TEST(ConfigTest, LoadChecksTheFilesystem) {
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("c.json"), kMinimal);
  auto r = LoadConfig(dir.Sub("c.json"), {{"data_dir", dir.Sub("nope")}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("data_dir:", 0), 0u);
  testing::WriteFile(dir.Sub("file"), "x");
  r = LoadConfig(dir.Sub("c.json"), {{"data_dir", dir.Sub("file")}});
  EXPECT_EQ(r.status().message().rfind("data_dir:", 0), 0u);
  r = LoadConfig(dir.Sub("c.json"), {{"data_dir", dir.path()},
                                     {"state_dir", dir.Sub("state")},
                                     {"broker.password_file", dir.Sub("missing.pass")}});
  EXPECT_EQ(r.status().message().rfind("broker.password_file:", 0), 0u);
  testing::WriteFile(dir.Sub("ok.pass"), "s3cret\n");
  r = LoadConfig(dir.Sub("c.json"), {{"data_dir", dir.path()},
                                     {"state_dir", dir.Sub("state")},
                                     {"broker.password_file", dir.Sub("ok.pass")}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->broker.password, "s3cret");
  struct stat st;
  ASSERT_EQ(stat(dir.Sub("state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  r = LoadConfig(dir.Sub("absent.json"), {});
  EXPECT_EQ(r.status().message().rfind("config:", 0), 0u);
}

}  // namespace
}  // namespace hubsync

namespace hubsync {
namespace {

// Home Assistant discovery follows its conventions: config topics under the
// prefix, state and availability from the retained status and its LWT.
TEST(HomeAssistantTest, EachBackupGetsInSyncLagAndLastSyncEntities) {
  auto c = ParseConfig(kMinimal, {{"homeassistant.discovery", "true"}});
  ASSERT_TRUE(c.ok());
  auto msgs = HomeAssistantDiscovery(*c, "hub-kitchen");
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].topic, "homeassistant/binary_sensor/hubsync_home-1_hub-kitchen/in_sync/config");
  EXPECT_EQ(msgs[1].topic, "homeassistant/sensor/hubsync_home-1_hub-kitchen/lag/config");
  EXPECT_EQ(msgs[2].topic, "homeassistant/sensor/hubsync_home-1_hub-kitchen/last_sync/config");
  EXPECT_EQ(msgs[3].topic, "homeassistant/sensor/hubsync_home-1_hub-kitchen/primary/config");
  EXPECT_NE(msgs[3].payload.find("value_json.primary"), std::string::npos) << "the primary it follows";
  const std::string status = "\"hubsync/v1/home-1/gw/hub-kitchen/status\"";
  for (const Message& m : msgs) {
    EXPECT_TRUE(m.retained);
    EXPECT_NE(m.payload.find("\"state_topic\":" + status), std::string::npos) << m.payload;
    EXPECT_NE(m.payload.find("\"availability_topic\":" + status), std::string::npos);
    EXPECT_NE(m.payload.find("value_json.state == 'offline'"), std::string::npos);
    EXPECT_NE(m.payload.find("\"identifiers\":[\"hubsync_home-1_hub-kitchen\"]"), std::string::npos);
    EXPECT_NE(m.payload.find("\"unique_id\":\"hubsync_home-1_hub-kitchen_"), std::string::npos);
  }
  EXPECT_NE(msgs[0].payload.find("value_json.state == 'in_sync'"), std::string::npos);
  // Home Assistant 2026.4 honours default_entity_id (domain.slug), not object_id.
  EXPECT_NE(msgs[0].payload.find("\"default_entity_id\":\"binary_sensor.hubsync_home_1_hub_kitchen_in_sync\""),
            std::string::npos) << msgs[0].payload;
  EXPECT_NE(msgs[1].payload.find("\"default_entity_id\":\"sensor.hubsync_home_1_hub_kitchen_lag\""),
            std::string::npos) << msgs[1].payload;
  for (const Message& m : msgs) EXPECT_EQ(m.payload.find("object_id"), std::string::npos) << m.payload;
  EXPECT_NE(msgs[1].payload.find("\"device_class\":\"duration\""), std::string::npos);
  EXPECT_NE(msgs[1].payload.find("\"unit_of_measurement\":\"s\""), std::string::npos);
  EXPECT_NE(msgs[2].payload.find("\"device_class\":\"timestamp\""), std::string::npos);
  auto other = ParseConfig(kMinimal, {{"homeassistant.prefix", "\"ha\""}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(HomeAssistantDiscovery(*other, "b")[0].topic.rfind("ha/binary_sensor/", 0), 0u);
}

TEST(HomeAssistantTest, ThePrimaryHasItsOwnDeviceAndARevokedBackupsConfigsAreCleared) {
  auto c = ParseConfig(kMinimal, {{"homeassistant.discovery", "true"}});
  ASSERT_TRUE(c.ok());
  auto mine = HomeAssistantPrimaryDiscovery(*c);
  ASSERT_EQ(mine.size(), 5u);
  const std::string node = "hubsync_home-1_" + c->gateway_id;
  EXPECT_EQ(mine[0].topic, "homeassistant/binary_sensor/" + node + "/backups_in_sync/config");
  EXPECT_EQ(mine[1].topic, "homeassistant/sensor/" + node + "/state/config");
  EXPECT_EQ(mine[2].topic, "homeassistant/sensor/" + node + "/changes_due/config");
  // SPEC 11: Home Assistant shows who is primary, and the term.
  EXPECT_EQ(mine[3].topic, "homeassistant/sensor/" + node + "/primary/config");
  EXPECT_NE(mine[3].payload.find("value_json.primary"), std::string::npos);
  EXPECT_EQ(mine[4].topic, "homeassistant/sensor/" + node + "/term/config");
  EXPECT_NE(mine[4].payload.find("value_json.term"), std::string::npos);
  for (const Message& m : mine) {
    EXPECT_TRUE(m.retained);
    EXPECT_NE(m.payload.find("\"state_topic\":\"hubsync/v1/home-1/gw/" + c->gateway_id + "/status\""),
              std::string::npos) << m.payload;
    EXPECT_NE(m.payload.find("\"model\":\"primary hub\""), std::string::npos) << m.payload;
  }
  EXPECT_NE(mine[2].payload.find("value_json.due"), std::string::npos);
  EXPECT_NE(mine[2].payload.find("\"device_class\":\"timestamp\""), std::string::npos);

  auto gone = HomeAssistantRemoval(*c, "hub-kitchen");
  auto was = HomeAssistantDiscovery(*c, "hub-kitchen");
  ASSERT_EQ(gone.size(), was.size());
  for (size_t i = 0; i < gone.size(); ++i) {
    EXPECT_EQ(gone[i].topic, was[i].topic);
    EXPECT_TRUE(gone[i].retained);
    EXPECT_TRUE(gone[i].payload.empty()) << "an empty retained config removes the entity";
  }
}

}  // namespace
}  // namespace hubsync
