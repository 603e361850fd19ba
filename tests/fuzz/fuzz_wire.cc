// libFuzzer target: the binary codecs inside envelopes (manifest stream,
// delta records, acks, manifest requests, zstd frames), fed as a hostile peer would. The first byte picks
// the codec; a manifest input is split into chunks at 0xFF 0xFE markers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/compress.h"
#include "hubsync/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      std::vector<hubsync::DeltaRecord> out;
      hubsync::Status s = hubsync::DecodeRecords(in, &out);
      if (s.ok()) {  // what decodes re-encodes to something that decodes alike
        std::string again;
        for (const auto& r : out) hubsync::EncodeRecord(r, &again);
        std::vector<hubsync::DeltaRecord> back;
        if (!hubsync::DecodeRecords(again, &back).ok() || back.size() != out.size()) __builtin_trap();
      }
      break;
    }
    case 1: {
      hubsync::ManifestAssembler a(hubsync::ManifestLimits{4096, 1u << 20});
      uint32_t chunk = 0;
      size_t start = 0;
      while (start <= in.size()) {
        size_t mark = in.find("\xff\xfe", start);
        bool last = mark == std::string_view::npos;
        std::string_view part = in.substr(start, last ? std::string_view::npos : mark - start);
        if (!a.Add(chunk++, last, part).ok()) break;
        if (last) break;
        start = mark + 2;
      }
      if (a.done()) a.Take();
      break;
    }
    case 2:
      hubsync::DecodeAck(in);
      break;
    case 4: {  // a compressed payload from an authenticated but compromised peer
      auto r = hubsync::Decompress(in, 1 << 20);
      if (r.ok()) {
        if (r->size() > (1u << 20)) __builtin_trap();
        std::string again;
        if (hubsync::Compress(*r, &again)) {
          auto back = hubsync::Decompress(again, r->size());
          if (!back.ok() || *back != *r) __builtin_trap();
        }
      }
      break;
    }
    case 3: {
      auto r = hubsync::DecodeManifestRequest(in, 7);
      if (r.ok()) {
        auto again = hubsync::DecodeManifestRequest(hubsync::EncodeManifestRequest(*r), 7);
        if (!again.ok() || again->root != r->root || again->expect != r->expect ||
            again->held_until_ms != r->held_until_ms) {
          __builtin_trap();
        }
      }
      break;
    }
  }
  return 0;
}
