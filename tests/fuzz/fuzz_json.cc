// libFuzzer target: every JSON reader (status, pairing, events,
// policies, promotion requests, the config with an override), as the broker or a hand-edited
// file could feed them. The first byte picks the reader.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hubsync/config.h"
#include "hubsync/messages.h"
#include "hubsync/policy.h"
#include "hubsync/status_view.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 9) {
    case 0: {
      auto s = hubsync::DecodeStatus(in);
      if (s.ok()) {
        hubsync::StatusRows rows{{"gw", *s}};
        hubsync::FormatStatusTable(rows);
        hubsync::EncodeStatusReport(rows);
      }
      break;
    }
    case 1: hubsync::ParseOverride(in); break;
    case 2: hubsync::DecodePairHello(in); break;
    case 3: hubsync::DecodePairWelcome(in); break;
    case 4: hubsync::DecodeEvent(in); break;
    case 5: {
      auto p = hubsync::ParseModulePolicy(in);
      if (p.ok()) hubsync::PolicyHash(*p);
      break;
    }
    case 6: hubsync::ParseConfig(in, {}); break;
    case 8: hubsync::DecodePromoteRequest(in); break;
    case 7: {
      size_t eq = in.find('=');
      if (eq == std::string::npos) break;
      auto o = hubsync::ParseOverride(in.substr(0, eq + 1) + in.substr(eq + 1));
      if (!o.ok()) break;
      hubsync::ParseConfig(R"({"home":"h","gateway_id":"g","broker":{"uri":"tcp://127.0.0.1:1"},)"
                           R"("data_dir":"/d","state_dir":"/s"})",
                           {*o});
      break;
    }
  }
  return 0;
}
