// Status and Result<T>: how every fallible call in hubsync reports failure.
//
// The core never throws. A Status is either OK or carries a code and a
// one-line message meant for a log line or an error event (never file
// content, never key material). Result<T> is a Status plus a value that is
// present exactly when the status is OK.
#ifndef HUBSYNC_STATUS_H_
#define HUBSYNC_STATUS_H_

#include <optional>
#include <string>
#include <utility>

namespace hubsync {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad input from a user, a config or a peer
    kNotFound,
    kIoError,          // the filesystem or a socket failed
    kCorruption,       // data failed a check (digest, tag, framing)
    kRejected,         // a peer's message was refused (replay, epoch, path)
    kUnavailable,      // the broker or peer is not reachable right now
    kAborted,          // work was cancelled or superseded
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status Rejected(std::string m) { return {Code::kRejected, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;
  // The last part of the message (after its last ": "): for a filesystem
  // error, the system's reason without the path it names. Status and events
  // are plaintext on the broker and carry no file names (SPEC 8).
  std::string Reason() const;

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be OK
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

#define HUBSYNC_RETURN_IF_ERROR(expr)        \
  do {                                       \
    ::hubsync::Status _s = (expr);           \
    if (!_s.ok()) return _s;                 \
  } while (0)

}  // namespace hubsync

#endif  // HUBSYNC_STATUS_H_
