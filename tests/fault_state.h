// A StateStore wrapper that injects failures: the Nth mutating call (Put,
// Overwrite, Flush, Remove, Update; 0-based) fails with `fail_with` (ENOSPC,
// EIO) and changes nothing, or every one from the Nth on does. Used to prove
// that a primary which cannot reserve counters or save its cache reports it,
// backs off, never seals under an unreserved counter, and recovers.
#ifndef HUBSYNC_TESTS_FAULT_STATE_H_
#define HUBSYNC_TESTS_FAULT_STATE_H_

#include <string>

#include "hubsync/state_store.h"

namespace hubsync {
namespace testing {

class FaultStateStore : public StateStore {
 public:
  explicit FaultStateStore(StateStore* base) : base_(base) {}
  int fail_at = -1;    // the Nth mutation fails once
  int fail_from = -1;  // every mutation from the Nth on fails
  Status fail_with = Status::IoError("write: No space left on device");
  int mutations = 0;

  Result<std::string> Get(const std::string& n) const override { return base_->Get(n); }
  Status Put(const std::string& n, std::string_view d) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Put(n, d);
  }
  Status Overwrite(const std::string& n, std::string_view d) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Overwrite(n, d);
  }
  Status Flush(const std::string& n) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Flush(n);
  }
  Status Remove(const std::string& n) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Remove(n);
  }
  Status Update(const std::string& n, const Change& c) override {
    HUBSYNC_RETURN_IF_ERROR(Mutate());
    return base_->Update(n, c);
  }
  std::vector<std::string> List(const std::string& d) const override { return base_->List(d); }

 private:
  Status Mutate() {
    int i = mutations++;
    if (i == fail_at || (fail_from >= 0 && i >= fail_from)) return fail_with;
    return Status::Ok();
  }
  StateStore* base_;
};

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_FAULT_STATE_H_
