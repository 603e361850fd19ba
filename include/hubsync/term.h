// Terms (SPEC 11): every primary serves under a term, and a hub remembers
// the highest claim it has seen so a primary from an older term (a returning
// old primary, the loser of a split) is refused and fenced.
//
// A claim is (term, primary id). Claims are ordered: a higher term wins; on
// an equal term (two hubs promoted at once from the same term) the smaller
// gateway id wins, so every hub picks the same winner.
//
// The state_dir record "term" holds the highest claim this hub has seen or
// made: "hubsync-term v1\n<term> <primary>\n". It is written durably before
// the hub acts under a claim (serves as primary, or applies from a primary).
#ifndef HUBSYNC_TERM_H_
#define HUBSYNC_TERM_H_

#include <cstdint>
#include <string>

#include "hubsync/state_store.h"
#include "hubsync/status.h"

namespace hubsync {

struct Claim {
  uint64_t term = 0;  // 0: no claim seen yet
  std::string primary;
  bool empty() const { return term == 0; }
  bool operator==(const Claim& o) const { return term == o.term && primary == o.primary; }
};

// Whether `a` wins over `b` (see above); an empty claim beats nothing.
bool Beats(const Claim& a, const Claim& b);
// "term 3 of hub-kitchen"
std::string Describe(const Claim& c);

// The stored claim; empty when there is none; Corruption (naming the record)
// when it is damaged: a hub never guesses its term.
Result<Claim> LoadClaim(const StateStore& store);
// Stores `c` durably.
Status SaveClaim(StateStore* store, const Claim& c);

}  // namespace hubsync

#endif  // HUBSYNC_TERM_H_
