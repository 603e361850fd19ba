// The RapidJSON adapter: configuration parsing and the plaintext JSON
// messages. The only file that includes RapidJSON.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include "hubsync/config.h"
#include "hubsync/messages.h"
#include "hubsync/policy.h"
#include "hubsync/ha_discovery.h"
#include "hubsync/status_view.h"

namespace hubsync {
namespace {

using rapidjson::Document;
using rapidjson::Value;

// Every JSON document hubsync reads is checked against these before RapidJSON
// sees it: RapidJSON's default parser recurses once per nesting level, so an
// array nested 130,000 deep overflows the stack. Nothing hubsync reads nests
// deeper than 3; the scan below is linear and needs no stack.
constexpr int kMaxJsonDepth = 16;

Status CheckJsonShape(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Status::Rejected("JSON document larger than " + std::to_string(max_bytes) + " bytes");
  }
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        return Status::Rejected("JSON nested deeper than " + std::to_string(kMaxJsonDepth));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Status::Ok();
}

// Parses `text` into `doc` once it passes CheckJsonShape; the iterative
// parser is a second guard that needs no stack either. On a syntax error the
// message names the offset and RapidJSON's reason.
Status ParseBounded(Document* doc, std::string_view text, size_t max_bytes) {
  HUBSYNC_RETURN_IF_ERROR(CheckJsonShape(text, max_bytes));
  doc->Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc->HasParseError()) {
    return Status::InvalidArgument(std::string("invalid JSON at offset ") +
                                   std::to_string(doc->GetErrorOffset()) + ": " +
                                   rapidjson::GetParseError_En(doc->GetParseError()));
  }
  return Status::Ok();
}

Status Bad(const std::string& key, const std::string& problem) {
  return Status::InvalidArgument(key + ": " + problem);
}

// Walks "a.b.c" in `doc`, creating objects on the way, and sets the leaf.
Status ApplyOverride(Document& doc, const Override& o) {
  Document value_doc;
  Value value;
  if (!ParseBounded(&value_doc, o.second, kMaxConfigBytes).ok()) {
    value.SetString(o.second.c_str(), doc.GetAllocator());
  } else {
    value.CopyFrom(value_doc, doc.GetAllocator());
  }
  Value* node = &doc;
  std::string path = o.first;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) return Bad(o.first, "empty key in --set");
    if (!node->IsObject()) return Bad(o.first, "--set goes through a non-object");
    if (dot == std::string::npos) {
      auto it = node->FindMember(part.c_str());
      if (it != node->MemberEnd()) {
        it->value = value;
      } else {
        node->AddMember(Value(part.c_str(), doc.GetAllocator()), value, doc.GetAllocator());
      }
      return Status::Ok();
    }
    auto it = node->FindMember(part.c_str());
    if (it == node->MemberEnd()) {
      node->AddMember(Value(part.c_str(), doc.GetAllocator()), Value(rapidjson::kObjectType),
                      doc.GetAllocator());
      it = node->FindMember(part.c_str());
    } else if (it->value.IsNull()) {
      it->value.SetObject();
    }
    node = &it->value;
    start = dot + 1;
  }
}

// Checks an object's keys against the allowed set.
Status CheckKeys(const Value& obj, const std::string& prefix, const std::set<std::string>& allowed) {
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    std::string k = it->name.GetString();
    if (!allowed.count(k)) return Bad(prefix + k, "unknown key");
  }
  return Status::Ok();
}

Status GetString(const Value& obj, const char* name, const std::string& key, bool required,
                 std::string* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) {
    if (required) return Bad(key, "required");
    return Status::Ok();
  }
  if (!it->value.IsString()) return Bad(key, "must be a string");
  *out = it->value.GetString();
  if (required && out->empty()) return Bad(key, "must not be empty");
  return Status::Ok();
}

