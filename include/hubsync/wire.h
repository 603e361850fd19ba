// Binary codecs for what travels inside encrypted envelopes: the manifest
// stream (backup -> primary), delta records (primary -> backup) and acks.
// Pure: no I/O. Decoders treat input as hostile: every length is checked and
// every path validated.
//
// All integers are big-endian; strings are u16 length + bytes.
#ifndef HUBSYNC_WIRE_H_
#define HUBSYNC_WIRE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hubsync/manifest.h"
#include "hubsync/status.h"

namespace hubsync {

class WireWriter {
 public:
  explicit WireWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  void Str(std::string_view s);       // u16 length; caller keeps s < 64 KiB
  void LongStr(std::string_view s);   // u32 length
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }

 private:
  std::string* out_;
};

class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v);
  bool U16(uint16_t* v);
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool Str(std::string* s);
  bool LongStr(std::string_view* s);
  bool Raw(void* p, size_t n);
  bool done() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// ---- manifest stream --------------------------------------------------------
// Chunk 0 starts with a header; entries follow, never split across chunks.
struct ManifestHeader {
  bool same = false;  // backup's root equals the request's "expect": no entries follow
  Digest root{};
  uint32_t count = 0;
};

// Splits the stream into plaintext chunks of at most `max_plain` bytes.
std::vector<std::string> EncodeManifestChunks(const ManifestHeader& h, const Manifest& m,
                                              size_t max_plain);

// What one manifest stream may hold: a backup (possibly compromised) must
// not grow the primary without limit. Entries: 2^20 (ten times the largest
// tree measured); bytes (64 MiB): what the decoded entries take (paths, targets,
// block lists, fixed fields).
struct ManifestLimits {
  uint32_t max_entries = 1u << 20;
  uint64_t max_bytes = 64ull << 20;
};

// Reassembles chunks that arrive in order (chunk index 0, 1, ...). Refuses
// (Corruption) a header declaring more entries than the limits allow, a
// stream that outgrows them, and a chunk after the first without entries,
// so a stream has at most one chunk per entry and cannot go on for ever.
class ManifestAssembler {
 public:
  // `like`: a manifest whose equal leaves the result may share (ManifestBuilder).
  explicit ManifestAssembler(ManifestLimits limits = {},
                             std::shared_ptr<const Manifest> like = nullptr)
      : limits_(limits), like_(std::move(like)), entries_(like_.get(), /*local=*/false) {}
  Status Add(uint32_t chunk, bool last, std::string_view plain);
  bool done() const { return done_; }
  const ManifestHeader& header() const { return header_; }
  Manifest Take() { return entries_.Finish(); }

 private:
  ManifestLimits limits_;
  std::shared_ptr<const Manifest> like_;
  uint32_t next_chunk_ = 0;
  uint64_t bytes_ = 0;
  bool done_ = false;
  ManifestHeader header_;
  ManifestBuilder entries_;
  uint32_t count_ = 0;
};

void EncodeEntry(const Entry& e, std::string* out);
Status DecodeEntry(WireReader* r, Entry* e);

// ---- delta records ----------------------------------------------------------
enum class RecKind : uint8_t {
  kBase = 'P',        // root: the backup's root the delta was computed against
                      // (a precondition; first record of the first chunk, if any)
  kBegin = 'B',       // op_count, total (content bytes), root (primary's root after apply)
  kDelete = 'X',      // path
  kMkdir = 'D',       // path, mode
  kSymlink = 'L',     // path, target, mtime
  kFile = 'F',        // path, mode, mtime, size, digest, source, [source_path]
  kData = 'K',        // offset, bytes for the current file
  kCopy = 'R',        // source path, offset, size: append that range of the backup's own
                      // file at source path (as it is before the apply) to the current file
  kSetAttr = 'A',     // path, type, mode, mtime
  kEnd = 'E',         // commit
};

enum class FileSource : uint8_t {
  kShipped = 0,   // bytes follow in kData (and kCopy) records
  kLocalCopy = 1, // copy of the backup's own file at source_path (same digest)
};

struct DeltaRecord {
  RecKind kind = RecKind::kEnd;
  std::string path;
  std::string target;       // symlink target, or source path (kLocalCopy, kCopy)
  uint8_t type = 0;         // kSetAttr: EntryType
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;        // kFile: file size; kCopy: bytes to copy
  Digest digest{};
  FileSource source = FileSource::kShipped;
  uint64_t offset = 0;      // kData: offset in the file; kCopy: offset in the source
  uint32_t count = 0;       // kBegin: op count
  uint64_t total = 0;       // kBegin: bytes to ship
  Digest root{};            // kBegin, kBase
  std::string_view data;    // kData payload (points into the chunk)
};

// Bytes a record takes without its data (for chunk budgeting).
size_t RecordOverhead(const DeltaRecord& r);
void EncodeRecord(const DeltaRecord& r, std::string* out);
// Decodes every record of one chunk. Paths are validated; Corruption or
// InvalidArgument on anything malformed.
Status DecodeRecords(std::string_view chunk, std::vector<DeltaRecord>* out);

// ---- manifest requests ---------------------------------------------------------
// primary -> gw/<backup>/manifest/req, sealed (MsgKind::kRequest; the
// transfer id and key epoch are the envelope's). Carries correlation data
// and a response topic as MQTT v5 properties besides this body.
struct ManifestRequest {
  uint64_t transfer = 0;    // from the envelope header
  std::string primary;      // the primary's gateway id
  std::string root;         // the primary's manifest root (hex)
  std::string expect;       // root the primary believes the backup has ("" unknown)
  bool rescan = false;      // re-read the disk before answering (drift repair)
  // A tree the backup may hold besides `expect` ("" none): a delta sent at
  // once that got no answer in time (missed, or applied slowly). Either
  // root answers "same", so a slow apply costs no whole manifest.
  std::string also;
  // Changes a policy holds back, due at this wall-clock time (ms since the
  // epoch; 0: none held): a backup short of `root` only by them is pending.
  uint64_t held_until_ms = 0;
};
std::string EncodeManifestRequest(const ManifestRequest& r);
// Corruption on anything malformed (a bad id, a root that is not 64 hex
// digits, trailing bytes).
Result<ManifestRequest> DecodeManifestRequest(std::string_view plain, uint64_t transfer);

// ---- acks -------------------------------------------------------------------
struct Ack {
  // kConfirm: the backup's key confirmation after pairing (transfer 0),
  // sealed under the new epoch: proves it derived the same key.
  // kStale: a delta's precondition (kBase) is not the backup's root, which
  // `root` carries (zero when the backup does not know its own yet): nothing
  // was applied; the primary asks for the backup's manifest.
  // kFenced: the sender's term is over (SPEC 11): the backup follows a
  // higher term (its envelope's term) of `primary`; nothing was applied.
  enum class Kind : uint8_t {
    kProgress = 1, kDone = 2, kError = 3, kConfirm = 4, kStale = 5, kFenced = 6
  };
  Kind kind = Kind::kDone;
  uint32_t chunk = 0;        // progress: highest chunk written
  Digest root{};             // done: backup's root after applying
  uint32_t files = 0;
  uint64_t bytes = 0;
  std::string error;         // error: one line, no file names
  bool retry_plain = false;  // error: resend without local copies / block reuse
  std::string primary;       // fenced: the primary of the higher term
};
std::string EncodeAck(const Ack& a);
Result<Ack> DecodeAck(std::string_view plain);

}  // namespace hubsync

#endif  // HUBSYNC_WIRE_H_
