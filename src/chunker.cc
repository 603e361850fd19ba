#include "hubsync/chunker.h"

#include <array>
#include <cstring>

namespace hubsync {
namespace {

// 256 fixed pseudo-random words (splitmix64 from a constant seed): both
// ends of a sync must cut at the same places, so this never changes.
const std::array<uint64_t, 256>& Gear() {
  static const std::array<uint64_t, 256> table = [] {
    std::array<uint64_t, 256> t{};
    uint64_t x = 0x68756273796e6330ull;  // "hubsync0"
    for (uint64_t& v : t) {
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      v = z ^ (z >> 31);
    }
    return t;
  }();
  return table;
}

// The top `bits` bits: with a left-shifting gear hash they depend on the
// last 64 bytes, the low ones only on the last few.
uint64_t TopBits(int bits) { return bits <= 0 ? 0 : ~0ull << (64 - bits); }

int Log2(uint64_t v) {
  int n = 0;
  while (v > 1) {
    v >>= 1;
    ++n;
  }
  return n;
}

uint32_t ReadLe32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | static_cast<uint32_t>(u[1]) << 8 |
         static_cast<uint32_t>(u[2]) << 16 | static_cast<uint32_t>(u[3]) << 24;
}

}  // namespace

ChunkSizes ChunkSizesFor(uint64_t size) {
  uint64_t avg = 16 * 1024;
  while (avg < (1ull << 29) && avg * kTargetChunks < size) avg *= 2;
  ChunkSizes s;
  s.avg = static_cast<uint32_t>(avg);
  s.min = s.avg / 4;
  s.max = static_cast<uint32_t>(avg * 4);
  return s;
}

Chunker::Chunker(uint64_t size) : sizes_(ChunkSizesFor(size)) {
  // Normalised chunking (FastCDC, level 2): harder to cut before the
  // average, easier after, so lengths bunch around it.
  int bits = Log2(sizes_.avg);
  mask_small_ = TopBits(bits + 2);
  mask_large_ = TopBits(bits - 2);
}

void Chunker::Update(std::string_view data) {
  const auto& gear = Gear();
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  size_t start = 0, i = 0, n = data.size();
  while (i < n) {
    if (len_ < sizes_.min) {  // no cut this early: skip the hashing
      size_t skip = static_cast<size_t>(std::min<uint64_t>(n - i, sizes_.min - len_));
      len_ += skip;
      i += skip;
      continue;
    }
    // A byte that leaves the chunk shorter than the average is checked
    // with the strict mask, later ones with the loose mask up to the
    // maximum: one tight loop per stretch.
    bool small = len_ + 1 < sizes_.avg;
    uint64_t mask = small ? mask_small_ : mask_large_;
    uint64_t limit = small ? sizes_.avg - 1 : sizes_.max;
    size_t end = static_cast<size_t>(std::min<uint64_t>(n, i + (limit - len_)));
    uint64_t fp = fp_;
    size_t from = i;
    bool cut = false;
    while (i < end) {
      fp = (fp << 1) + gear[bytes[i++]];
      if ((fp & mask) == 0) {
        cut = true;
        break;
      }
    }
    fp_ = fp;
    len_ += i - from;
    if (cut || len_ >= sizes_.max) {
      hash_.Update(data.data() + start, i - start);
      start = i;
      Cut();
    }
  }
  hash_.Update(data.data() + start, n - start);
}

void Chunker::Cut() {
  Digest d = hash_.Final();
  uint32_t n = static_cast<uint32_t>(len_);
  char le[4] = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                static_cast<char>(n >> 24)};
  list_.append(le, 4);
  list_.append(reinterpret_cast<const char*>(d.data()), kBlockDigestBytes);
  len_ = 0;
  fp_ = 0;
}

std::string Chunker::Finish() {
  if (len_ > 0) Cut();
  std::string out;
  out.swap(list_);
  fp_ = 0;
  return out;
}

std::string ChunkList(std::string_view data) {
  Chunker c(data.size());
  c.Update(data);
  return c.Finish();
}

std::vector<ChunkView> ChunkViews(std::string_view list) {
  std::vector<ChunkView> out;
  out.reserve(list.size() / kChunkRecordBytes);
  uint64_t offset = 0;
  for (size_t p = 0; p + kChunkRecordBytes <= list.size(); p += kChunkRecordBytes) {
    ChunkView v;
    v.offset = offset;
    v.length = ReadLe32(list.data() + p);
    v.digest = list.substr(p + 4, kBlockDigestBytes);
    offset += v.length;
    out.push_back(v);
  }
  return out;
}

Status CheckChunkList(std::string_view list, uint64_t size) {
  if (list.size() % kChunkRecordBytes != 0 || list.size() / kChunkRecordBytes > kMaxBlocks) {
    return Status::Corruption("bad chunk list");
  }
  uint64_t sum = 0;
  for (size_t p = 0; p < list.size(); p += kChunkRecordBytes) {
    uint32_t n = ReadLe32(list.data() + p);
    if (n == 0) return Status::Corruption("empty chunk in a chunk list");
    sum += n;
  }
  if (!list.empty() && sum != size) return Status::Corruption("chunk list does not add up to the file");
  return Status::Ok();
}

}  // namespace hubsync
