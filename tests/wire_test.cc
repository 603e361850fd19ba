#include "hubsync/wire.h"
#include "hubsync/chunker.h"

#include <gtest/gtest.h>

#include <functional>

namespace hubsync {
namespace {

Manifest Sample(int n) {
  std::vector<Entry> m;
  for (int i = 0; i < n; ++i) {
    Entry e;
    e.path = "dir/file-" + std::to_string(1000 + i) + ".json";
    e.mode = 0644;
    e.mtime_ns = 1700000000000000000 + i;
    e.size = static_cast<uint64_t>(i);
    e.digest = Sha256Of(e.path);
    if (i % 10 == 0) {  // three chunks adding up to the size
      e.size = 3000 + i;
      for (uint32_t len : {1000u, 1000u, 1000u + i}) {
        e.blocks.append(reinterpret_cast<const char*>(&len), 4);  // little-endian here
        e.blocks.append(kBlockDigestBytes, 'b');
      }
    }
    m.push_back(e);
  }
  return Manifest(std::move(m));
}

TEST(WireTest, ManifestChunksRoundTripWithinTheLimit) {
  Manifest m = Sample(500);
  ManifestHeader h;
  h.root = m.root();
  h.count = static_cast<uint32_t>(m.size());
  auto chunks = EncodeManifestChunks(h, m, 4096);
  EXPECT_GT(chunks.size(), 5u);
  ManifestAssembler a;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_LE(chunks[i].size(), 4096u);
    ASSERT_TRUE(a.Add(static_cast<uint32_t>(i), i + 1 == chunks.size(), chunks[i]).ok());
  }
  ASSERT_TRUE(a.done());
  Manifest back = a.Take();
  EXPECT_EQ(back.root(), h.root);
  // Chunk lists arrive with every entry, not only those in the first message
  // (a lean entry would make the primary ship the whole file).
  auto it = back.begin();
  for (const Entry& e : m) EXPECT_EQ((it++)->blocks, e.blocks) << e.path;
}

TEST(WireTest, ManifestAssemblerRefusesDisorderAndLies) {
  Manifest m = Sample(100);
  ManifestHeader h;
  h.count = 100;
  auto chunks = EncodeManifestChunks(h, m, 2048);
  ASSERT_GT(chunks.size(), 2u);
  ManifestAssembler skip;
  ASSERT_TRUE(skip.Add(0, false, chunks[0]).ok());
  EXPECT_FALSE(skip.Add(2, false, chunks[2]).ok());
  ManifestAssembler early;
  ASSERT_TRUE(early.Add(0, false, chunks[0]).ok());
  EXPECT_FALSE(early.Add(1, true, chunks[1]).ok());  // fewer entries than announced
  ManifestAssembler truncated;
  EXPECT_FALSE(truncated.Add(0, true, chunks[0].substr(0, chunks[0].size() - 3)).ok());
}

// Issue 8, finding 9: a compromised backup's endless or huge manifest.
TEST(WireTest, ManifestStreamsAreBoundedInEntriesBytesAndChunks) {
  Manifest m = Sample(100);
  ManifestHeader h;
  h.count = 100;
  auto chunks = EncodeManifestChunks(h, m, 2048);
  ManifestAssembler small(ManifestLimits{50, 1u << 30});
  Status s = small.Add(0, false, chunks[0]);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("more than the limit of 50"), std::string::npos) << s.ToString();

  ManifestAssembler tight(ManifestLimits{1000, 4096});
  Status t;
  for (uint32_t i = 0; t.ok() && i < chunks.size(); ++i) {
    t = tight.Add(i, i + 1 == chunks.size(), chunks[i]);
  }
  EXPECT_NE(t.message().find("manifest larger than"), std::string::npos) << t.ToString();

  // Chunks without entries could re-arm the primary's deadline for ever.
  ManifestAssembler endless;
  ASSERT_TRUE(endless.Add(0, false, chunks[0]).ok());
  EXPECT_EQ(endless.Add(1, false, "").message(), "empty manifest chunk");