Status GetInt(const Value& obj, const char* name, const std::string& key, int64_t min,
              int64_t max, int64_t* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return Status::Ok();
  if (!it->value.IsInt64()) return Bad(key, "must be an integer");
  int64_t v = it->value.GetInt64();
  if (v < min || v > max) {
    return Bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

Status GetBool(const Value& obj, const char* name, const std::string& key, bool* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return Status::Ok();
  if (!it->value.IsBool()) return Bad(key, "must be true or false");
  *out = it->value.GetBool();
  return Status::Ok();
}

Status GetStringList(const Value& obj, const char* name, const std::string& key,
                     std::vector<std::string>* out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return Status::Ok();
  if (!it->value.IsArray()) return Bad(key, "must be an array of strings");
  out->clear();
  for (auto& v : it->value.GetArray()) {
    if (!v.IsString() || v.GetStringLength() == 0) {
      return Bad(key, "must be an array of non-empty strings");
    }
    out->push_back(v.GetString());
  }
  return Status::Ok();
}

Status GetObject(const Value& obj, const char* name, const std::string& key, const Value** out) {
  *out = nullptr;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return Status::Ok();
  if (!it->value.IsObject()) return Bad(key, "must be an object");
  *out = &it->value;
  return Status::Ok();
}

bool IsTlsUri(const std::string& uri) {
  for (const char* s : {"ssl://", "mqtts://", "wss://"}) {
    if (uri.rfind(s, 0) == 0) return true;
  }
  return false;
}

bool IsValidBrokerUri(const std::string& uri) {
  static const char* kSchemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://", "ws://", "wss://"};
  for (const char* s : kSchemes) {
    size_t n = std::strlen(s);
    if (uri.compare(0, n, s) != 0) continue;
    std::string rest = uri.substr(n);
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
    }
    long p = std::stol(port);
    return p > 0 && p < 65536;
  }
  return false;
}

// The first line of a password file (none when `path` is empty).
Status ReadPassword(const std::string& path, const std::string& key, std::string* out) {
  if (path.empty()) return Status::Ok();
  std::ifstream pf(path, std::ios::binary);
  if (!pf) return Bad(key, "cannot read " + path + ": " + std::strerror(errno));
  std::getline(pf, *out);
  while (!out->empty() && (out->back() == '\r' || out->back() == ' ')) out->pop_back();
  return Status::Ok();
}

Status ValidateIds(const Config& c) {
  if (!IsValidId(c.home)) return Bad("home", "must be 1-64 of [A-Za-z0-9_-]");
  if (!IsValidId(c.gateway_id)) return Bad("gateway_id", "must be 1-64 of [A-Za-z0-9_-]");
  std::set<std::string> seen;
  for (const auto& b : c.backups) {
    if (!IsValidId(b)) return Bad("backups", "\"" + b + "\" is not a valid gateway id");
    if (b == c.gateway_id) return Bad("backups", "lists this gateway itself");
    if (!seen.insert(b).second) return Bad("backups", "lists \"" + b + "\" twice");
  }
  return Status::Ok();
}

}  // namespace

bool IsValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Result<Override> ParseOverride(const std::string& arg) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("--set " + arg + ": expected key.path=value");
  }
  return Override{arg.substr(0, eq), arg.substr(eq + 1)};
}

