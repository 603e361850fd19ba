#include "hubsync/manifest.h"

#include <algorithm>
#include <utility>

namespace hubsync {
namespace {

// Whether a leaf ends after `path`: one path in kLeafAverage, by a hash of
// the path alone, so every manifest holding it cuts there.
bool CutAfter(std::string_view path) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, then a finalising mix
  for (unsigned char c : path) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h % Manifest::kLeafAverage == 0;
}

void HashEntry(const Entry& e, Sha256* h) {
  h->Update(e.path.data(), e.path.size());
  uint8_t fixed[1 + 4 + 8 + 8];
  fixed[0] = static_cast<uint8_t>(e.type);
  for (int i = 0; i < 4; ++i) fixed[1 + i] = static_cast<uint8_t>(e.mode >> (8 * i));
  int64_t mt = e.type == EntryType::kDir ? 0 : e.mtime_ns;
  for (int i = 0; i < 8; ++i) fixed[5 + i] = static_cast<uint8_t>(static_cast<uint64_t>(mt) >> (8 * i));
  for (int i = 0; i < 8; ++i) fixed[13 + i] = static_cast<uint8_t>(e.size >> (8 * i));
  h->Update("\0", 1);
  h->Update(fixed, sizeof fixed);
  h->Update(e.digest.data(), e.digest.size());
  uint32_t tl = static_cast<uint32_t>(e.target.size());
  h->Update(&tl, sizeof tl);
  h->Update(e.target);
}

// What the root covers: equal here means equal for Diff too.
bool SameForRoot(const Entry& a, const Entry& b) {
  return a.path == b.path && a.type == b.type && a.mode == b.mode && a.size == b.size &&
         a.digest == b.digest && a.target == b.target &&
         (a.type == EntryType::kDir || a.mtime_ns == b.mtime_ns);
}

// Two of a leaf's 1,024 content bits per digest: a lookup of a content
// no leaf holds reads one leaf in ~70 (64 entries a leaf).
int ContentBit(const Digest& d, int which) { return (d[2 * which] << 8 | d[2 * which + 1]) & 1023; }

bool HasContentBits(const Manifest::Leaf& leaf, const Digest& d) {
  for (int k = 0; k < 2; ++k) {
    int bit = ContentBit(d, k);
    if (!(leaf.content_bits[bit >> 6] >> (bit & 63) & 1)) return false;
  }
  return true;
}

Manifest::LeafPtr MakeLeaf(std::vector<Entry> entries) {
  auto leaf = std::make_shared<Manifest::Leaf>();
  Sha256 h;
  for (const Entry& e : entries) {
    HashEntry(e, &h);
    if (e.type != EntryType::kFile) continue;
    ++leaf->files;
    leaf->bytes += e.size;
    if (e.size == 0) continue;
    for (int k = 0; k < 2; ++k) {
      int bit = ContentBit(e.digest, k);
      leaf->content_bits[bit >> 6] |= uint64_t{1} << (bit & 63);
    }
  }
  leaf->hash = h.Final();
  leaf->entries = std::move(entries);
  return leaf;
}

// Cuts sorted `entries`, starting where a leaf starts, into leaves appended
// to `out`. True when the last leaf ended at a cut (or there was nothing),
// so that whatever follows starts a leaf of its own.
bool Cut(std::vector<Entry>&& entries, std::vector<Manifest::LeafPtr>* out) {
  std::vector<Entry> leaf;
  for (Entry& e : entries) {
    bool cut = CutAfter(e.path);
    leaf.push_back(std::move(e));
    if (cut || leaf.size() == Manifest::kMaxLeaf) {
      out->push_back(MakeLeaf(std::move(leaf)));
      leaf.clear();
    }
  }
  if (leaf.empty()) return true;
  out->push_back(MakeLeaf(std::move(leaf)));
  return false;
}

bool IsUnder(std::string_view path, std::string_view dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

bool ByPath(const Entry& a, const Entry& b) { return a.path < b.path; }

// A position in a manifest that can step over a whole leaf.
class Cursor {
 public:
  explicit Cursor(const Manifest& m) : leaves_(m.leaves()) {}
  bool done() const { return leaf_ == leaves_.size(); }
  bool at_leaf_start() const { return at_ == 0; }
  const Manifest::Leaf& leaf() const { return *leaves_[leaf_]; }
  const Entry& entry() const { return leaf().entries[at_]; }
  void Next() {
    if (++at_ == leaf().entries.size()) SkipLeaf();
  }
  void SkipLeaf() {
    ++leaf_;
    at_ = 0;
  }

 private:
  const std::vector<Manifest::LeafPtr>& leaves_;
  size_t leaf_ = 0, at_ = 0;
};

}  // namespace

Manifest::const_iterator& Manifest::const_iterator::operator++() {
  if (++at_ == (*leaves_)[leaf_]->entries.size()) {
    ++leaf_;
    at_ = 0;
  }
  return *this;
}

Manifest::Manifest() = default;

Manifest::Manifest(std::vector<Entry> entries) {
  if (!std::is_sorted(entries.begin(), entries.end(), ByPath)) {
    std::stable_sort(entries.begin(), entries.end(), ByPath);
  }
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const Entry& a, const Entry& b) { return a.path == b.path; }),
                entries.end());
  size_ = entries.size();
  Cut(std::move(entries), &leaves_);
  for (const LeafPtr& leaf : leaves_) {
    files_ += leaf->files;
    bytes_ += leaf->bytes;
  }
}

