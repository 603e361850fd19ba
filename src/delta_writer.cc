#include "hubsync/delta_writer.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "hubsync/chunker.h"

namespace hubsync {
namespace {

constexpr size_t kMinData = 4096;  // start a new chunk rather than ship slivers

}  // namespace

DeltaWriter::DeltaWriter(FileSystem* fs, std::shared_ptr<const Manifest> target,
                         std::shared_ptr<const Manifest> base_manifest, std::vector<Op> ops,
                         size_t max_plain, std::optional<Digest> precondition,
                         std::optional<Digest> target_root)
    : fs_(fs),
      target_(std::move(target)),
      base_(std::move(base_manifest)),
      ops_(std::move(ops)),
      max_plain_(max_plain),
      precondition_(precondition),
      target_root_(target_root) {
  for (const Op& op : ops_) {
    if (op.kind != Op::Kind::kPutFile || !op.local_source.empty()) continue;
    PlanSegments(op);
    for (const Segment& s : segments_) total_ += s.copy ? 0 : s.length;
  }
  segments_.clear();
}

DeltaWriter::~DeltaWriter() = default;

void DeltaWriter::PlanSegments(const Op& op) {
  segments_.clear();
  copy_source_ = op.base ? op.base->path : "";
  const Entry& e = *op.entry;
  auto data = [&](uint64_t offset, uint64_t length) {
    if (!segments_.empty() && !segments_.back().copy) segments_.back().length += length;
    else segments_.push_back({false, offset, length});
  };
  if (!op.base) {
    if (e.size > 0) data(0, e.size);
    return;
  }
  // Each chunk the base file holds is copied from there on the backup;
  // runs that are contiguous in the base become one copy.
  std::unordered_map<std::string_view, ChunkView> have;
  for (const ChunkView& c : ChunkViews(op.base->blocks)) have.emplace(c.digest, c);
  for (const ChunkView& c : ChunkViews(e.blocks)) {
    auto it = have.find(c.digest);
    if (it == have.end() || it->second.length != c.length) {
      data(c.offset, c.length);
      continue;
    }
    uint64_t from = it->second.offset;
    if (!segments_.empty() && segments_.back().copy &&
        segments_.back().offset + segments_.back().length == from) {
      segments_.back().length += c.length;
    } else {
      segments_.push_back({true, from, c.length});
    }
  }
}

DeltaRecord DeltaWriter::FileRecord(const Op& op) const {
  DeltaRecord r;
  r.kind = RecKind::kFile;
  r.path = op.path;
  r.mode = op.entry->mode;
  r.mtime_ns = op.entry->mtime_ns;
  r.size = op.entry->size;
  r.digest = op.entry->digest;
  if (!op.local_source.empty()) {
    r.source = FileSource::kLocalCopy;
    r.target = op.local_source;
  }
  return r;
}

Result<std::string> DeltaWriter::Next(bool* last) {
  std::string chunk;
  *last = false;
  if (!begun_) {
    if (precondition_) {
      DeltaRecord base;
      base.kind = RecKind::kBase;
      base.root = *precondition_;
      EncodeRecord(base, &chunk);
    }
    DeltaRecord b;
    b.kind = RecKind::kBegin;
    b.count = static_cast<uint32_t>(ops_.size());
    b.total = total_;
    b.root = target_root_ ? *target_root_ : target_->root();
    EncodeRecord(b, &chunk);
    begun_ = true;
  }
  while (true) {
    // Continue the file in progress.
    while (seg_ < segments_.size()) {
      const Segment& s = segments_[seg_];
      if (s.copy) {
        DeltaRecord c;
        c.kind = RecKind::kCopy;
        c.target = copy_source_;
        c.offset = s.offset;
        c.size = s.length;
        if (chunk.size() + RecordOverhead(c) > max_plain_) return chunk;
        EncodeRecord(c, &chunk);
        ++seg_;
        continue;
      }
      size_t room = max_plain_ > chunk.size() + 32 ? max_plain_ - chunk.size() - 32 : 0;
      if (room < kMinData && !chunk.empty()) return chunk;
      size_t want = static_cast<size_t>(std::min<uint64_t>(room, s.length - seg_done_));
      buf_.resize(want);
      size_t got = 0;
      while (got < want) {
        auto n = reader_->ReadAt(s.offset + seg_done_ + got, buf_.data() + got, want - got);
        if (!n.ok()) return n.status();
        if (*n == 0) return Status::Aborted("file shrank while being sent");
        got += *n;
      }
      DeltaRecord d;
      d.kind = RecKind::kData;
      d.offset = s.offset + seg_done_;
      d.data = std::string_view(buf_.data(), want);
      EncodeRecord(d, &chunk);
      shipped_ += want;
      seg_done_ += want;
      if (seg_done_ == s.length) {
        ++seg_;
        seg_done_ = 0;
      }
    }
    reader_.reset();
    if (next_op_ == ops_.size()) {
      DeltaRecord end;
      end.kind = RecKind::kEnd;
      EncodeRecord(end, &chunk);
      *last = true;
      done_ = true;
      return chunk;
    }
    const Op& op = ops_[next_op_];
    DeltaRecord r;
    switch (op.kind) {
      case Op::Kind::kDelete:
        r.kind = RecKind::kDelete;
        r.path = op.path;
        break;
      case Op::Kind::kMkdir:
        r.kind = RecKind::kMkdir;
        r.path = op.path;
        r.mode = op.entry->mode;
        break;
      case Op::Kind::kSymlink:
        r.kind = RecKind::kSymlink;
        r.path = op.path;
        r.target = op.entry->target;
        r.mtime_ns = op.entry->mtime_ns;
        break;
      case Op::Kind::kSetAttr:
        r.kind = RecKind::kSetAttr;
        r.path = op.path;
        r.type = static_cast<uint8_t>(op.entry->type);
        r.mode = op.entry->mode;
        r.mtime_ns = op.entry->mtime_ns;
        break;
      case Op::Kind::kPutFile: r = FileRecord(op); break;
    }
    if (chunk.size() + RecordOverhead(r) + kMinData > max_plain_ && !chunk.empty()) return chunk;
    EncodeRecord(r, &chunk);
    ++next_op_;
    if (op.kind == Op::Kind::kPutFile && op.local_source.empty()) {
      PlanSegments(op);
      seg_ = 0;
      seg_done_ = 0;
      bool needs_data = std::any_of(segments_.begin(), segments_.end(),
                                    [](const Segment& s) { return !s.copy; });
      if (needs_data) {
        auto f = fs_->OpenRead(std::string(op.path));
        if (!f.ok()) {
          if (f.status().code() == Status::Code::kNotFound) {
            return Status::Aborted("file vanished while being sent");
          }
          return f.status();
        }
        reader_ = std::move(f).value();
      }
    }
  }
}

SharedDelta::SharedDelta(std::unique_ptr<DeltaWriter> writer, bool compress)
    : writer_(std::move(writer)), compress_(compress) {}

std::unique_ptr<DeltaReader> SharedDelta::Join() {
  if (first_ != 0) return nullptr;
  cursors_.push_back(0);
  return std::unique_ptr<DeltaReader>(new DeltaReader(shared_from_this(), cursors_.size() - 1));
}

Result<std::shared_ptr<const PackedChunk>> SharedDelta::Next(size_t r) {
  size_t at = cursors_[r];
  if (at == kGone) return Status::Unavailable("fell too far behind the other backups");
  if (at == first_ + held_.size()) {
    if (writer_->done()) return Status::InvalidArgument("read past the last chunk");
    if (Full()) {
      Trim(true);  // no more joining
      // Whoever still needs the oldest chunk is that far behind: let go.
      if (Full()) {
        for (size_t& c : cursors_) {
          if (c == first_) c = kGone;
        }
        Trim(true);
      }
    }
    if (!failed_.ok()) return failed_;  // the writer stopped mid-chunk
    bool last = false;
    auto plain = writer_->Next(&last);
    if (!plain.ok()) {
      failed_ = plain.status();
      return failed_;
    }
    auto chunk = std::make_shared<const PackedChunk>(Pack(*plain, compress_, last));
    held_bytes_ += chunk->bytes.size();
    held_.push_back(std::move(chunk));
  }
  std::shared_ptr<const PackedChunk> out = held_[at - first_];
  ++cursors_[r];
  Trim(false);
  return out;
}

void SharedDelta::Leave(size_t r) {
  cursors_[r] = kGone;
  Trim(false);
}

bool SharedDelta::Full() const {
  return held_.size() >= kMaxHeld || held_bytes_ >= kMaxHeldBytes;
}

void SharedDelta::Trim(bool closing) {
  // While the first chunk is held and there is room, others may join.
  if (!closing && first_ == 0 && !Full()) return;
  size_t min = kGone;
  for (size_t c : cursors_) min = std::min(min, c);
  while (!held_.empty() && first_ < min) {
    held_bytes_ -= held_.front()->bytes.size();
    held_.pop_front();
    ++first_;
  }
}

DeltaReader::~DeltaReader() { stream_->Leave(slot_); }

Result<std::unique_ptr<DeltaReader>> DeltaReader::Alone(std::unique_ptr<DeltaWriter> writer,
                                                        bool compress, size_t at) {
  if (!writer) return Status::InvalidArgument("no delta to read alone");
  for (size_t i = 0; i < at; ++i) {
    bool last = false;
    auto skipped = writer->Next(&last);
    if (!skipped.ok()) return skipped.status();
    if (last) return Status::InvalidArgument("the delta ended before the reader's place");
  }
  auto stream = std::make_shared<SharedDelta>(std::move(writer), compress);
  stream->first_ = at;
  stream->cursors_.push_back(at);
  return std::unique_ptr<DeltaReader>(new DeltaReader(std::move(stream), 0));
}

}  // namespace hubsync
