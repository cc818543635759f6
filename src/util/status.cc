#include "util/status.h"

#include <fmt/format.h>

#include <cstring>

namespace dtkfs {

Status Status::FromErrno(int err, std::string_view op, std::string_view path) {
  if (err == 0) return Status();
  Code code = err == ENOENT ? Code::kNotFound : (err == EWOULDBLOCK ? Code::kBusy : Code::kIoError);
  return Status(code, err, fmt::format("{} {}: {}", op, path, std::strerror(err)));
}

Status Status::WithContext(std::string_view ctx) const {
  if (ok()) return *this;
  return Status(code_, err_, fmt::format("{}: {}", ctx, msg_));
}

}  // namespace dtkfs