  // The declared count is a claim: nothing is reserved for it up front.
  ManifestHeader liar;
  liar.count = 1u << 20;
  auto lie = EncodeManifestChunks(liar, {}, 2048);
  ManifestAssembler a;
  ASSERT_TRUE(a.Add(0, false, lie[0]).ok());
  EXPECT_FALSE(a.Add(1, true, chunks[1]).ok());
}

// Found by fuzz_apply: a file record of 2^55 bytes made the block size
// truncate to 0 and the applier's block hashing spin for ever.
TEST(WireTest, FileSizesBeyondTheLimitAreRefused) {
  DeltaRecord f;
  f.kind = RecKind::kFile;
  f.path = "huge";
  f.size = 0x00bcfc7f00006100ull;
  std::string chunk;
  EncodeRecord(f, &chunk);
  std::vector<DeltaRecord> out;
  EXPECT_EQ(DecodeRecords(chunk, &out).message(), "file larger than the 1 TiB limit");
  f.size = kMaxFileSize;
  chunk.clear();
  EncodeRecord(f, &chunk);
  EXPECT_TRUE(DecodeRecords(chunk, &out).ok());
  EXPECT_GT(ChunkSizesFor(kMaxFileSize).min, 0u);
  EXPECT_GT(ChunkSizesFor(~0ull).min, 0u);
  Entry e;
  e.path = "huge";
  e.size = kMaxFileSize + 1;
  std::string enc;
  EncodeEntry(e, &enc);
  WireReader r(enc);
  Entry back;
  EXPECT_FALSE(DecodeEntry(&r, &back).ok());
}

// A backup's manifest is hostile input too: a chunk list must describe its
// file (the primary plans copies from it), and a copy record must name a
// valid path and a sane range.
TEST(WireTest, ChunkListsAndCopiesThatDoNotFitAreRefused) {
  std::string content(2 << 20, 'c');
  Entry e;
  e.path = "db";
  e.size = content.size();
  e.blocks = ChunkList(content);
  auto decode = [](const Entry& in) {
    std::string enc;
    EncodeEntry(in, &enc);
    WireReader r(enc);
    Entry back;
    return DecodeEntry(&r, &back);
  };
  EXPECT_TRUE(decode(e).ok());
  Entry longer = e;
  longer.size += 1;
  EXPECT_EQ(decode(longer).message(), "chunk list does not add up to the file");
  DeltaRecord c;
  c.kind = RecKind::kCopy;
  c.target = "db";
  c.size = 10;
  using Spoil = std::function<void(DeltaRecord&)>;
  for (const Spoil& bad : std::vector<Spoil>{[](DeltaRecord& r) { r.size = 0; },
                                             [](DeltaRecord& r) { r.offset = kMaxFileSize + 1; },
                                             [](DeltaRecord& r) { r.target = "../outside"; }}) {
    DeltaRecord rec = c;
    bad(rec);
    std::string chunk;
    EncodeRecord(rec, &chunk);
    std::vector<DeltaRecord> out;
    EXPECT_FALSE(DecodeRecords(chunk, &out).ok());
  }
  std::string chunk;
  EncodeRecord(c, &chunk);
  std::vector<DeltaRecord> out;
  EXPECT_TRUE(DecodeRecords(chunk, &out).ok());
}

TEST(WireTest, HostileManifestPathsAreRefused) {
  for (const char* path : {"../escape", "/abs", "a//b", ".hubsync/x"}) {
    Entry e;
    e.path = path;
    std::string buf;
    EncodeEntry(e, &buf);
    WireReader r(buf);
    Entry out;
    EXPECT_FALSE(DecodeEntry(&r, &out).ok()) << path;
  }
}

