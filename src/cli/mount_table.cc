#include "cli/mount_table.h"

#include <fmt/format.h>

#include <boost/filesystem.hpp>
#include <fstream>
#include <sstream>

namespace dtkfs::cli {
namespace {

bool IsSameOrBelow(std::string_view p, std::string_view dir) {
  if (dir == "/") return true;
  return p == dir ||
         (p.size() > dir.size() && p.substr(0, dir.size()) == dir && p[dir.size()] == '/');
}

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

std::string DecodeMountInfoField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && IsOctal(field[i + 1]) &&
        IsOctal(field[i + 2]) && IsOctal(field[i + 3])) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::vector<MountEntry> ParseMountInfo(std::string_view text) {
  // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
  // (1)(2)(3)   (4)   (5)      (6)         (7)  (8) (9)   (10)       (11)
  std::vector<MountEntry> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::vector<std::string_view> fields;
    while (!line.empty()) {
      const size_t sp = line.find(' ');
      if (sp != 0) fields.push_back(line.substr(0, sp));
      line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    }
    size_t dash = 6;  // the optional fields end at a lone "-"
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 6 || dash + 1 >= fields.size()) continue;
    out.push_back(MountEntry{DecodeMountInfoField(fields[4]), std::string(fields[dash + 1])});
  }
  return out;
}

Status CheckDtkfsMountPoint(const std::string& canonical_path,
                            const std::vector<MountEntry>& table) {
  // The mount that holds the path: the deepest mount point at or above it, and of those on
  // the same point the last one (mounted on top).
  const MountEntry* holder = nullptr;
  for (const MountEntry& e : table)
    if (IsSameOrBelow(canonical_path, e.mount_point) &&
        (holder == nullptr || e.mount_point.size() >= holder->mount_point.size()))
      holder = &e;
  if (holder != nullptr && holder->fstype == kDtkfsFsType) {
    if (holder->mount_point == canonical_path) return Status::Ok();
    return Status::InvalidArgument(
        fmt::format("{}: not a dtkfs mount point but a directory inside the dtkfs mount {}; use {}",
                    canonical_path, holder->mount_point, holder->mount_point));
  }
  return Status::InvalidArgument(fmt::format(
      "{}: not a dtkfs mount ({})", canonical_path,
      holder == nullptr
          ? std::string("not in the mount table")
          : fmt::format("it is on the {} mount at {}", holder->fstype, holder->mount_point)));
}

Result<std::string> ResolveDtkfsMountPoint(const std::string& path) {
  boost::system::error_code ec;
  const std::string canonical = boost::filesystem::canonical(path, ec).string();
  if (ec) return Status::FromErrno(ec.value(), "resolve", path);
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::FromErrno(errno, "read", "/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  DTKFS_RETURN_IF_ERROR(CheckDtkfsMountPoint(canonical, ParseMountInfo(text.str())));
  return canonical;
}

}  // namespace dtkfs::cli
