// Writes the seed corpora kept in tests/fuzz/corpus/<target>/: valid inputs
// of every kind each fuzz target reads, so the fuzzers start from the
// protocol's real shapes. Run by tests/fuzz/run-fuzzers.sh --seeds.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "hubsync/bridge_protocol.h"
#include "hubsync/chunker.h"
#include "hubsync/compress.h"
#include "hubsync/crypto.h"
#include "hubsync/envelope.h"
#include "hubsync/messages.h"
#include "hubsync/wire.h"

using namespace hubsync;

namespace {

std::string dir;

void Put(const std::string& target, const std::string& name, const std::string& bytes) {
  std::string d = dir + "/" + target;
  mkdir(d.c_str(), 0755);
  std::ofstream(d + "/" + name, std::ios::binary | std::ios::trunc) << bytes;
}

DeltaRecord Rec(RecKind k, const std::string& path = "") {
  DeltaRecord r;
  r.kind = k;
  r.path = path;
  return r;
}

std::string Delta(const std::vector<DeltaRecord>& recs) {
  std::string out;
  for (const auto& r : recs) EncodeRecord(r, &out);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  dir = argv[1];
  mkdir(dir.c_str(), 0755);

  // Deltas: every record kind, an escape attempt, a type change.
  DeltaRecord file = Rec(RecKind::kFile, "dev/new.json");
  file.mode = 0644;
  file.size = 5;
  file.digest = Sha256Of("hello");
  DeltaRecord data = Rec(RecKind::kData);
  data.data = "hello";
  DeltaRecord mkdir_rec = Rec(RecKind::kMkdir, "scenes");
  mkdir_rec.mode = 0755;
  DeltaRecord link = Rec(RecKind::kSymlink, "current");
  link.target = "dev/new.json";
  DeltaRecord attr = Rec(RecKind::kSetAttr, "a");
  attr.type = 1;
  attr.mode = 0640;
  DeltaRecord copy = Rec(RecKind::kFile, "copy");
  copy.source = FileSource::kLocalCopy;
  copy.target = "a";
  copy.size = 1;
  copy.digest = Sha256Of("a");
  DeltaRecord blocks = Rec(RecKind::kCopy);
  blocks.target = "a";
  blocks.size = 1;
  std::vector<std::pair<std::string, std::string>> deltas = {
      {"all-kinds", Delta({Rec(RecKind::kBegin), Rec(RecKind::kDelete, "a"), mkdir_rec, file, data,
                           link, attr, copy, Rec(RecKind::kEnd)})},
      {"through-link", Delta({Rec(RecKind::kBegin), [&] { auto f = file; f.path = "out/x"; return f; }(),
                              data, Rec(RecKind::kEnd)})},
      {"delete-through-link", Delta({Rec(RecKind::kDelete, "out/canary")})},
      {"chmod-link", Delta({[&] { auto a = attr; a.path = "canary-link"; return a; }()})},
      {"dir-to-file", Delta({Rec(RecKind::kDelete, "dev/lamp.json"), Rec(RecKind::kDelete, "dev"),
                             [&] { auto f = file; f.path = "dev"; return f; }(), data})},
      {"blocks", Delta({file, blocks})},
      {"precondition", Delta({Rec(RecKind::kBase), Rec(RecKind::kBegin), file, data,
                              Rec(RecKind::kEnd)})},
  };
  for (const auto& [name, bytes] : deltas) {
    Put("apply", name, bytes);
    Put("wire", "delta-" + name, std::string(1, '\0') + bytes);
  }
  // Manifests and acks.
  std::vector<Entry> m;
  for (const char* p : {"a", "dev", "dev/lamp.json", "link"}) {
    Entry e;
    e.path = p;
    e.type = std::string(p) == "dev" ? EntryType::kDir
             : std::string(p) == "link" ? EntryType::kSymlink : EntryType::kFile;
    if (e.type == EntryType::kSymlink) e.target = "a";
    m.push_back(e);
  }
  ManifestHeader h;
  h.count = static_cast<uint32_t>(m.size());
  std::string stream;
  auto chunks = EncodeManifestChunks(h, Manifest(m), 80);
  for (size_t i = 0; i < chunks.size(); ++i) stream += (i ? "\xff\xfe" : "") + chunks[i];
  Put("wire", "manifest", std::string(1, '\1') + stream);
  // A large file's chunk list (content-defined chunks).
  Entry big;
  big.path = "db/hub.sqlite";
  std::string content(1 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7919) >> 5);
  big.size = content.size();
  big.blocks = ChunkList(content);
  h.count = 1;
  Put("wire", "manifest-chunks", std::string(1, '\1') + EncodeManifestChunks(h, {big}, 1 << 16)[0]);
  // A compressed payload (what Open inflates).
  std::string json;
  for (int i = 0; i < 50; ++i) json += R"({"device":")" + std::to_string(i) + R"(","on":true})";
  std::string packed;
  if (Compress(json, &packed)) Put("wire", "zstd", std::string(1, '\4') + packed);
  Ack ack;
  ack.kind = Ack::Kind::kError;
  ack.error = "disk full";
  Put("wire", "ack", std::string(1, '\2') + EncodeAck(ack));
  Ack stale;
  stale.kind = Ack::Kind::kStale;
  Put("wire", "ack-stale", std::string(1, '\2') + EncodeAck(stale));
  Ack fenced;
  fenced.kind = Ack::Kind::kFenced;
  fenced.primary = "hub-kitchen";
  Put("wire", "ack-fenced", std::string(1, '\2') + EncodeAck(fenced));

  // Envelopes under the fuzz target's fixed key.
  Key key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  AesGcm aead(key);
  EnvelopeHeader eh;
  eh.kind = MsgKind::kDelta;
  eh.counter = 5;
  eh.transfer = 9;
  eh.last = true;
  eh.term = 2;
  eh.primary = "hub-p";
  std::string sealed;
  SealEnvelope(aead, "home-1", "hub-b1", eh, deltas[0].second, &sealed);
  Put("envelope", "delta", sealed);
  eh.kind = MsgKind::kAck;
  SealEnvelope(aead, "home-1", "hub-b1", eh, EncodeAck(ack), &sealed);
  Put("envelope", "ack", sealed);

  // JSON: one of each message the daemons read.
  GatewayStatus st;
  st.role = "backup";
  st.state = "syncing";
  st.term = 3;
  st.primary = "hub-kitchen";
  st.progress_total = 10;
  st.progress_done = 5;
  st.policies["db"] = "abc";
  st.error = "disk full";
  st.due = "2026-11-27T10:00:00.000Z";
  Put("json", "status", std::string(1, '\0') + EncodeStatus(st));
  ManifestRequest req;
  req.primary = "hub-p";
  req.root = std::string(64, 'a');
  req.expect = std::string(64, 'b');
  req.also = std::string(64, 'c');
  req.held_until_ms = 1800000000000;
  Put("wire", "request", std::string(1, '\3') + EncodeManifestRequest(req));
  Put("json", "override", std::string(1, '\1') + "policy.delay_ms=5");
  Put("json", "hello", std::string(1, '\2') +
                           EncodePairHello({"hub-b1", std::string(64, 'a'), std::string(32, 'b')}));
  Put("json", "welcome", std::string(1, '\3') +
                             EncodePairWelcome({"hub-b1", "hub-p", std::string(64, 'a'),
                                                std::string(32, 'b'), 2}));
  Put("json", "welcome-standby",
      std::string(1, '\3') + EncodePairWelcome({"hub-b2", "hub-b1", std::string(64, 'a'),
                                                 std::string(32, 'b'), 1, true}));
  Put("json", "event", std::string(1, '\4') +
                           EncodeEvent(Event{"sync", "hub-p", {{"bytes", 5}}, {{"backup", "b"}}}));
  Put("json", "policy", std::string(1, '\5') +
                            R"({"paths":["devices/**"],"on_change":true,"delay_ms":2000,)"
                            R"("period_s":600,"exclude":["**/*.cache"]})");
  Put("json", "config", std::string(1, '\6') +
                            R"({"home":"home-1","gateway_id":"hub-p","broker":{"uri":)"
                            R"("tcp://127.0.0.1:1883","username":"hub-p"},"data_dir":"/d",)"
                            R"("state_dir":"/s","exclude":["cache/**"],"backups":["hub-b1"],)"
                            R"("policy":{"on_change":true,"delay_ms":0,"period_s":3600},)"
                            R"("bridge":{"link":"unix:/run/x","listen":true},"log_level":"info"})");
  Put("json", "override-config", std::string(1, '\7') + "broker.uri=tcp://127.0.0.1:9");
  Put("json", "promote", std::string(1, '\x08') + R"({"v":1,"force":true})");

  // Bridge frames: one message of several frames from a real sender.
  BridgeLimits bl;
  bl.mtu = 64;
  bl.max_message = 4096;
  BridgeProtocol tx(bl);
  auto frames = tx.Send(std::string(200, 'm'), 0);
  std::string joined;
  if (frames.ok()) {
    for (size_t i = 0; i < frames->size(); ++i) joined += (i ? "\xff\xfe" : "") + (*frames)[i];
  }
  Put("bridge", "message", joined);

  // State records: keys, counters, a cache, a window, a key file.
  Put("state", "keys", std::string(1, '\0') + "hubsync-key v1\n1 " + std::string(64, 'a') +
                            "\n2 " + std::string(64, 'b') + "\n");
  Put("state", "tx", std::string(1, '\1') + "4097\n");
  Put("state", "rx", std::string(1, '\2') + std::string("\0\0\0\0\0\0\1\0", 8));
  {  // the cache's layout (scanner.cc): magic, then per file path, size,
     // mtime, ctime, inode, digest, block digests
    std::string cache = "hubsync-cache v1\n";
    WireWriter w(&cache);
    w.Str("devices/lamp.json");
    for (uint64_t v : {2u, 1700000000u, 1700000000u, 42u}) w.U64(v);
    Digest d = Sha256Of("on");
    w.Raw(d.data(), d.size());
    w.LongStr(std::string(64, 'x'));
    Put("state", "cache", std::string(1, '\3') + cache);
  }
  Put("state", "window", std::string(1, '\4') + "boot 61000\n");
  Put("state", "term", std::string(1, '\6') + "hubsync-term v1\n2 hub-kitchen\n");
  Put("state", "keyfile", std::string(1, '\5') + "hubsync-key v1\nhome home\nbackup hub-b\n3 " +
                              std::string(64, 'c') + "\n");

  // Paths and patterns.
  Put("paths", "plain", "devices/lamp.json\ndevices/**");
  Put("paths", "dotdot", "a/../b\n**/*.tmp");
  Put("paths", "stars", "a/b/c/d/e/f/g/h\n**/**/**/*?*");
  return 0;
}
