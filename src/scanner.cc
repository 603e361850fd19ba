#include "hubsync/scanner.h"

#include <algorithm>

#include "hubsync/chunker.h"
#include "hubsync/wire.h"

namespace hubsync {
namespace {

constexpr size_t kReadBuffer = 256 * 1024;
constexpr char kCacheMagic[] = "hubsync-cache v2\n";  // v2: content-defined chunk lists
constexpr char kCacheRecord[] = "manifest.cache";

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

}  // namespace

Status HashFile(FileSystem* fs, const std::string& path, uint64_t size, Digest* digest,
                std::string* blocks) {
  auto file = fs->OpenRead(path);
  if (!file.ok()) return file.status();
  Sha256 whole;
  Chunker chunks(size);
  blocks->clear();
  bool with_blocks = size >= kBlockDigestMinSize;
  std::string buf(kReadBuffer, '\0');
  uint64_t offset = 0;
  while (true) {
    auto n = (*file)->ReadAt(offset, buf.data(), buf.size());
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    whole.Update(buf.data(), *n);
    if (with_blocks) chunks.Update(std::string_view(buf.data(), *n));
    offset += *n;
    if (offset > size) return Status::Aborted("file grew while hashed");
  }
  if (offset != size) return Status::Aborted("file changed size while hashed");
  if (with_blocks) *blocks = chunks.Finish();
  *digest = whole.Final();
  return Status::Ok();
}

Scanner::Scanner(FileSystem* fs, const PathFilter* filter, StateStore* cache)
    : fs_(fs), filter_(filter), cache_store_(cache) {}

Status Scanner::MakeEntry(const std::string& path, const FileInfo& fi, bool force_hash,
                          int64_t now_ns, Entry* e) {
  e->path = path;
  e->type = fi.type;
  e->mode = fi.mode;
  e->mtime_ns = fi.mtime_ns;
  e->size = fi.size;
  e->target.clear();
  e->blocks.clear();
  switch (fi.type) {
    case EntryType::kDir: e->digest = Digest{}; return Status::Ok();
    case EntryType::kSymlink: {
      auto t = fs_->ReadLink(path);
      if (!t.ok()) return t.status();
      e->target = *t;
      e->digest = Sha256Of(*t);
      return Status::Ok();
    }
    case EntryType::kFile: break;
  }
  e->ctime_ns = fi.ctime_ns;
  e->inode = 0;
  if (!force_hash && Cached(path, fi, e)) {
    e->inode = fi.inode;
    return Status::Ok();
  }
  HUBSYNC_RETURN_IF_ERROR(HashFile(fs_, path, fi.size, &e->digest, &e->blocks));
  hashed_bytes_ += fi.size;
  bool settled = now_ns - fi.mtime_ns > kRacyWindowNs && now_ns - fi.ctime_ns > kRacyWindowNs;
  e->inode = settled ? fi.inode : 0;
  cache_dirty_ = true;
  return Status::Ok();
}

bool Scanner::Cached(const std::string& path, const FileInfo& fi, Entry* e) {
  // Each path is asked for once per scan: an answer is used up, so these
  // maps shrink as the manifest they feed grows (at 100,000 files each
  // is as large as the manifest).
  for (auto* map : {&remembered_, &loaded_}) {
    auto it = map->find(path);
    if (it == map->end()) continue;
    CacheEntry c = std::move(it->second);
    map->erase(it);
    if (c.size != fi.size || c.mtime_ns != fi.mtime_ns || c.ctime_ns != fi.ctime_ns ||
        c.inode != fi.inode) {
      continue;
    }
    e->digest = c.digest;
    e->blocks = std::move(c.blocks);
    return true;
  }
  const Entry* old = known_.Find(path);
  if (!old || old->type != EntryType::kFile || old->inode == 0 || old->inode != fi.inode ||
      old->size != fi.size || old->mtime_ns != fi.mtime_ns || old->ctime_ns != fi.ctime_ns) {
    return false;
  }
  e->digest = old->digest;
  e->blocks = old->blocks;
  return true;
}

void Scanner::Known(const Manifest& m) {
  if (m.root() != known_.root()) cache_dirty_ = true;
  known_ = m;
  // Both are in the manifest now (or were not wanted).
  std::unordered_map<std::string, CacheEntry>().swap(loaded_);
  std::unordered_map<std::string, CacheEntry>().swap(remembered_);
}

Status Scanner::ScanDir(const std::string& dir, const EntrySink& add, int64_t now_ns) {
  auto list = fs_->ListDir(dir);
  if (!list.ok()) {
    // A directory removed while scanning is simply gone.
    return list.status().code() == Status::Code::kNotFound ? Status::Ok() : list.status();
  }
  // In path order: a directory's own entry sorts by its name, what it holds
  // by its name and '/' ("a", then "a.b", then "a/c").
  struct Item {
    std::string key;
    size_t at;  // in *list
    bool subtree;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < list->size(); ++i) {
    const DirEntry& de = (*list)[i];
    if (!de.info.supported) continue;
    std::string path = Join(dir, de.name);
    if (!ValidateRelativePath(path).ok()) continue;
    bool is_dir = de.info.type == EntryType::kDir;
    if (filter_->Excluded(path, is_dir)) continue;
    items.push_back({de.name, i, false});
    if (is_dir) items.push_back({de.name + "/", i, true});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.key < b.key; });
  std::vector<char> added(list->size(), 0);  // a directory's entry was: descend
  for (const Item& item : items) {
    const DirEntry& de = (*list)[item.at];
    std::string path = Join(dir, de.name);
    if (item.subtree) {
      if (added[item.at]) HUBSYNC_RETURN_IF_ERROR(ScanDir(path, add, now_ns));
      continue;
    }
    Entry e;
    Status s = MakeEntry(path, de.info, false, now_ns, &e);
    if (s.code() == Status::Code::kNotFound || s.code() == Status::Code::kAborted) continue;
    HUBSYNC_RETURN_IF_ERROR(s);
    HUBSYNC_RETURN_IF_ERROR(add(std::move(e)));
    added[item.at] = 1;
  }
  return Status::Ok();
}