const Entry& Manifest::operator[](size_t i) const {
  for (const LeafPtr& leaf : leaves_) {
    if (i < leaf->entries.size()) return leaf->entries[i];
    i -= leaf->entries.size();
  }
  std::abort();  // out of range: a caller's bug
}

namespace {

// The first entry at or after `key`, as (leaf, index); leaf == size() at the end.
std::pair<size_t, size_t> LowerBound(const std::vector<Manifest::LeafPtr>& leaves,
                                     std::string_view key) {
  size_t leaf = std::partition_point(leaves.begin(), leaves.end(),
                                     [&](const Manifest::LeafPtr& l) {
                                       return l->entries.back().path < key;
                                     }) -
                leaves.begin();
  if (leaf == leaves.size()) return {leaf, 0};
  const std::vector<Entry>& es = leaves[leaf]->entries;
  size_t at = std::partition_point(es.begin(), es.end(),
                                   [&](const Entry& e) { return e.path < key; }) -
              es.begin();
  return {leaf, at};
}

// Equal in every field, the local ones (the stat a digest was read
// under) too: then one may stand for the other.
bool SameLeaf(const Manifest::Leaf& a, const Manifest::Leaf& b, bool local) {
  if (a.hash != b.hash || a.entries.size() != b.entries.size()) return false;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const Entry& x = a.entries[i];
    const Entry& y = b.entries[i];
    if (x.path != y.path || x.blocks != y.blocks) return false;
    if (local && (x.ctime_ns != y.ctime_ns || x.inode != y.inode)) return false;
  }
  return true;
}

}  // namespace

const Entry* Manifest::Find(std::string_view path) const {
  auto [leaf, at] = LowerBound(leaves_, path);
  if (leaf == leaves_.size()) return nullptr;
  const Entry& e = leaves_[leaf]->entries[at];
  return e.path == path ? &e : nullptr;
}

bool Manifest::HasChildren(std::string_view path) const {
  std::string key(path);
  key += '/';
  auto [leaf, at] = LowerBound(leaves_, key);
  if (leaf == leaves_.size()) return false;
  return IsUnder(leaves_[leaf]->entries[at].path, path);
}

const Entry* Manifest::FindContent(uint64_t size, const Digest& digest) const {
  if (size == 0) return nullptr;
  for (const LeafPtr& leaf : leaves_) {
    if (!HasContentBits(*leaf, digest)) continue;
    for (const Entry& e : leaf->entries) {
      if (e.type == EntryType::kFile && e.size == size && e.digest == digest) return &e;
    }
  }
  return nullptr;
}

template <typename Drop>
void Manifest::Splice(std::string_view lo, std::string_view hi, Drop drop,
                      std::vector<Entry> add) {
  // The leaves to rebuild: from the one that holds (or would hold) `lo`
  // to the last that starts below `hi`. The first starts a leaf in any
  // manifest holding what precedes it, so cutting again from there is
  // what cutting the whole list would give.
  size_t a = LowerBound(leaves_, lo).first;
  if (a == leaves_.size() && a > 0) --a;  // appending: the last leaf grows
  size_t b = a;                           // one past the last leaf rebuilt
  while (b < leaves_.size() && (b == a || leaves_[b]->entries.front().path < hi)) ++b;
  std::vector<Entry> merged;
  size_t old_count = 0;
  auto added = add.begin();
  for (size_t l = a; l < b; ++l) {
    old_count += leaves_[l]->entries.size();
    files_ -= leaves_[l]->files;
    bytes_ -= leaves_[l]->bytes;
    for (const Entry& e : leaves_[l]->entries) {
      while (added != add.end() && added->path < e.path) merged.push_back(std::move(*added++));
      bool replaced = added != add.end() && added->path == e.path;
      bool in_range = e.path >= lo && e.path < hi;
      if (!replaced && !(in_range && drop(e))) merged.push_back(e);
    }
  }
  while (added != add.end()) merged.push_back(std::move(*added++));
  size_ = size_ - old_count + merged.size();
  std::vector<LeafPtr> rebuilt;
  bool at_cut = Cut(std::move(merged), &rebuilt);
  // Until the rebuilt leaves end where a leaf ends anyway, the next leaf
  // is cut again with them (its first entries may join the last one).
  while (!at_cut && b < leaves_.size()) {
    std::vector<Entry> tail = rebuilt.back()->entries;
    rebuilt.pop_back();
    tail.insert(tail.end(), leaves_[b]->entries.begin(), leaves_[b]->entries.end());
    files_ -= leaves_[b]->files;
    bytes_ -= leaves_[b]->bytes;
    ++b;
    at_cut = Cut(std::move(tail), &rebuilt);
  }
  for (const LeafPtr& leaf : rebuilt) {
    files_ += leaf->files;
    bytes_ += leaf->bytes;
  }
  leaves_.erase(leaves_.begin() + static_cast<std::ptrdiff_t>(a),
                leaves_.begin() + static_cast<std::ptrdiff_t>(b));
  leaves_.insert(leaves_.begin() + static_cast<std::ptrdiff_t>(a),
                 std::make_move_iterator(rebuilt.begin()), std::make_move_iterator(rebuilt.end()));
  root_stale_ = true;
}