TEST(WireTest, DeltaRecordsRoundTrip) {
  std::string chunk;
  DeltaRecord f;
  f.kind = RecKind::kFile;
  f.path = "a b/ü.json";
  f.mode = 0640;
  f.mtime_ns = 123456789;
  f.size = 5;
  f.digest = Sha256Of("hello");
  EncodeRecord(f, &chunk);
  DeltaRecord d;
  d.kind = RecKind::kData;
  d.offset = 0;
  d.data = "hello";
  EncodeRecord(d, &chunk);
  DeltaRecord l;
  l.kind = RecKind::kSymlink;
  l.path = "link";
  l.target = "../outside";  // a link's target is data, never followed
  EncodeRecord(l, &chunk);
  DeltaRecord c;
  c.kind = RecKind::kFile;
  c.path = "copy";
  c.source = FileSource::kLocalCopy;
  c.target = "orig";
  EncodeRecord(c, &chunk);
  DeltaRecord end;
  end.kind = RecKind::kEnd;
  EncodeRecord(end, &chunk);
  std::vector<DeltaRecord> out;
  ASSERT_TRUE(DecodeRecords(chunk, &out).ok());
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].path, f.path);
  EXPECT_EQ(out[0].mode, 0640u);
  EXPECT_EQ(out[0].digest, f.digest);
  EXPECT_EQ(out[1].data, "hello");
  EXPECT_EQ(out[2].target, "../outside");
  EXPECT_EQ(out[3].source, FileSource::kLocalCopy);
  EXPECT_EQ(out[3].target, "orig");
  EXPECT_EQ(out[4].kind, RecKind::kEnd);
  // Every truncation either fails or yields only the whole records before it.
  for (size_t n = 1; n < chunk.size(); ++n) {
    std::vector<DeltaRecord> partial;
    Status s = DecodeRecords(std::string_view(chunk).substr(0, n), &partial);
    if (s.ok()) {
      EXPECT_LT(partial.size(), 5u) << n;
    }
  }
}

TEST(WireTest, HostileDeltaPathsAreRefused) {
  for (const char* path : {"../../etc/passwd", "/etc/passwd", "a/../../b", ".hubsync/journal"}) {
    std::string chunk;
    DeltaRecord r;
    r.kind = RecKind::kDelete;
    r.path = path;
    EncodeRecord(r, &chunk);
    std::vector<DeltaRecord> out;
    EXPECT_FALSE(DecodeRecords(chunk, &out).ok()) << path;
  }
  std::vector<DeltaRecord> out;
  EXPECT_FALSE(DecodeRecords(std::string("Z"), &out).ok());
  EXPECT_FALSE(DecodeRecords(std::string("K\0\0", 3), &out).ok());
}

// Issue 10: a delta sent against the root the primary last saw carries it
// as its first record; the backup's answer when that is not its root.
TEST(WireTest, PreconditionAndStaleAckRoundTrip) {
  std::string chunk;
  DeltaRecord base;
  base.kind = RecKind::kBase;
  base.root = Sha256Of("the backup's tree");
  EncodeRecord(base, &chunk);
  DeltaRecord end;
  end.kind = RecKind::kEnd;
  EncodeRecord(end, &chunk);
  std::vector<DeltaRecord> out;
  ASSERT_TRUE(DecodeRecords(chunk, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, RecKind::kBase);
  EXPECT_EQ(out[0].root, base.root);
  EXPECT_FALSE(DecodeRecords(chunk.substr(0, 20), &out).ok()) << "a truncated root";
  Ack stale;
  stale.kind = Ack::Kind::kStale;
  stale.root = Sha256Of("another tree");
  auto back = DecodeAck(EncodeAck(stale));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->kind, Ack::Kind::kStale);
  EXPECT_EQ(back->root, stale.root);
  std::string bad = EncodeAck(stale);
  bad[0] = 7;
  EXPECT_FALSE(DecodeAck(bad).ok()) << "no ack kind beyond kFenced";
  Ack fenced;
  fenced.kind = Ack::Kind::kFenced;
  fenced.primary = "hub-kitchen";
  back = DecodeAck(EncodeAck(fenced));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->kind, Ack::Kind::kFenced);
  EXPECT_EQ(back->primary, "hub-kitchen");
  fenced.primary = "not an id";
  EXPECT_FALSE(DecodeAck(EncodeAck(fenced)).ok()) << "a primary that is no gateway id";
}