Result<Manifest> Scanner::Scan(int64_t now_ns) {
  ManifestBuilder built(&known_);  // what did not change shares its leaves
  HUBSYNC_RETURN_IF_ERROR(ScanDir(
      "",
      [&](Entry&& e) {
        return built.Add(std::move(e)) ? Status::Ok()
                                       : Status::Corruption("scan out of path order");
      },
      now_ns));
  Manifest m = built.Finish();
  Known(m);
  return m;
}

Status Scanner::Remember(std::string path, const Digest& digest, std::string blocks) {
  auto fi = fs_->Stat(path);
  if (!fi.ok()) return fi.status();
  if (fi->type != EntryType::kFile) return Status::Ok();
  remembered_[std::move(path)] = {fi->size, fi->mtime_ns, fi->ctime_ns, fi->inode, digest,
                                  std::move(blocks)};
  return Status::Ok();
}

Status Scanner::Update(Manifest* m, const std::vector<std::string>& paths, int64_t now_ns,
                       bool trust_cache) {
  for (std::string path : paths) {
    if (path.empty()) return Status::InvalidArgument("use Scan for the root");
    if (!ValidateRelativePath(path).ok()) continue;
    // Rescan from the highest ancestor the manifest does not know yet.
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      std::string parent = path.substr(0, slash);
      const Entry* known = m->Find(parent);
      if (!known || known->type != EntryType::kDir) {
        path = parent;
        break;
      }
    }
    // What is there now replaces the old entry and its subtree.
    auto fi = fs_->Stat(path);
    if (!fi.ok()) {
      if (fi.status().code() == Status::Code::kNotFound ||
          fi.status().code() == Status::Code::kRejected) {
        m->ReplaceSubtree(path, {});  // gone (or its parent became a symlink)
        continue;
      }
      return fi.status();
    }
    std::vector<Entry> fresh;
    if (fi->supported && !filter_->Excluded(path, fi->type == EntryType::kDir)) {
      Entry e;
      Status s = MakeEntry(path, *fi, !trust_cache, now_ns, &e);
      if (s.code() != Status::Code::kNotFound && s.code() != Status::Code::kAborted) {
        HUBSYNC_RETURN_IF_ERROR(s);
        fresh.push_back(std::move(e));
        if (fi->type == EntryType::kDir) {
          HUBSYNC_RETURN_IF_ERROR(ScanDir(
              path,
              [&](Entry&& sub) {
                fresh.push_back(std::move(sub));
                return Status::Ok();
              },
              now_ns));
        }
      }
    }
    m->ReplaceSubtree(path, std::move(fresh));
  }
  Known(*m);
  return Status::Ok();
}

Status Scanner::LoadCache() {
  if (!cache_store_) return Status::Ok();
  auto text = cache_store_->Get(kCacheRecord);
  if (!text.ok()) {
    return text.status().code() == Status::Code::kNotFound ? Status::Ok() : text.status();
  }
  std::string_view in(*text);
  if (in.substr(0, sizeof kCacheMagic - 1) != kCacheMagic) return Status::Ok();  // rebuild
  WireReader r(in.substr(sizeof kCacheMagic - 1));
  std::unordered_map<std::string, CacheEntry> loaded;
  while (!r.done()) {
    std::string path;
    CacheEntry c;
    uint64_t mt, ct;
    std::string_view blocks;
    if (!r.Str(&path) || !r.U64(&c.size) || !r.U64(&mt) || !r.U64(&ct) || !r.U64(&c.inode) ||
        !r.Raw(c.digest.data(), c.digest.size()) || !r.LongStr(&blocks)) {
      return Status::Ok();  // a damaged cache only costs re-hashing
    }
    c.mtime_ns = static_cast<int64_t>(mt);
    c.ctime_ns = static_cast<int64_t>(ct);
    bool want_blocks = c.size >= kBlockDigestMinSize;
    if (want_blocks == blocks.empty() || !CheckChunkList(blocks, c.size).ok()) {
      return Status::Ok();
    }
    c.blocks.assign(blocks);
    loaded.emplace(std::move(path), std::move(c));
  }
  loaded_.swap(loaded);
  return Status::Ok();
}

Status Scanner::SaveCache() {
  if (!cache_dirty_ || !cache_store_) return Status::Ok();
  auto cached = [](const Entry& e) { return e.type == EntryType::kFile && e.inode != 0; };
  size_t size = sizeof kCacheMagic;  // sized first: at 100,000 files this is ~10 MiB
  for (const Entry& e : known_) {
    if (cached(e)) size += 2 + e.path.size() + 4 * 8 + e.digest.size() + 4 + e.blocks.size();
  }
  std::string out;
  out.reserve(size);
  out = kCacheMagic;
  WireWriter w(&out);
  for (const Entry& e : known_) {
    if (!cached(e)) continue;
    w.Str(e.path);
    w.U64(e.size);
    w.U64(static_cast<uint64_t>(e.mtime_ns));
    w.U64(static_cast<uint64_t>(e.ctime_ns));
    w.U64(e.inode);
    w.Raw(e.digest.data(), e.digest.size());
    w.LongStr(e.blocks);
  }
  HUBSYNC_RETURN_IF_ERROR(cache_store_->Put(kCacheRecord, out));
  cache_dirty_ = false;
  return Status::Ok();
}

}  // namespace hubsync
