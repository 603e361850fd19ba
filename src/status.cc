#include "hubsync/status.h"

namespace hubsync {

std::string Status::ToString() const {
  static const char* kNames[] = {"OK",        "invalid argument", "not found",   "I/O error",
                                 "corruption", "rejected",         "unavailable", "aborted"};
  if (ok()) return "OK";
  return std::string(kNames[static_cast<int>(code_)]) + ": " + message_;
}

}  // namespace hubsync
