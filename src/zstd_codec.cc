// The zstd adapter (compress.h): the only file that includes <zstd.h>.
#include <zstd.h>

#include <memory>

#include "hubsync/compress.h"

namespace hubsync {
namespace {

// Measured on the benchmark's tree cut into 256 KiB blocks as deltas are
// (`zstd -b<level> -B256K` on a tar of it): level 1 packs 5,000 JSON files
// 46.7x at 2.2 GB/s and the 50 MiB database 2.07x at 214 MB/s; level 3 (zstd's
// default) 43.3x and 2.06x at 123 MB/s; --fast=1 loses a fifth on JSON.
constexpr int kLevel = 1;
constexpr size_t kMinInput = 128;    // below this a frame header eats the gain
constexpr int kMaxWindowLog = 24;    // what a frame may ask of the decoder

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// One context per thread, reused: creating one costs more than compressing
// a small delta.
ZSTD_CCtx* CCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
  return c.get();
}
ZSTD_DCtx* DCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> d([] {
    ZSTD_DCtx* x = ZSTD_createDCtx();
    if (x) ZSTD_DCtx_setParameter(x, ZSTD_d_windowLogMax, kMaxWindowLog);
    return x;
  }());
  return d.get();
}

}  // namespace

bool Compress(std::string_view in, std::string* out) {
  if (in.size() < kMinInput || !CCtx()) return false;
  out->resize(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compressCCtx(CCtx(), out->data(), out->size(), in.data(), in.size(), kLevel);
  if (ZSTD_isError(n) || n > in.size() - in.size() / 16) return false;
  out->resize(n);
  return true;
}

Result<std::string> Decompress(std::string_view in, size_t max_out) {
  unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) {
    return Status::Corruption("compressed payload without a valid frame size");
  }
  if (size > max_out) return Status::Corruption("compressed payload larger than the limit");
  size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
  if (ZSTD_isError(frame) || frame != in.size()) {
    return Status::Corruption("compressed payload is not exactly one frame");
  }
  if (!DCtx()) return Status::IoError("cannot allocate a decompression context");
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ZSTD_decompressDCtx(DCtx(), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return Status::Corruption(std::string("compressed payload is damaged: ") +
                              (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short"));
  }
  return out;
}

}  // namespace hubsync
