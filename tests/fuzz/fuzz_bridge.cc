// libFuzzer target: the bridge's frame reassembly, fed frames a hostile peer
// (the radio) could send: the input is split into frames at 0xFF 0xFE
// markers, with time advancing between them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/bridge_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hubsync::BridgeLimits limits;
  limits.mtu = 64;
  limits.max_message = 4096;
  hubsync::BridgeProtocol p(limits);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  int64_t now = 0;
  size_t start = 0;
  std::vector<std::string> out, delivered;
  while (start <= in.size()) {
    size_t mark = in.find("\xff\xfe", start);
    std::string_view frame = in.substr(start, mark == std::string_view::npos ? std::string_view::npos
                                                                              : mark - start);
    p.OnFrame(frame, now, &out, &delivered);
    now += 700;
    p.Tick(now);
    if (mark == std::string_view::npos) break;
    start = mark + 2;
  }
  for (const auto& m : delivered) {
    if (m.size() > limits.max_message) __builtin_trap();
    std::string topic, payload;
    hubsync::DecodeBridgeMessage(m, &topic, &payload);
  }
  // Our own messages through a second protocol arrive whole.
  hubsync::BridgeProtocol tx(limits), rx(limits);
  auto frames = tx.Send(in.substr(0, limits.max_message), 0);
  if (frames.ok()) {
    std::vector<std::string> acks, got;
    for (const auto& f : *frames) rx.OnFrame(f, 0, &acks, &got);
    if (got.size() != 1 || got[0] != in.substr(0, limits.max_message)) __builtin_trap();
  }
  return 0;
}
