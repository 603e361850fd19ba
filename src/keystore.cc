#include "hubsync/keystore.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "hubsync/config.h"

namespace hubsync {
namespace {

constexpr char kKeyMagic[] = "hubsync-key v1";

Result<std::vector<KeyEntry>> ParseKeyLines(std::istringstream& in) {
  std::vector<KeyEntry> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    int64_t epoch = -1;
    std::string hex;
    ls >> epoch >> hex;
    KeyEntry e;
    if (epoch <= 0 || epoch > UINT32_MAX || !FromHex(hex, e.key.data(), e.key.size())) {
      return Status::Corruption("malformed key line");
    }
    e.epoch = static_cast<uint32_t>(epoch);
    out.push_back(e);
  }
  return out;
}

// A keys/<id> record: the magic line, then epoch lines.
Result<std::vector<KeyEntry>> ParseRecord(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string magic;
  std::getline(in, magic);
  if (magic != kKeyMagic) return Status::Corruption("key record " + name + ": bad header");
  auto entries = ParseKeyLines(in);
  if (!entries.ok()) return Status::Corruption("key record " + name + ": malformed");
  return entries;
}

// A record's id: a backup's (the primary side, and a backup's key from
// pairing) or "<backup>.from-<primary>" (a backup's key made by that hub).
bool ValidRecordId(const std::string& id) {
  if (IsValidId(id)) return true;
  size_t at = id.find(".from-");
  return at != std::string::npos && IsValidId(id.substr(0, at)) && IsValidId(id.substr(at + 6));
}

}  // namespace

std::string KeyStore::MadeBy(const std::string& backup, const std::string& maker) {
  return backup + ".from-" + maker;
}

std::string KeyStore::TxName(const std::string& backup, uint32_t epoch) {
  return "counters/" + backup + ".e" + std::to_string(epoch) + ".tx";
}

std::string KeyStore::RxName(const std::string& backup, uint32_t epoch) {
  return "counters/" + backup + ".e" + std::to_string(epoch) + ".rx";
}

Result<std::vector<KeyEntry>> KeyStore::Load(const std::string& backup) const {
  if (!ValidRecordId(backup)) return Status::InvalidArgument("bad backup id");
  auto text = store_->Get(Name(backup));
  if (!text.ok()) return text.status();
  auto entries = ParseRecord(*text, Name(backup));
  if (entries.ok() && entries->empty()) return Status::NotFound("no key for " + backup);
  return entries;
}

Status KeyStore::Change(const std::string& backup, bool tolerate_damage,
                        const std::function<Status(std::vector<KeyEntry>*)>& change) {
  if (!ValidRecordId(backup)) return Status::InvalidArgument("bad backup id");
  return store_->Update(Name(backup), [&](const Result<std::string>& old)
                                          -> Result<std::optional<std::string>> {
    std::vector<KeyEntry> entries;
    if (old.ok()) {
      auto parsed = ParseRecord(*old, Name(backup));
      if (parsed.ok()) {
        entries = std::move(parsed).value();
      } else if (!tolerate_damage) {
        return parsed.status();
      }
    } else if (old.status().code() != Status::Code::kNotFound) {
      return old.status();
    }
    HUBSYNC_RETURN_IF_ERROR(change(&entries));
    if (entries.empty()) return std::optional<std::string>();
    std::sort(entries.begin(), entries.end(),
              [](const KeyEntry& a, const KeyEntry& b) { return a.epoch < b.epoch; });
    if (entries.size() > 2) entries.erase(entries.begin(), entries.end() - 2);
    std::string text = std::string(kKeyMagic) + "\n";
    for (const auto& e : entries) {
      text += std::to_string(e.epoch) + " " + ToHex(e.key.data(), e.key.size()) + "\n";
    }
    return std::optional<std::string>(std::move(text));
  });
}

Status KeyStore::Put(const std::string& backup, const KeyEntry& entry) {
  return Change(backup, true, [&](std::vector<KeyEntry>* entries) {
    entries->erase(std::remove_if(entries->begin(), entries->end(),
                                  [&](const KeyEntry& e) { return e.epoch == entry.epoch; }),
                   entries->end());
    entries->push_back(entry);
    return Status::Ok();
  });
}

Status KeyStore::PutNewer(const std::string& backup, const KeyEntry& entry) {
  return Change(backup, false, [&](std::vector<KeyEntry>* entries) {
    uint32_t newest = entries->empty() ? 0 : std::max_element(entries->begin(), entries->end(),
        [](const KeyEntry& a, const KeyEntry& b) { return a.epoch < b.epoch; })->epoch;
    if (entry.epoch <= newest) {
      return Status::InvalidArgument("key epoch " + std::to_string(entry.epoch) +
                                     " is not newer than the stored epoch " + std::to_string(newest));
    }
    entries->push_back(entry);
    return Status::Ok();
  });
}

