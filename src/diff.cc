// Diff: what a backup lacks to equal the primary, as apply-ordered Ops.
#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "hubsync/chunker.h"
#include "hubsync/manifest.h"

namespace hubsync {
namespace {

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h = 0;
    for (size_t i = 0; i < sizeof h; ++i) h = h << 8 | d[i];
    return h;
  }
};

bool SameContent(const Entry& a, const Entry& b) {
  return a.size == b.size && a.digest == b.digest;
}

bool SameAttrs(const Entry& a, const Entry& b) {
  if (a.mode != b.mode) return false;
  return a.type == EntryType::kDir || a.mtime_ns == b.mtime_ns;
}

// Up to this many puts look the backup's files up one by one; more build
// an index (100,000 entries: tens of ms, most of a small change's cost).
constexpr size_t kDirectLookups = 16;

}  // namespace

std::vector<Op> Diff(const Manifest& primary, const Manifest& backup, const DiffOptions& opts) {
  std::vector<Op> deletes, updates;
  // The backup's large files by the chunks they hold, built on first need:
  // a large file with no old version to build on (renamed, copied, saved
  // under a new name) takes the one it shares most chunks with.
  std::unordered_map<std::string_view, const Entry*> chunk_owner;
  bool indexed = false;
  auto sharing_most = [&](const Entry& p) -> const Entry* {
    if (!indexed) {
      for (const Entry& e : backup) {
        if (e.type != EntryType::kFile || e.blocks.empty()) continue;
        for (const ChunkView& c : ChunkViews(e.blocks)) chunk_owner.emplace(c.digest, &e);
      }
      indexed = true;
    }
    std::unordered_map<const Entry*, size_t> shared;
    const Entry* best = nullptr;
    for (const ChunkView& c : ChunkViews(p.blocks)) {
      auto it = chunk_owner.find(c.digest);
      if (it == chunk_owner.end()) continue;
      size_t n = ++shared[it->second];
      if (!best || n > shared[best]) best = it->second;
    }
    return best;
  };
  // Sources are chosen once every put is known (below); until then `base`
  // holds the backup's old version, if any.
  auto put = [&](const Entry& p, const Entry* old) {
    updates.push_back({Op::Kind::kPutFile, &p, p.path, {}, old});
  };
  auto create = [&](const Entry& p) {
    switch (p.type) {
      case EntryType::kDir: updates.push_back({Op::Kind::kMkdir, &p, p.path, {}, nullptr}); break;
      case EntryType::kSymlink:
        updates.push_back({Op::Kind::kSymlink, &p, p.path, {}, nullptr});
        break;
      case EntryType::kFile: put(p, nullptr); break;
    }
  };
  VisitDifferences(primary, backup, [&](const Entry* p, const Entry* b) {
    if (!b) return create(*p);
    if (!p) return deletes.push_back({Op::Kind::kDelete, nullptr, b->path, {}, nullptr});
    if (p->type != b->type) {
      deletes.push_back({Op::Kind::kDelete, nullptr, b->path, {}, nullptr});
      create(*p);
    } else if (p->type == EntryType::kFile && !SameContent(*p, *b)) {
      put(*p, b);
    } else if (p->type == EntryType::kSymlink && p->target != b->target) {
      updates.push_back({Op::Kind::kSymlink, p, p->path, {}, nullptr});
    } else if (!SameAttrs(*p, *b)) {
      updates.push_back({p->type == EntryType::kDir ? Op::Kind::kMkdir : Op::Kind::kSetAttr, p,
                         p->path, {}, nullptr});
    }
  });
  // Where each new content comes from: a backup file that holds it whole (a
  // rename, a copy) is copied there; else a large file takes the chunks the
  // backup holds. A few puts (a small change) look the backup up directly;
  // more build an index of its files by digest once.
  size_t puts = 0;
  for (const Op& op : updates) puts += op.kind == Op::Kind::kPutFile && op.entry->size > 0;
  std::unordered_map<Digest, const Entry*, DigestHash> backup_content;
  bool indexed_content = opts.allow_local_source && puts > kDirectLookups;
  if (indexed_content) {
    for (const Entry& e : backup) {
      if (e.type == EntryType::kFile && e.size > 0) backup_content.emplace(e.digest, &e);
    }
  }
  auto holding = [&](const Entry& p) -> const Entry* {
    if (!opts.allow_local_source || p.size == 0) return nullptr;
    if (indexed_content) {
      auto it = backup_content.find(p.digest);
      return it != backup_content.end() && it->second->size == p.size ? it->second : nullptr;
    }
    return backup.FindContent(p.size, p.digest);  // the first in path order, as the index keeps
  };
  for (Op& op : updates) {
    if (op.kind != Op::Kind::kPutFile) continue;
    const Entry* old = op.base;
    op.base = nullptr;
    if (const Entry* same = holding(*op.entry)) {
      op.local_source = same->path;
    } else if (opts.allow_block_reuse && !op.entry->blocks.empty()) {
      op.base = old && !old->blocks.empty() ? old : sharing_most(*op.entry);
    }
  }
  // Children before parents: reverse path order.
  std::reverse(deletes.begin(), deletes.end());
  deletes.insert(deletes.end(), std::make_move_iterator(updates.begin()),
                 std::make_move_iterator(updates.end()));
  return deletes;
}

}  // namespace hubsync
