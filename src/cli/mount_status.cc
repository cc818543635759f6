#include "cli/mount_status.h"

#include <sys/xattr.h>

#include <sstream>

#include "dtkfs/xattr_names.h"
#include "fs/control.h"

namespace dtkfs::cli {

Result<MountStatus> ReadMountStatus(const std::string& canonical_mnt) {
  MountStatus out;
  out.mnt = canonical_mnt;
  ssize_t n = ::getxattr(out.mnt.c_str(), xattr::kControlStatus, nullptr, 0);
  if (n > 0) {
    out.raw.resize(static_cast<size_t>(n) + 1024);  // room for a status that grew meanwhile
    n = ::getxattr(out.mnt.c_str(), xattr::kControlStatus, out.raw.data(), out.raw.size());
  }
  if (n < 0) return Status::FromErrno(errno, "read the dtkfs status of", out.mnt);
  out.raw.resize(static_cast<size_t>(n));
  std::istringstream in(out.raw);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon != std::string::npos)
      out.fields.emplace(line.substr(0, colon), fs::UnescapeStatusValue(line.substr(colon + 2)));
  }
  return out;
}

Status RequestCompaction(const std::string& canonical_mnt) {
  if (::setxattr(canonical_mnt.c_str(), xattr::kControlCompact, "1", 1, 0) != 0)
    return Status::FromErrno(errno, "compact", canonical_mnt);
  return Status::Ok();
}

}  // namespace dtkfs::cli
