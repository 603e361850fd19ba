#include "hubsync/term.h"

#include <cerrno>
#include <cstdlib>

#include "hubsync/config.h"

namespace hubsync {
namespace {
constexpr const char* kRecord = "term";
constexpr const char* kMagic = "hubsync-term v1\n";
}  // namespace

bool Beats(const Claim& a, const Claim& b) {
  if (a.empty()) return false;
  if (a.term != b.term) return a.term > b.term;
  return !b.empty() && a.primary < b.primary;
}

std::string Describe(const Claim& c) {
  if (c.empty()) return "no term";
  return "term " + std::to_string(c.term) + " of " + c.primary;
}

Result<Claim> LoadClaim(const StateStore& store) {
  auto text = store.Get(kRecord);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) return Claim{};
    return text.status();
  }
  auto damaged = [] { return Status::Corruption("state record term is damaged (remove it only if this hub never served as primary)"); };
  const std::string magic = kMagic;
  if (text->size() > 200 || text->compare(0, magic.size(), magic) != 0) return damaged();
  std::string rest = text->substr(magic.size());
  size_t space = rest.find(' ');
  if (space == std::string::npos || rest.empty() || rest.back() != '\n') return damaged();
  Claim c;
  std::string number = rest.substr(0, space);
  char* end = nullptr;
  errno = 0;
  c.term = std::strtoull(number.c_str(), &end, 10);
  if (number.empty() || number[0] < '0' || number[0] > '9' || errno != 0 || *end != '\0' ||
      c.term == 0) {
    return damaged();
  }
  c.primary = rest.substr(space + 1, rest.size() - space - 2);
  if (!IsValidId(c.primary)) return damaged();
  return c;
}

Status SaveClaim(StateStore* store, const Claim& c) {
  if (c.empty() || !IsValidId(c.primary)) return Status::InvalidArgument("not a claim");
  return store->Put(kRecord, std::string(kMagic) + std::to_string(c.term) + " " + c.primary + "\n");
}

}  // namespace hubsync
