// Status and Result: how every fallible call in the core reports failure.
//
// errno becomes a Status in exactly one place (Status::FromErrno); the FUSE layer turns a
// Status back into an errno in exactly one place (Status::errno_value). Messages always name
// the operation and the path. Ignoring a Status must be written out with PermitUnchecked().
//
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dtkfs {

class [[nodiscard]] Status {
 public:
  enum class Code { kOk, kIoError, kCorruption, kInvalidArgument, kNotFound, kBusy };

  Status() = default;
  static Status Ok() { return Status(); }
  // The one errno-to-Status translation: "OP PATH: strerror(err)".
  static Status FromErrno(int err, std::string_view op, std::string_view path);
  static Status Corruption(std::string msg) {
    return Status(Code::kCorruption, EIO, std::move(msg));
  }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, EINVAL, std::move(msg));
  }
  static Status NotFound(std::string msg) {
    return Status(Code::kNotFound, ENOENT, std::move(msg));
  }
  static Status Busy(std::string msg) { return Status(Code::kBusy, EBUSY, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  // The errno a caller (the FUSE layer, the CLI) should report for this failure; 0 when ok.
  int errno_value() const { return err_; }
  const std::string& message() const { return msg_; }
  std::string ToString() const { return ok() ? std::string("ok") : msg_; }
  // Prepends context: "compact /x: " + message.
  Status WithContext(std::string_view ctx) const;
  // Written at the call sites that deliberately ignore a failure, so they can be grepped.
  void PermitUnchecked() const {}

 private:
  Status(Code code, int err, std::string msg) : code_(code), err_(err), msg_(std::move(msg)) {}
  Code code_ = Code::kOk;
  int err_ = 0;
  std::string msg_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
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
  std::optional<T> value_;
  Status status_;
};

}  // namespace dtkfs

// Propagates a failed Status from an expression that yields one.
#define DTKFS_RETURN_IF_ERROR(expr) \
  do {                              \
    ::dtkfs::Status _st = (expr);   \
    if (!_st.ok()) return _st;      \
  } while (0)