Result<KeyEntry> KeyStore::PutNext(const std::string& backup, const Key& key,
                                   const std::function<Status(const KeyEntry&)>& before) {
  KeyEntry added;
  Status s = Change(backup, false, [&](std::vector<KeyEntry>* entries) {
    uint32_t newest = 0;
    for (const KeyEntry& e : *entries) newest = std::max(newest, e.epoch);
    if (newest == UINT32_MAX) return Status::InvalidArgument("key epochs exhausted");
    added.epoch = newest + 1;
    added.key = key;
    HUBSYNC_RETURN_IF_ERROR(before(added));
    entries->push_back(added);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return added;
}

Status KeyStore::Retire(const std::string& backup, uint32_t epoch) {
  return Change(backup, false, [&](std::vector<KeyEntry>* entries) {
    if (entries->empty()) return Status::NotFound("no key for " + backup);
    entries->erase(std::remove_if(entries->begin(), entries->end(),
                                  [&](const KeyEntry& e) { return e.epoch < epoch; }),
                   entries->end());
    return Status::Ok();
  });
}

Status KeyStore::Remove(const std::string& backup) {
  return Change(backup, true, [](std::vector<KeyEntry>* entries) {
    entries->clear();
    return Status::Ok();
  });
}

std::vector<std::string> KeyStore::List() const {
  std::vector<std::string> ids;
  for (const std::string& name : store_->List("keys")) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".key") == 0) {
      std::string id = name.substr(0, name.size() - 4);
      if (IsValidId(id)) ids.push_back(id);
    }
  }
  return ids;
}

std::string KeyStore::Export(const std::string& home, const std::string& backup,
                             const std::string& maker, const KeyEntry& e) {
  return std::string(kKeyMagic) + "\nhome " + home + "\nbackup " + backup + "\nmade-by " + maker +
         "\n" + std::to_string(e.epoch) + " " + ToHex(e.key.data(), e.key.size()) + "\n";
}

Result<KeyEntry> KeyStore::Import(const std::string& text, const std::string& home,
                                  const std::string& backup, std::string* maker) {
  std::istringstream in(text);
  std::string magic, home_line, backup_line;
  std::getline(in, magic);
  std::getline(in, home_line);
  std::getline(in, backup_line);
  if (magic != kKeyMagic) return Status::InvalidArgument("not a hubsync key file");
  if (home_line != "home " + home) return Status::InvalidArgument("key is for another home");
  if (backup_line != "backup " + backup) {
    if (backup_line.rfind("backup ", 0) != 0) return Status::InvalidArgument("not a hubsync key file");
    std::string other = backup_line.substr(7);
    if (!IsValidId(other)) return Status::InvalidArgument("malformed key file");
    return Status::InvalidArgument("key is for another backup (" + other + ")");
  }
  // "made-by <id>" names the hub that made it (files from before it did
  // not: the key is then the one with this hub's primary).
  maker->clear();
  if (in.peek() == 'm') {
    std::string made_line;
    std::getline(in, made_line);
    if (made_line.rfind("made-by ", 0) != 0 || !IsValidId(made_line.substr(8))) {
      return Status::InvalidArgument("malformed key file");
    }
    *maker = made_line.substr(8);
    if (*maker == backup) return Status::InvalidArgument("key made by the backup itself");
  }
  auto entries = ParseKeyLines(in);
  if (!entries.ok() || entries->size() != 1) return Status::InvalidArgument("malformed key file");
  return (*entries)[0];
}

// ---- counters -------------------------------------------------------------

Result<TxCounter> TxCounter::Open(StateStore* store, const std::string& name) {
  TxCounter c(store, name);
  auto text = store->Get(name);
  if (text.ok()) {
    char* end = nullptr;
    errno = 0;
    c.next_ = std::strtoull(text->c_str(), &end, 10);
    if (errno != 0 || end == text->c_str() || (*end != '\n' && *end != '\0') || c.next_ == 0) {
      return Status::Corruption("counter record " + name + " is malformed");
    }
  } else if (text.status().code() != Status::Code::kNotFound) {
    return text.status();
  }
  c.reserved_ = c.next_;  // nothing reserved in this process yet
  return c;
}

Status TxCounter::Reserve() {
  if (next_ < reserved_) return Status::Ok();
  if (next_ > UINT64_MAX - kBlock) return Status::Unavailable("message counters exhausted: pair again");
  uint64_t mark = next_ + kBlock;
  HUBSYNC_RETURN_IF_ERROR(store_->Put(name_, std::to_string(mark) + "\n"));
  reserved_ = mark;
  return Status::Ok();
}

Result<uint64_t> TxCounter::Next() {
  HUBSYNC_RETURN_IF_ERROR(Reserve());
  return next_++;
}

Result<RxCounter> RxCounter::Open(StateStore* store, const std::string& name) {
  auto text = store->Get(name);
  uint64_t last = 0;
  if (text.ok()) {
    // Empty: created and never written (an older hubsync made it at open).
    if (!text->empty() && text->size() != 8) return Status::Corruption("counter record " + name + " is malformed");
    for (int i = 0; i < 8; ++i) last = last << 8 | static_cast<uint8_t>((*text)[i]);
  } else if (text.status().code() != Status::Code::kNotFound) {
    return text.status();
  }
  return RxCounter(store, name, last);
}

Status RxCounter::Accept(uint64_t counter) {
  if (counter <= last_) return Status::Rejected("replayed or reordered message");
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(counter >> (56 - 8 * i));
  HUBSYNC_RETURN_IF_ERROR(store_->Overwrite(name_, std::string_view(buf, sizeof buf)));
  last_ = counter;
  return Status::Ok();
}

}  // namespace hubsync
