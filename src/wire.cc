#include "hubsync/wire.h"

#include "hubsync/chunker.h"
#include "hubsync/config.h"

namespace hubsync {

void WireWriter::U16(uint16_t v) {
  U8(static_cast<uint8_t>(v >> 8));
  U8(static_cast<uint8_t>(v));
}
void WireWriter::U32(uint32_t v) {
  U16(static_cast<uint16_t>(v >> 16));
  U16(static_cast<uint16_t>(v));
}
void WireWriter::U64(uint64_t v) {
  U32(static_cast<uint32_t>(v >> 32));
  U32(static_cast<uint32_t>(v));
}
void WireWriter::Str(std::string_view s) {
  U16(static_cast<uint16_t>(s.size()));
  out_->append(s);
}
void WireWriter::LongStr(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  out_->append(s);
}

bool WireReader::Raw(void* p, size_t n) {
  if (remaining() < n) return false;
  std::copy(in_.data() + pos_, in_.data() + pos_ + n, static_cast<char*>(p));
  pos_ += n;
  return true;
}
bool WireReader::U8(uint8_t* v) { return Raw(v, 1); }
bool WireReader::U16(uint16_t* v) {
  uint8_t b[2];
  if (!Raw(b, 2)) return false;
  *v = static_cast<uint16_t>(b[0] << 8 | b[1]);
  return true;
}
bool WireReader::U32(uint32_t* v) {
  uint16_t hi, lo;
  if (!U16(&hi) || !U16(&lo)) return false;
  *v = static_cast<uint32_t>(hi) << 16 | lo;
  return true;
}
bool WireReader::U64(uint64_t* v) {
  uint32_t hi, lo;
  if (!U32(&hi) || !U32(&lo)) return false;
  *v = static_cast<uint64_t>(hi) << 32 | lo;
  return true;
}
bool WireReader::Str(std::string* s) {
  uint16_t n;
  if (!U16(&n) || remaining() < n) return false;
  s->assign(in_.data() + pos_, n);
  pos_ += n;
  return true;
}
bool WireReader::LongStr(std::string_view* s) {
  uint32_t n;
  if (!U32(&n) || remaining() < n) return false;
  *s = in_.substr(pos_, n);
  pos_ += n;
  return true;
}

// ---- manifest ---------------------------------------------------------------

void EncodeEntry(const Entry& e, std::string* out) {
  WireWriter w(out);
  w.Str(e.path);
  w.U8(static_cast<uint8_t>(e.type));
  w.U32(e.mode);
  w.U64(static_cast<uint64_t>(e.mtime_ns));
  w.U64(e.size);
  w.Raw(e.digest.data(), e.digest.size());
  w.Str(e.target);
  w.LongStr(e.blocks);
}

Status DecodeEntry(WireReader* r, Entry* e) {
  uint8_t type;
  uint64_t mtime;
  std::string_view blocks;
  if (!r->Str(&e->path) || !r->U8(&type) || !r->U32(&e->mode) || !r->U64(&mtime) ||
      !r->U64(&e->size) || !r->Raw(e->digest.data(), e->digest.size()) || !r->Str(&e->target) ||
      !r->LongStr(&blocks)) {
    return Status::Corruption("truncated manifest entry");
  }
  if (type < 1 || type > 3) return Status::Corruption("bad entry type");
  if (e->size > kMaxFileSize) return Status::Corruption("file larger than the 1 TiB limit");
  e->type = static_cast<EntryType>(type);
  e->mtime_ns = static_cast<int64_t>(mtime);
  e->mode &= kReplicatedModeBits;
  HUBSYNC_RETURN_IF_ERROR(CheckChunkList(blocks, e->size));
  e->blocks.assign(blocks);
  return ValidateRelativePath(e->path);
}

std::vector<std::string> EncodeManifestChunks(const ManifestHeader& h, const Manifest& m,
                                              size_t max_plain) {
  std::vector<std::string> chunks(1);
  WireWriter w(&chunks[0]);
  w.U8(h.same ? 1 : 0);
  w.Raw(h.root.data(), h.root.size());
  w.U32(h.count);
  if (h.same) return chunks;
  const size_t header = chunks.front().size();
  std::string one;
  for (const Entry& e : m) {
    one.clear();
    EncodeEntry(e, &one);
    if (one.size() > max_plain - header) {
      // A chunk list too long for a message this small (max_message_bytes):
      // the entry goes without it, and the file is shipped whole.
      Entry lean = e;
      lean.blocks.clear();
      one.clear();
      EncodeEntry(lean, &one);
    }
    if (chunks.back().size() + one.size() > max_plain) chunks.emplace_back();
    chunks.back() += one;
  }
  return chunks;
}

Status ManifestAssembler::Add(uint32_t chunk, bool last, std::string_view plain) {
  if (done_) return Status::Corruption("manifest chunk after the last");
  if (chunk != next_chunk_) return Status::Corruption("manifest chunk out of order");
  ++next_chunk_;
  WireReader r(plain);
  if (chunk == 0) {
    uint8_t same;
    if (!r.U8(&same) || !r.Raw(header_.root.data(), header_.root.size()) ||
        !r.U32(&header_.count)) {
      return Status::Corruption("truncated manifest header");
    }
    header_.same = same == 1;
    if (header_.count > limits_.max_entries) {
      return Status::Corruption("manifest declares " + std::to_string(header_.count) +
                                " entries, more than the limit of " +
                                std::to_string(limits_.max_entries));
    }
  } else if (r.done()) {
    return Status::Corruption("empty manifest chunk");
  }
  while (!r.done()) {
    Entry e;
    HUBSYNC_RETURN_IF_ERROR(DecodeEntry(&r, &e));
    bytes_ += sizeof(Entry) + e.path.size() + e.target.size() + e.blocks.size();
    if (bytes_ > limits_.max_bytes) {
      return Status::Corruption("manifest larger than the limit of " +
                                std::to_string(limits_.max_bytes >> 20) + " MiB");
    }
    if (!entries_.Add(std::move(e))) return Status::Corruption("manifest not sorted");
    if (++count_ > header_.count) return Status::Corruption("manifest longer than said");
  }
  if (last) {
    if (!header_.same && count_ != header_.count) {
      return Status::Corruption("manifest shorter than said");
    }
    done_ = true;
  }
  return Status::Ok();
}

// ---- delta records ----------------------------------------------------------

size_t RecordOverhead(const DeltaRecord& r) {
  return 1 + 2 + r.path.size() + 2 + r.target.size() + 64 + 32;
}

void EncodeRecord(const DeltaRecord& r, std::string* out) {
  WireWriter w(out);
  w.U8(static_cast<uint8_t>(r.kind));
  switch (r.kind) {
    case RecKind::kBegin:
      w.U32(r.count);
      w.U64(r.total);
      w.Raw(r.root.data(), r.root.size());
      break;
    case RecKind::kBase: w.Raw(r.root.data(), r.root.size()); break;
    case RecKind::kDelete: w.Str(r.path); break;
    case RecKind::kMkdir:
      w.Str(r.path);
      w.U32(r.mode);
      break;
    case RecKind::kSymlink:
      w.Str(r.path);
      w.Str(r.target);
      w.U64(static_cast<uint64_t>(r.mtime_ns));
      break;
    case RecKind::kFile:
      w.Str(r.path);
      w.U32(r.mode);
      w.U64(static_cast<uint64_t>(r.mtime_ns));
      w.U64(r.size);
      w.Raw(r.digest.data(), r.digest.size());
      w.U8(static_cast<uint8_t>(r.source));
      if (r.source == FileSource::kLocalCopy) w.Str(r.target);
      break;
    case RecKind::kData:
      w.U64(r.offset);
      w.LongStr(r.data);
      break;
    case RecKind::kCopy:
      w.Str(r.target);
      w.U64(r.offset);
      w.U64(r.size);
      break;
    case RecKind::kSetAttr:
      w.Str(r.path);
      w.U8(r.type);
      w.U32(r.mode);
      w.U64(static_cast<uint64_t>(r.mtime_ns));
      break;
    case RecKind::kEnd: break;
  }
}

Status DecodeRecords(std::string_view chunk, std::vector<DeltaRecord>* out) {
  WireReader r(chunk);
  const Status kTrunc = Status::Corruption("truncated delta record");
  while (!r.done()) {
    DeltaRecord d;
    uint8_t kind;
    uint64_t mt = 0;
    if (!r.U8(&kind)) return kTrunc;
    d.kind = static_cast<RecKind>(kind);
    bool has_path = false;
    switch (d.kind) {
      case RecKind::kBegin:
        if (!r.U32(&d.count) || !r.U64(&d.total) || !r.Raw(d.root.data(), d.root.size())) {
          return kTrunc;
        }
        break;
      case RecKind::kBase:
        if (!r.Raw(d.root.data(), d.root.size())) return kTrunc;
        break;
      case RecKind::kDelete:
        if (!r.Str(&d.path)) return kTrunc;
        has_path = true;
        break;
      case RecKind::kMkdir:
        if (!r.Str(&d.path) || !r.U32(&d.mode)) return kTrunc;
        has_path = true;
        break;
      case RecKind::kSymlink:
        if (!r.Str(&d.path) || !r.Str(&d.target) || !r.U64(&mt)) return kTrunc;
        if (d.target.empty() || d.target.find('\0') != std::string::npos) {
          return Status::InvalidArgument("bad symlink target");
        }
        has_path = true;
        break;
      case RecKind::kFile: {
        uint8_t src;
        if (!r.Str(&d.path) || !r.U32(&d.mode) || !r.U64(&mt) || !r.U64(&d.size) ||
            !r.Raw(d.digest.data(), d.digest.size()) || !r.U8(&src)) {
          return kTrunc;
        }
        if (src > 1) return Status::Corruption("bad file source");
        if (d.size > kMaxFileSize) return Status::Corruption("file larger than the 1 TiB limit");
        d.source = static_cast<FileSource>(src);
        if (d.source == FileSource::kLocalCopy) {
          if (!r.Str(&d.target)) return kTrunc;
          HUBSYNC_RETURN_IF_ERROR(ValidateRelativePath(d.target));
        }
        has_path = true;
        break;
      }
      case RecKind::kData:
        if (!r.U64(&d.offset) || !r.LongStr(&d.data)) return kTrunc;
        break;
      case RecKind::kCopy:
        if (!r.Str(&d.target) || !r.U64(&d.offset) || !r.U64(&d.size)) return kTrunc;
        HUBSYNC_RETURN_IF_ERROR(ValidateRelativePath(d.target));
        if (d.size == 0 || d.size > kMaxFileSize || d.offset > kMaxFileSize) {
          return Status::Corruption("bad copy range");
        }
        break;
      case RecKind::kSetAttr:
        if (!r.Str(&d.path) || !r.U8(&d.type) || !r.U32(&d.mode) || !r.U64(&mt)) return kTrunc;
        if (d.type < 1 || d.type > 3) return Status::Corruption("bad entry type");
        has_path = true;
        break;
      case RecKind::kEnd: break;
      default: return Status::Corruption("unknown delta record");
    }
    d.mtime_ns = static_cast<int64_t>(mt);
    d.mode &= kReplicatedModeBits;
    if (has_path) HUBSYNC_RETURN_IF_ERROR(ValidateRelativePath(d.path));
    out->push_back(std::move(d));
  }
  return Status::Ok();
}

// ---- manifest requests ---------------------------------------------------------

namespace {
constexpr uint64_t kLatestWallMs = 32503680000000;  // year 3000: beyond is nonsense
bool IsHexRoot(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
}  // namespace

std::string EncodeManifestRequest(const ManifestRequest& r) {
  std::string out;
  WireWriter w(&out);
  w.Str(r.primary);
  w.Str(r.root);
  w.Str(r.expect);
  w.U8(r.rescan ? 1 : 0);
  w.Str(r.also);
  w.U64(r.held_until_ms);
  return out;
}

Result<ManifestRequest> DecodeManifestRequest(std::string_view plain, uint64_t transfer) {
  WireReader r(plain);
  ManifestRequest req;
  uint8_t rescan;
  if (!r.Str(&req.primary) || !r.Str(&req.root) || !r.Str(&req.expect) || !r.U8(&rescan) ||
      !r.Str(&req.also) || !r.U64(&req.held_until_ms) || !r.done() || rescan > 1) {
    return Status::Corruption("malformed manifest request");
  }
  req.transfer = transfer;
  req.rescan = rescan == 1;
  if (transfer == 0 || !IsValidId(req.primary) || !IsHexRoot(req.root) ||
      (!req.expect.empty() && !IsHexRoot(req.expect)) ||
      (!req.also.empty() && (req.expect.empty() || !IsHexRoot(req.also))) ||
      req.held_until_ms > kLatestWallMs) {
    return Status::Corruption("bad manifest request");
  }
  return req;
}

std::string EncodeAck(const Ack& a) {
  std::string out;
  WireWriter w(&out);
  w.U8(static_cast<uint8_t>(a.kind));
  w.U32(a.chunk);
  w.Raw(a.root.data(), a.root.size());
  w.U32(a.files);
  w.U64(a.bytes);
  w.U8(a.retry_plain ? 1 : 0);
  w.Str(a.error.substr(0, 1000));
  w.Str(a.primary);
  return out;
}

Result<Ack> DecodeAck(std::string_view plain) {
  WireReader r(plain);
  Ack a;
  uint8_t kind, retry;
  if (!r.U8(&kind) || !r.U32(&a.chunk) || !r.Raw(a.root.data(), a.root.size()) ||
      !r.U32(&a.files) || !r.U64(&a.bytes) || !r.U8(&retry) || !r.Str(&a.error) || !r.Str(&a.primary) || !r.done()) {
    return Status::Corruption("malformed ack");
  }
  if (kind < 1 || kind > 6) return Status::Corruption("bad ack kind");
  if (!a.primary.empty() && !IsValidId(a.primary)) return Status::Corruption("bad primary id");
  a.kind = static_cast<Ack::Kind>(kind);
  a.retry_plain = retry == 1;
  return a;
}

}  // namespace hubsync