Result<Config> ParseConfig(const std::string& json_text, const std::vector<Override>& overrides) {
  Document doc;
  Status parsed = ParseBounded(&doc, json_text, kMaxConfigBytes);
  if (!parsed.ok()) return Bad("config", parsed.message());
  if (!doc.IsObject()) return Bad("config", "must be a JSON object");
  for (const auto& o : overrides) HUBSYNC_RETURN_IF_ERROR(ApplyOverride(doc, o));

  HUBSYNC_RETURN_IF_ERROR(CheckKeys(doc, "", {"home", "gateway_id", "broker", "oob", "data_dir",
                                              "state_dir", "exclude", "backups", "policy",
                                              "bridge", "max_message_bytes", "compress",
                                              "log_level", "homeassistant"}));
  Config c;
  HUBSYNC_RETURN_IF_ERROR(GetString(doc, "home", "home", true, &c.home));
  HUBSYNC_RETURN_IF_ERROR(GetString(doc, "gateway_id", "gateway_id", true, &c.gateway_id));
  const Value* broker = nullptr;
  HUBSYNC_RETURN_IF_ERROR(GetObject(doc, "broker", "broker", &broker));
  if (!broker) return Bad("broker.uri", "required");
  HUBSYNC_RETURN_IF_ERROR(
      CheckKeys(*broker, "broker.", {"uri", "username", "password_file", "ca_file"}));
  HUBSYNC_RETURN_IF_ERROR(GetString(*broker, "uri", "broker.uri", true, &c.broker.uri));
  if (!IsValidBrokerUri(c.broker.uri)) {
    return Bad("broker.uri", "must look like tcp://HOST:PORT (or ssl://, ws://, wss://)");
  }
  HUBSYNC_RETURN_IF_ERROR(GetString(*broker, "username", "broker.username", false,
                                    &c.broker.username));
  HUBSYNC_RETURN_IF_ERROR(GetString(*broker, "password_file", "broker.password_file", false,
                                    &c.broker.password_file));
  HUBSYNC_RETURN_IF_ERROR(GetString(*broker, "ca_file", "broker.ca_file", false,
                                    &c.broker.ca_file));
  if (!c.broker.ca_file.empty() && !IsTlsUri(c.broker.uri)) {
    // A trust file with a plaintext URI would silently stay plaintext.
    return Bad("broker.ca_file", "requires a TLS broker.uri (ssl://HOST:PORT)");
  }
  const Value* oob = nullptr;
  HUBSYNC_RETURN_IF_ERROR(GetObject(doc, "oob", "oob", &oob));
  if (oob) {
    HUBSYNC_RETURN_IF_ERROR(CheckKeys(*oob, "oob.", {"uri", "username", "password_file"}));
    HUBSYNC_RETURN_IF_ERROR(GetString(*oob, "uri", "oob.uri", false, &c.oob.uri));
    HUBSYNC_RETURN_IF_ERROR(GetString(*oob, "username", "oob.username", false, &c.oob.username));
    HUBSYNC_RETURN_IF_ERROR(GetString(*oob, "password_file", "oob.password_file", false,
                                      &c.oob.password_file));
    if (!c.oob.uri.empty() && !IsValidBrokerUri(c.oob.uri)) {
      return Bad("oob.uri", "must look like tcp://HOST:PORT");
    }
  }
  HUBSYNC_RETURN_IF_ERROR(GetString(doc, "data_dir", "data_dir", true, &c.data_dir));
  HUBSYNC_RETURN_IF_ERROR(GetString(doc, "state_dir", "state_dir", true, &c.state_dir));
  HUBSYNC_RETURN_IF_ERROR(GetStringList(doc, "exclude", "exclude", &c.exclude));
  HUBSYNC_RETURN_IF_ERROR(GetStringList(doc, "backups", "backups", &c.backups));
  const Value* policy = nullptr;
  HUBSYNC_RETURN_IF_ERROR(GetObject(doc, "policy", "policy", &policy));
  if (policy) {
    HUBSYNC_RETURN_IF_ERROR(CheckKeys(*policy, "policy.", {"on_change", "delay_ms", "period_s"}));
    HUBSYNC_RETURN_IF_ERROR(GetBool(*policy, "on_change", "policy.on_change", &c.policy.on_change));
    HUBSYNC_RETURN_IF_ERROR(GetInt(*policy, "delay_ms", "policy.delay_ms", 0, 86400000,
                                   &c.policy.delay_ms));
    HUBSYNC_RETURN_IF_ERROR(GetInt(*policy, "period_s", "policy.period_s", 0, 31 * 86400,
                                   &c.policy.period_s));
  }
  const Value* ha = nullptr;
  HUBSYNC_RETURN_IF_ERROR(GetObject(doc, "homeassistant", "homeassistant", &ha));
  if (ha) {
    HUBSYNC_RETURN_IF_ERROR(CheckKeys(*ha, "homeassistant.", {"discovery", "prefix"}));
    HUBSYNC_RETURN_IF_ERROR(GetBool(*ha, "discovery", "homeassistant.discovery",
                                    &c.homeassistant.discovery));
    HUBSYNC_RETURN_IF_ERROR(GetString(*ha, "prefix", "homeassistant.prefix", false,
                                      &c.homeassistant.prefix));
    const std::string& pre = c.homeassistant.prefix;
    if (pre.empty() || pre.find_first_of("+#") != std::string::npos || pre.front() == '/' ||
        pre.back() == '/') {
      return Bad("homeassistant.prefix", "must be a topic prefix without wildcards or edge '/'");
    }
  }
  const Value* bridge = nullptr;
  HUBSYNC_RETURN_IF_ERROR(GetObject(doc, "bridge", "bridge", &bridge));
  if (bridge) {
    HUBSYNC_RETURN_IF_ERROR(CheckKeys(*bridge, "bridge.", {"link", "listen", "backup"}));
    HUBSYNC_RETURN_IF_ERROR(GetString(*bridge, "backup", "bridge.backup", false, &c.bridge.backup));
    if (!c.bridge.backup.empty() && !IsValidId(c.bridge.backup)) {
      return Bad("bridge.backup", "must be 1-64 of [A-Za-z0-9_-]");
    }
    HUBSYNC_RETURN_IF_ERROR(GetString(*bridge, "link", "bridge.link", false, &c.bridge.link));
    HUBSYNC_RETURN_IF_ERROR(GetBool(*bridge, "listen", "bridge.listen", &c.bridge.listen));
    if (!c.bridge.link.empty() && c.bridge.link.rfind("unix:", 0) != 0 &&
        c.bridge.link.rfind("l2cap:", 0) != 0) {
      return Bad("bridge.link", "must be unix:PATH or l2cap:BDADDR/PSM");
    }
  }
  HUBSYNC_RETURN_IF_ERROR(GetInt(doc, "max_message_bytes", "max_message_bytes", 16384,
                                 256 * 1024 * 1024, &c.max_message_bytes));
  HUBSYNC_RETURN_IF_ERROR(GetBool(doc, "compress", "compress", &c.compress));
  std::string level = "info";
  HUBSYNC_RETURN_IF_ERROR(GetString(doc, "log_level", "log_level", false, &level));
  if (level == "debug") c.log_level = LogLevel::kDebug;
  else if (level == "info") c.log_level = LogLevel::kInfo;
  else if (level == "warn") c.log_level = LogLevel::kWarn;
  else if (level == "error") c.log_level = LogLevel::kError;
  else return Bad("log_level", "must be debug, info, warn or error");
  HUBSYNC_RETURN_IF_ERROR(ValidateIds(c));
  return c;
}

