// Every JSON document hubsync reads is bounded before it is parsed (issue 8,
// finding 1: an array nested ~130,000 deep killed the primary with SIGSEGV).
#include "hubsync/messages.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "hubsync/config.h"
#include "hubsync/policy.h"
#include "hubsync/status_view.h"

namespace hubsync {
namespace {

std::string Nested(size_t depth, const std::string& open = "[", const std::string& close = "]") {
  std::string s;
  s.reserve(depth * (open.size() + close.size()));
  for (size_t i = 0; i < depth; ++i) s += open;
  for (size_t i = 0; i < depth; ++i) s += close;
  return s;
}

// Each reader of a plaintext message, as the daemons and `hubsync status`
// call it.
struct Reader {
  const char* name;
  std::function<Status(const std::string&)> parse;
};

std::vector<Reader> Readers() {
  return {
      {"status", [](const std::string& j) { return DecodeStatus(j).status(); }},
      {"hello", [](const std::string& j) { return DecodePairHello(j).status(); }},
      {"welcome", [](const std::string& j) { return DecodePairWelcome(j).status(); }},
      {"event", [](const std::string& j) { return DecodeEvent(j).status(); }},
      {"policy", [](const std::string& j) { return ParseModulePolicy(j).status(); }},
      {"config", [](const std::string& j) { return ParseConfig(j, {}).status(); }},
  };
}

TEST(BoundedJsonTest, DeepNestingIsRefusedByEveryReaderWithoutRecursion) {
  // Deep enough to overflow RapidJSON's recursive parser many times over.
  const std::string deep_array = Nested(130000);
  const std::string deep_in_object = "{\"v\":1,\"state\":" + Nested(60000) + "}";
  const std::string deep_objects = Nested(20000, "{\"a\":", "}");
  for (const Reader& r : Readers()) {
    for (const std::string* doc : {&deep_array, &deep_in_object, &deep_objects}) {
      Status s = r.parse(*doc);
      EXPECT_FALSE(s.ok()) << r.name;
    }
  }
}

TEST(BoundedJsonTest, TheLimitsAreSixteenLevelsAndTheMessageSize) {
  const std::string status17 = "{\"v\":1,\"state\":\"in_sync\",\"x\":" + Nested(16) + "}";
  const std::string status16 = "{\"v\":1,\"state\":\"in_sync\",\"x\":" + Nested(15) + "}";
  auto deep = DecodeStatus(status17);
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), Status::Code::kRejected);
  EXPECT_NE(deep.status().message().find("nested deeper than 16"), std::string::npos);
  EXPECT_TRUE(DecodeStatus(status16).ok()) << DecodeStatus(status16).status().ToString();

  std::string big = "{\"v\":1,\"state\":\"in_sync\",\"error\":\"" +
                    std::string(kMaxJsonMessageBytes, 'x') + "\"}";
  auto large = DecodeStatus(big);
  ASSERT_FALSE(large.ok());
  EXPECT_EQ(large.status().code(), Status::Code::kRejected);
  EXPECT_NE(large.status().message().find("larger than"), std::string::npos);
}

TEST(BoundedJsonTest, BracketsInsideStringsDoNotCount) {
  std::string s = "{\"v\":1,\"state\":\"in_sync\",\"error\":\"" + std::string(100, '[') +
                  "\\\"" + std::string(100, '{') + "\"}";
  auto st = DecodeStatus(s);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->error, std::string(100, '[') + "\"" + std::string(100, '{'));
}

TEST(BoundedJsonTest, ConfigNamesTheProblem) {
  auto c = ParseConfig(Nested(100), {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "config: JSON nested deeper than 16");
  auto p = ParseModulePolicy("{\"paths\":" + Nested(40) + "}");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "policy: JSON nested deeper than 16");
  // An override's value is bounded too (it is then taken as a string).
  auto o = ParseConfig(R"({"home":"h","gateway_id":"g","broker":{"uri":"tcp://127.0.0.1:1"},)"
                       R"("data_dir":"/d","state_dir":"/s"})",
                       {{"log_level", Nested(100)}});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(), "log_level: must be debug, info, warn or error");
}

TEST(RejectedEventTest, NamesSourceAndReasonButNeverContent) {
  Event e = RejectedEvent("hub-p", "status", "JSON nested deeper than 16", 130000);
  EXPECT_EQ(e.type, "rejected");
  EXPECT_EQ(e.fields.at("source"), "status");
  EXPECT_EQ(e.fields.at("reason"), "JSON nested deeper than 16");
  EXPECT_EQ(e.counts.at("bytes"), 130000);
}

// Finding 11: status strings are printed as they came from the broker.
TEST(StatusViewTest, TerminalEscapesFromTheBrokerAreNeutralised) {
  StatusRows rows;
  GatewayStatus s;
  s.role = "backup";
  s.state = "in_sync\x1b[2J";
  s.error = "\x1b]0;pwned\x07 and \r\n more";
  s.last_sync = "2026\x1b[31m";
  rows["hub-b1"] = s;
  std::string table = FormatStatusTable(rows);
  EXPECT_EQ(table.find('\x1b'), std::string::npos);
  EXPECT_EQ(table.find('\x07'), std::string::npos);
  EXPECT_EQ(table.find('\r'), std::string::npos);
  EXPECT_NE(table.find("error: ?]0;pwned? and ?? more"), std::string::npos);
}

}  // namespace
}  // namespace hubsync