TEST(WireTest, ManifestRequestRoundTripsAndRefusesNonsense) {
  ManifestRequest req;
  req.primary = "hub-p";
  req.root = std::string(64, 'a');
  req.expect = std::string(64, 'b');
  req.also = std::string(64, 'c');
  req.rescan = true;
  req.held_until_ms = 1800000000000;
  auto back = DecodeManifestRequest(EncodeManifestRequest(req), 9);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->transfer, 9u);
  EXPECT_EQ(back->root, req.root);
  EXPECT_EQ(back->also, req.also);
  EXPECT_TRUE(back->rescan);
  EXPECT_EQ(back->held_until_ms, 1800000000000u);
  req.held_until_ms = UINT64_MAX;  // not a time
  EXPECT_FALSE(DecodeManifestRequest(EncodeManifestRequest(req), 9).ok());
  req.held_until_ms = 0;
  std::string cut = EncodeManifestRequest(req);
  cut.pop_back();
  EXPECT_FALSE(DecodeManifestRequest(cut, 9).ok());
  EXPECT_FALSE(DecodeManifestRequest(EncodeManifestRequest(req), 0).ok()) << "transfer 0";
}

TEST(WireTest, AckRoundTrip) {
  Ack a;
  a.kind = Ack::Kind::kError;
  a.error = "digest mismatch";
  a.retry_plain = true;
  a.files = 3;
  auto b = DecodeAck(EncodeAck(a));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, Ack::Kind::kError);
  EXPECT_EQ(b->error, "digest mismatch");
  EXPECT_TRUE(b->retry_plain);
  EXPECT_EQ(b->files, 3u);
  EXPECT_FALSE(DecodeAck("x").ok());
  EXPECT_FALSE(DecodeAck(EncodeAck(a) + "trailing").ok());
}

// A backup's manifest that is mostly ours shares our leaves (the local
// stat fields never travel, so they do not count), and filtering it
// without excluding anything copies nothing.
TEST(WireTest, AManifestLikeOursSharesItsLeaves) {
  std::vector<Entry> ours_entries;
  for (const Entry& e : Sample(2000)) {
    Entry local = e;
    local.inode = 42;  // read from this disk
    ours_entries.push_back(local);
  }
  auto ours = std::make_shared<const Manifest>(std::move(ours_entries));
  Manifest theirs = *ours;
  Entry changed = theirs[1000];
  changed.digest = Sha256Of("changed");
  theirs.Put(changed);
  ManifestHeader h;
  h.root = theirs.root();
  h.count = static_cast<uint32_t>(theirs.size());
  auto chunks = EncodeManifestChunks(h, theirs, 4096);
  ManifestAssembler a({}, ours);
  for (size_t i = 0; i < chunks.size(); ++i) {
    ASSERT_TRUE(a.Add(static_cast<uint32_t>(i), i + 1 == chunks.size(), chunks[i]).ok());
  }
  Manifest back = a.Take();
  EXPECT_EQ(back.root(), theirs.root());
  size_t shared = 0;
  for (size_t i = 0; i < back.leaves().size(); ++i) shared += back.leaves()[i] == ours->leaves()[i];
  EXPECT_EQ(shared + 1, ours->leaves().size()) << "chunk lists after the first message kept";
  Manifest filtered = FilterManifest(back, PathFilter({"elsewhere/**"}));
  EXPECT_EQ(filtered.leaves(), back.leaves());
}

}  // namespace
}  // namespace hubsync