Result<ModulePolicy> ParseModulePolicy(const std::string& json) {
  Document doc;
  Status parsed = ParseBounded(&doc, json, kMaxJsonMessageBytes);
  if (!parsed.ok()) return Bad("policy", parsed.message());
  if (!doc.IsObject()) return Bad("policy", "must be a JSON object");
  HUBSYNC_RETURN_IF_ERROR(
      CheckKeys(doc, "", {"paths", "on_change", "delay_ms", "period_s", "exclude"}));
  ModulePolicy p;
  p.when.period_s = 0;  // a module has no period unless it asks for one
  HUBSYNC_RETURN_IF_ERROR(GetStringList(doc, "paths", "paths", &p.paths));
  if (p.paths.empty()) return Bad("paths", "required: the patterns this module owns");
  HUBSYNC_RETURN_IF_ERROR(GetStringList(doc, "exclude", "exclude", &p.exclude));
  HUBSYNC_RETURN_IF_ERROR(GetBool(doc, "on_change", "on_change", &p.when.on_change));
  HUBSYNC_RETURN_IF_ERROR(GetInt(doc, "delay_ms", "delay_ms", 0, 86400000, &p.when.delay_ms));
  HUBSYNC_RETURN_IF_ERROR(GetInt(doc, "period_s", "period_s", 0, 31 * 86400, &p.when.period_s));
  for (const auto* list : {&p.paths, &p.exclude}) {
    const char* key = list == &p.paths ? "paths" : "exclude";
    if (list->size() > 64) return Bad(key, "at most 64 patterns");
    for (const auto& pattern : *list) {
      if (pattern.size() > 512) return Bad(key, "a pattern is longer than 512 bytes");
      if (pattern[0] == '/') return Bad(key, "patterns are relative to data_dir (no leading /)");
      if (pattern.find('\0') != std::string::npos) return Bad(key, "a pattern contains NUL");
      if (("/" + pattern + "/").find("/../") != std::string::npos) {
        return Bad(key, "a pattern contains a .. segment");
      }
    }
  }
  if (!p.when.on_change && p.when.delay_ms == 0 && p.when.period_s == 0) {
    return Bad("policy", "on_change is false and neither delay_ms nor period_s is set: "
                         "the module would never sync");
  }
  return p;
}

