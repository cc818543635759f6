#include "cli/mount_point.h"

#include <fmt/format.h>

#include <boost/filesystem.hpp>
#include <charconv>

#include "util/path.h"

namespace dtkfs::cli {

namespace {

// The mount that holds the path: the deepest mount point at or above it, and of those on the
// same point the last one (mounted on top).
const MountInfo* MountHolding(const std::string& canonical_path,
                              const std::vector<MountInfo>& table) {
  const MountInfo* holder = nullptr;
  for (const MountInfo& e : table)
    if (path::IsSameOrBelowAbsolute(canonical_path, e.mount_point) &&
        (holder == nullptr || e.mount_point.size() >= holder->mount_point.size()))
      holder = &e;
  return holder;
}

}  // namespace

Status CheckDtkfsMountPoint(const std::string& canonical_path,
                            const std::vector<MountInfo>& table) {
  const MountInfo* holder = MountHolding(canonical_path, table);
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
  auto table = ReadMountInfo();
  if (!table.ok()) return table.status();
  DTKFS_RETURN_IF_ERROR(CheckDtkfsMountPoint(canonical, *table));
  return canonical;
}

std::optional<std::string> DtkfsMountHolding(const std::string& canonical_path) {
  auto table = ReadMountInfo();
  if (!table.ok()) return std::nullopt;
  const MountInfo* holder = MountHolding(canonical_path, *table);
  if (holder == nullptr || holder->fstype != kDtkfsFsType) return std::nullopt;
  return holder->mount_point;
}

std::optional<uid_t> DtkfsMountOwner(const std::string& canonical_mount_point) {
  auto table = ReadMountInfo();
  if (!table.ok()) return std::nullopt;
  const MountInfo* holder = MountHolding(canonical_mount_point, *table);
  if (holder == nullptr || holder->mount_point != canonical_mount_point) return std::nullopt;
  const std::string key = "user_id=";
  const auto at = holder->super_options.find(key);
  if (at == std::string::npos) return std::nullopt;
  uid_t uid = 0;
  const char* begin = holder->super_options.data() + at + key.size();
  const char* end = holder->super_options.data() + holder->super_options.size();
  if (std::from_chars(begin, end, uid).ec != std::errc()) return std::nullopt;
  return uid;
}

bool IsDtkfsMountPointAt(const std::string& path) {
  std::string abs = boost::filesystem::absolute(path).lexically_normal().string();
  if (abs.size() > 2 && abs.ends_with("/.")) abs.resize(abs.size() - 2);  // "MNT/" -> "MNT"
  auto table = ReadMountInfo();
  if (!table.ok()) return false;
  const MountInfo* holder = MountHolding(abs, *table);
  return holder != nullptr && holder->mount_point == abs && holder->fstype == kDtkfsFsType;
}

}  // namespace dtkfs::cli
