// libFuzzer target: opening an envelope (header decode, AES-256-GCM open
// under a fixed key) and a SecureChannel-like replay check, as any broker
// client could feed it. Nothing may crash; a forged tag never opens.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hubsync/crypto.h"
#include "hubsync/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hubsync::Key key = [] {
    hubsync::Key k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
    return k;
  }();
  static hubsync::AesGcm aead(key);
  std::string_view msg(reinterpret_cast<const char*>(data), size);
  hubsync::EnvelopeHeader h;
  std::string plain;
  hubsync::Status s = hubsync::OpenEnvelope(aead, "home-1", "hub-b1", msg, &h, &plain);
  // Random bytes must never pass the tag (2^-128): if they do, the open is broken.
  if (s.ok() && size > 0 && data[0] != 'H') __builtin_trap();
  // Sealing what the header says must round-trip.
  auto hdr = hubsync::DecodeEnvelopeHeader(msg);
  if (hdr.ok()) {
    std::string sealed;
    std::string_view body = msg.substr(hdr->size);
    if (!hubsync::SealEnvelope(aead, "home-1", "hub-b1", *hdr, body, &sealed).ok()) __builtin_trap();
    hubsync::EnvelopeHeader h2;
    std::string p2;
    if (!hubsync::OpenEnvelope(aead, "home-1", "hub-b1", sealed, &h2, &p2).ok() || p2 != body ||
        h2.term != hdr->term || h2.primary != hdr->primary) {
      __builtin_trap();
    }
  }
  return 0;
}