Result<Config> LoadConfig(const std::string& path, const std::vector<Override>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad("config", "cannot read " + path + ": " + std::strerror(errno));
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return Bad("config", path + " is larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  Result<Config> parsed = ParseConfig(text, overrides);
  if (!parsed.ok()) return parsed;
  Config c = std::move(parsed).value();
  struct stat st;
  if (stat(c.data_dir.c_str(), &st) != 0) {
    return Bad("data_dir", c.data_dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Bad("data_dir", c.data_dir + " is not a directory");
  if (stat(c.state_dir.c_str(), &st) != 0) {
    if (mkdir(c.state_dir.c_str(), 0700) != 0) {
      return Bad("state_dir", "cannot create " + c.state_dir + ": " + std::strerror(errno));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return Bad("state_dir", c.state_dir + " is not a directory");
  }
  HUBSYNC_RETURN_IF_ERROR(
      ReadPassword(c.broker.password_file, "broker.password_file", &c.broker.password));
  HUBSYNC_RETURN_IF_ERROR(ReadPassword(c.oob.password_file, "oob.password_file", &c.oob.password));
  if (!c.broker.ca_file.empty() && access(c.broker.ca_file.c_str(), R_OK) != 0) {
    return Bad("broker.ca_file", "cannot read " + c.broker.ca_file + ": " + std::strerror(errno));
  }
  return c;
}

// ---- messages -------------------------------------------------------------

namespace {

std::string Write(const Document& d) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  d.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

Result<Document*> ParseObject(Document* d, const std::string& json) {
  Status parsed = ParseBounded(d, json, kMaxJsonMessageBytes);
  if (!parsed.ok()) return parsed;
  if (!d->IsObject()) return Status::Corruption("not a JSON object");
  auto v = d->FindMember("v");
  if (v == d->MemberEnd() || !v->value.IsInt() || v->value.GetInt() != 1) {
    return Status::Rejected("unsupported message version");
  }
  return d;
}

std::string Str(const Value& o, const char* k) {
  auto it = o.FindMember(k);
  return (it != o.MemberEnd() && it->value.IsString()) ? it->value.GetString() : "";
}
int64_t Int(const Value& o, const char* k, int64_t dflt) {
  auto it = o.FindMember(k);
  return (it != o.MemberEnd() && it->value.IsInt64()) ? it->value.GetInt64() : dflt;
}
uint64_t UInt(const Value& o, const char* k) {
  auto it = o.FindMember(k);
  return (it != o.MemberEnd() && it->value.IsUint64()) ? it->value.GetUint64() : 0;
}

}  // namespace

namespace {

void StatusMembers(const GatewayStatus& s, Value& d, rapidjson::Document::AllocatorType& a) {
  d.AddMember("v", 1, a);
  d.AddMember("role", Value(s.role.c_str(), a), a);
  d.AddMember("state", Value(s.state.c_str(), a), a);
  d.AddMember("root", Value(s.root.c_str(), a), a);
  d.AddMember("files", s.files, a);
  d.AddMember("bytes", s.bytes, a);
  if (s.last_sync.empty()) d.AddMember("last_sync", Value(), a);
  else d.AddMember("last_sync", Value(s.last_sync.c_str(), a), a);
  d.AddMember("lag_ms", s.lag_ms, a);
  d.AddMember("key_epoch", s.key_epoch, a);
  d.AddMember("term", s.term, a);
  if (s.primary.empty()) d.AddMember("primary", Value(), a);
  else d.AddMember("primary", Value(s.primary.c_str(), a), a);
  Value policies(rapidjson::kObjectType);
  for (const auto& [module, hash] : s.policies) {
    policies.AddMember(Value(module.c_str(), a), Value(hash.c_str(), a), a);
  }
  d.AddMember("policies", policies, a);
  if (s.progress_total >= 0) {
    Value prog(rapidjson::kObjectType);
    prog.AddMember("bytes_done", s.progress_done, a);
    prog.AddMember("bytes_total", s.progress_total, a);
    prog.AddMember("files_done", s.progress_files_done, a);
    prog.AddMember("files_total", s.progress_files_total, a);
    d.AddMember("progress", prog, a);
  }
  if (s.error.empty()) d.AddMember("error", Value(), a);
  else d.AddMember("error", Value(s.error.c_str(), a), a);
  if (!s.due.empty()) d.AddMember("due", Value(s.due.c_str(), a), a);
}

}  // namespace

std::string EncodeStatus(const GatewayStatus& s) {
  Document d(rapidjson::kObjectType);
  StatusMembers(s, d, d.GetAllocator());
  return Write(d);
}

namespace {

struct HaEntity {
  const char* component;
  const char* object;
  const char* name;
  const char* value_template;
  const char* device_class;  // "" none
  const char* unit;          // "" none
};

const HaEntity kBackupEntities[] = {
    {"binary_sensor", "in_sync", "In sync",
     "{{ 'ON' if value_json.state == 'in_sync' else 'OFF' }}", "", ""},
    {"sensor", "lag", "Lag", "{{ (value_json.lag_ms / 1000) | round(1) }}", "duration", "s"},
    {"sensor", "last_sync", "Last sync", "{{ value_json.last_sync }}", "timestamp", ""},
    // SPEC 11: the primary it follows.
    {"sensor", "primary", "Primary", "{{ value_json.primary if value_json.primary else 'None' }}", "", ""},
};

// "None" is what an MQTT sensor reads as no value.
const HaEntity kPrimaryEntities[] = {
    {"binary_sensor", "backups_in_sync", "Backups in sync",
     "{{ 'ON' if value_json.state == 'in_sync' else 'OFF' }}", "", ""},
    {"sensor", "state", "State", "{{ value_json.state }}", "", ""},
    {"sensor", "changes_due", "Held changes due",
     "{{ value_json.due if value_json.due is defined else 'None' }}", "timestamp", ""},
    // SPEC 11: who is primary (itself, or the hub that fenced it) and the term.
    {"sensor", "primary", "Primary", "{{ value_json.primary if value_json.primary else 'None' }}", "", ""},
    {"sensor", "term", "Term", "{{ value_json.term }}", "", ""},
};

// Home Assistant's entity ids take [a-z0-9_] only.
std::string Slug(const std::string& s) {
  std::string out;
  for (char ch : s) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.push_back((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '_');
  }
  return out;
}

std::string HaNode(const Config& c, const std::string& gw) { return "hubsync_" + c.home + "_" + gw; }

std::string HaTopic(const Config& c, const std::string& gw, const HaEntity& e) {
  return c.homeassistant.prefix + "/" + e.component + "/" + HaNode(c, gw) + "/" + e.object + "/config";
}

// One device (the gateway `gw`) with `entities`, all read from its retained
// status and available while that status is not "offline" (its LWT).
template <size_t N>
std::vector<Message> HaConfigs(const Config& c, const std::string& gw, const char* model,
                               const HaEntity (&entities)[N]) {
  const std::string status = c.TopicPrefix() + "gw/" + gw + "/status";
  const std::string node = HaNode(c, gw);
  std::vector<Message> out;
  for (const HaEntity& e : entities) {
    Document d(rapidjson::kObjectType);
    auto& a = d.GetAllocator();
    auto str = [&](const std::string& v) { return Value(v.c_str(), a); };
    d.AddMember("name", str(e.name), a);
    d.AddMember("unique_id", str(node + "_" + e.object), a);
    // What Home Assistant 2025.10 and later take instead of object_id.
    d.AddMember("default_entity_id", str(std::string(e.component) + "." + Slug(node + "_" + e.object)), a);
    d.AddMember("state_topic", str(status), a);
    d.AddMember("value_template", str(e.value_template), a);
    if (*e.device_class) d.AddMember("device_class", str(e.device_class), a);
    if (*e.unit) {
      d.AddMember("unit_of_measurement", str(e.unit), a);
      d.AddMember("state_class", "measurement", a);
    }
    d.AddMember("availability_topic", str(status), a);
    d.AddMember("availability_template",
                "{{ 'offline' if value_json.state == 'offline' else 'online' }}", a);
    d.AddMember("payload_available", "online", a);
    d.AddMember("payload_not_available", "offline", a);
    Value device(rapidjson::kObjectType);
    Value ids(rapidjson::kArrayType);
    ids.PushBack(str(node), a);
    device.AddMember("identifiers", ids, a);
    device.AddMember("name", str("hubsync " + gw), a);
    device.AddMember("manufacturer", "hubsync", a);
    device.AddMember("model", str(model), a);
    d.AddMember("device", device, a);
    Message m;
    m.topic = HaTopic(c, gw, e);
    m.payload = Write(d);
    m.retained = true;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

std::vector<Message> HomeAssistantDiscovery(const Config& c, const std::string& backup) {
  return HaConfigs(c, backup, "backup hub", kBackupEntities);
}

std::vector<Message> HomeAssistantPrimaryDiscovery(const Config& c) {
  return HaConfigs(c, c.gateway_id, "primary hub", kPrimaryEntities);
}

std::vector<Message> HomeAssistantRemoval(const Config& c, const std::string& backup) {
  std::vector<Message> out;
  for (const HaEntity& e : kBackupEntities) {
    Message m;
    m.topic = HaTopic(c, backup, e);
    m.retained = true;  // an empty retained payload deletes the entity and the retained config
    out.push_back(std::move(m));
  }
  return out;
}

std::string EncodeStatusReport(const StatusRows& rows) {
  Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("in_sync", AllBackupsInSync(rows), a);
  const auto* primary = CurrentPrimary(rows);
  if (primary) d.AddMember("primary", Value(primary->first.c_str(), a), a);
  else d.AddMember("primary", Value(), a);
  d.AddMember("term", primary ? std::max<uint64_t>(primary->second.term, 1) : 0, a);
  Value gateways(rapidjson::kObjectType);
  for (const auto& [id, st] : rows) {
    Value v(rapidjson::kObjectType);
    StatusMembers(st, v, a);
    gateways.AddMember(Value(id.c_str(), a), v, a);
  }
  d.AddMember("gateways", gateways, a);
  return Write(d);
}

Result<GatewayStatus> DecodeStatus(const std::string& json) {
  Document d;
  auto p = ParseObject(&d, json);
  if (!p.ok()) return p.status();
  GatewayStatus s;
  s.role = Str(d, "role");
  s.state = Str(d, "state");
  s.root = Str(d, "root");
  s.files = Int(d, "files", 0);
  s.bytes = Int(d, "bytes", 0);
  s.last_sync = Str(d, "last_sync");
  s.lag_ms = Int(d, "lag_ms", 0);
  s.key_epoch = static_cast<uint32_t>(UInt(d, "key_epoch"));
  s.term = UInt(d, "term");
  s.primary = Str(d, "primary");
  if (!s.primary.empty() && !IsValidId(s.primary)) s.primary.clear();
  auto prog = d.FindMember("progress");
  if (prog != d.MemberEnd() && prog->value.IsObject()) {
    s.progress_done = Int(prog->value, "bytes_done", -1);
    s.progress_total = Int(prog->value, "bytes_total", -1);
    s.progress_files_done = Int(prog->value, "files_done", -1);
    s.progress_files_total = Int(prog->value, "files_total", -1);
  }
  auto policies = d.FindMember("policies");
  if (policies != d.MemberEnd() && policies->value.IsObject()) {
    for (auto it = policies->value.MemberBegin(); it != policies->value.MemberEnd(); ++it) {
      if (it->value.IsString()) s.policies[it->name.GetString()] = it->value.GetString();
    }
  }
  s.error = Str(d, "error");
  s.due = Str(d, "due");
  if (s.state.empty()) return Status::Corruption("status without state");
  return s;
}

std::string EncodeEvent(const Event& e) {
  Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("v", 1, a);
  d.AddMember("type", Value(e.type.c_str(), a), a);
  d.AddMember("gw", Value(e.gw.c_str(), a), a);
  for (const auto& [k, v] : e.fields) d.AddMember(Value(k.c_str(), a), Value(v.c_str(), a), a);
  for (const auto& [k, v] : e.counts) d.AddMember(Value(k.c_str(), a), Value(static_cast<int64_t>(v)), a);
  return Write(d);
}

Result<Event> DecodeEvent(const std::string& json) {
  Document d;
  auto p = ParseObject(&d, json);
  if (!p.ok()) return p.status();
  Event e;
  for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
    std::string k = it->name.GetString();
    if (k == "v") continue;
    if (k == "type" && it->value.IsString()) e.type = it->value.GetString();
    else if (k == "gw" && it->value.IsString()) e.gw = it->value.GetString();
    else if (it->value.IsString()) e.fields[k] = it->value.GetString();
    else if (it->value.IsInt64()) e.counts[k] = it->value.GetInt64();
  }
  return e;
}

std::string EncodePairHello(const PairHello& h) {
  Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("v", 1, a);
  d.AddMember("backup", Value(h.backup.c_str(), a), a);
  d.AddMember("pub", Value(h.pub.c_str(), a), a);
  d.AddMember("nonce", Value(h.nonce.c_str(), a), a);
  return Write(d);
}

Result<PairHello> DecodePairHello(const std::string& json) {
  Document d;
  auto p = ParseObject(&d, json);
  if (!p.ok()) return p.status();
  PairHello h{Str(d, "backup"), Str(d, "pub"), Str(d, "nonce")};
  if (!IsValidId(h.backup) || h.pub.size() != 64 || h.nonce.size() != 32) {
    return Status::Corruption("bad pairing hello");
  }
  return h;
}

std::string EncodePairWelcome(const PairWelcome& w) {
  Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("v", 1, a);
  d.AddMember("backup", Value(w.backup.c_str(), a), a);
  d.AddMember("primary", Value(w.primary.c_str(), a), a);
  d.AddMember("pub", Value(w.pub.c_str(), a), a);
  d.AddMember("nonce", Value(w.nonce.c_str(), a), a);
  d.AddMember("epoch", w.epoch, a);
  if (w.standby) d.AddMember("standby", true, a);
  return Write(d);
}

Result<PairWelcome> DecodePairWelcome(const std::string& json) {
  Document d;
  auto p = ParseObject(&d, json);
  if (!p.ok()) return p.status();
  PairWelcome w{Str(d, "backup"), Str(d, "primary"), Str(d, "pub"), Str(d, "nonce"),
                static_cast<uint32_t>(UInt(d, "epoch"))};
  if (auto it = d.FindMember("standby"); it != d.MemberEnd()) {
    if (!it->value.IsBool()) return Status::Corruption("bad pairing welcome");
    w.standby = it->value.GetBool();
  }
  if (!IsValidId(w.backup) || !IsValidId(w.primary) || w.pub.size() != 64 ||
      w.nonce.size() != 32 || w.epoch == 0 || (w.standby && w.primary == w.backup)) {
    return Status::Corruption("bad pairing welcome");
  }
  return w;
}

Result<PromoteRequest> DecodePromoteRequest(const std::string& json) {
  Document d;
  auto p = ParseObject(&d, json);
  if (!p.ok()) return p.status();
  PromoteRequest r;
  for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
    std::string name = it->name.GetString();
    if (name == "force" && it->value.IsBool()) {
      r.force = it->value.GetBool();
    } else if (name != "v") {
      return Status::Corruption("promote request: unknown or malformed member " + name.substr(0, 32));
    }
  }
  return r;
}

}  // namespace hubsync