void Manifest::ReplaceSubtree(const std::string& path, std::vector<Entry> fresh) {
  if (path.empty()) {
    *this = Manifest(std::move(fresh));
    return;
  }
  fresh.erase(std::remove_if(fresh.begin(), fresh.end(),
                             [&](const Entry& e) { return e.path != path && !IsUnder(e.path, path); }),
              fresh.end());
  std::stable_sort(fresh.begin(), fresh.end(), ByPath);
  fresh.erase(std::unique(fresh.begin(), fresh.end(),
                          [](const Entry& a, const Entry& b) { return a.path == b.path; }),
              fresh.end());
  // Everything at or under `path` sorts in [path, path + '0'): '0' follows
  // '/'. Siblings such as "path.x" in that range are kept.
  std::string hi = path + '0';
  Splice(path, hi, [&](const Entry& e) { return e.path == path || IsUnder(e.path, path); },
         std::move(fresh));
}

void Manifest::Put(Entry e) {
  std::string lo = e.path, hi = e.path + '\0';
  std::vector<Entry> add;
  add.push_back(std::move(e));
  Splice(lo, hi, [](const Entry&) { return true; }, std::move(add));
}

void Manifest::Erase(const std::string& path) {
  if (!Find(path)) return;
  Splice(path, path + '\0', [](const Entry&) { return true; }, {});
}

const Digest& Manifest::root() const {
  if (root_stale_) {
    Sha256 h;
    for (const LeafPtr& leaf : leaves_) h.Update(leaf->hash.data(), leaf->hash.size());
    root_ = h.Final();
    root_stale_ = false;
  }
  return root_;
}

bool ManifestBuilder::Add(Entry e) {
  const std::string* last = !leaf_.empty()          ? &leaf_.back().path
                            : !m_.leaves_.empty() ? &m_.leaves_.back()->entries.back().path
                                                  : nullptr;
  if (last && !(*last < e.path)) return false;
  bool cut = CutAfter(e.path);
  leaf_.push_back(std::move(e));
  if (cut || leaf_.size() == Manifest::kMaxLeaf) CutLeaf();
  return true;
}

void ManifestBuilder::CutLeaf() {
  m_.size_ += leaf_.size();
  Manifest::LeafPtr leaf = MakeLeaf(std::exchange(leaf_, {}));
  if (like_) {
    const auto& old = like_->leaves_;
    size_t at = LowerBound(old, leaf->entries.front().path).first;
    if (at < old.size() && SameLeaf(*old[at], *leaf, local_)) leaf = old[at];
  }
  m_.leaves_.push_back(std::move(leaf));
  m_.files_ += m_.leaves_.back()->files;
  m_.bytes_ += m_.leaves_.back()->bytes;
}

Manifest ManifestBuilder::Finish() {
  if (!leaf_.empty()) CutLeaf();
  m_.root_stale_ = true;
  return std::exchange(m_, Manifest());
}

Manifest FilterManifest(const Manifest& m, const PathFilter& filter) {
  auto excluded = [&](const Entry& e) { return filter.Excluded(e.path, e.type == EntryType::kDir); };
  if (std::none_of(m.begin(), m.end(), excluded)) return m;  // every leaf shared
  ManifestBuilder kept(&m);
  for (const Entry& e : m) {
    if (!excluded(e)) kept.Add(e);
  }
  return kept.Finish();
}

void VisitDifferences(const Manifest& a, const Manifest& b,
                      const std::function<void(const Entry* a, const Entry* b)>& visit) {
  Cursor x(a), y(b);
  while (!x.done() || !y.done()) {
    if (!x.done() && !y.done() && x.at_leaf_start() && y.at_leaf_start() &&
        (&x.leaf() == &y.leaf() || x.leaf().hash == y.leaf().hash)) {
      x.SkipLeaf();
      y.SkipLeaf();
      continue;
    }
    const Entry* p = x.done() ? nullptr : &x.entry();
    const Entry* q = y.done() ? nullptr : &y.entry();
    int order = !p ? 1 : !q ? -1 : p->path.compare(q->path);
    if (order < 0) {
      visit(p, nullptr);
      x.Next();
    } else if (order > 0) {
      visit(nullptr, q);
      y.Next();
    } else {
      if (!SameForRoot(*p, *q)) visit(p, q);
      x.Next();
      y.Next();
    }
  }
}

}  // namespace hubsync
