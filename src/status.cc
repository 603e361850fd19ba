#include "hubsync/status.h"

namespace hubsync {

std::string Status::ToString() const {
  static const char* kNames[] = {"OK",        "invalid argument", "not found",   "I/O error",
                                 "corruption", "rejected",         "unavailable", "aborted"};
  if (ok()) return "OK";
  return std::string(kNames[static_cast<int>(code_)]) + ": " + message_;
}

std::string Status::Reason() const {
  size_t colon = message_.rfind(": ");
  return colon == std::string::npos ? message_ : message_.substr(colon + 2);
}

}  // namespace hubsync
