// Is this path a dtkfs mount point? Answered from the kernel's mount table
// (/proc/self/mountinfo, parsed by util/mountinfo.h), never from what the path itself says:
// any directory can carry a user.dtkfs.status xattr, and `dtkfs umount` must not act on a
// forged one.
//
// Pure functions plus one read of /proc; thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/mountinfo.h"
#include "util/status.h"

namespace dtkfs::cli {

inline constexpr std::string_view kDtkfsFsType = "fuse.dtkfs";

// canonical_path against a parsed table: Ok when the mount that holds the path is a dtkfs
// mount whose mount point is exactly that path; otherwise InvalidArgument saying it is not a
// dtkfs mount, or that it is inside one (naming the mount point to use instead).
Status CheckDtkfsMountPoint(const std::string& canonical_path, const std::vector<MountInfo>& table);

// Resolves path canonically and checks it against /proc/self/mountinfo; returns the
// canonical mount point.
Result<std::string> ResolveDtkfsMountPoint(const std::string& path);

// Whether the mount table has a dtkfs mount at exactly path (made absolute, not resolved:
// resolving fails on a dead mount, whose daemon is gone).
bool IsDtkfsMountPointAt(const std::string& path);

// The uid a dtkfs mount point belongs to (FUSE's user_id= in the mount table), if known.
std::optional<uid_t> DtkfsMountOwner(const std::string& canonical_mount_point);

// The mount point of the dtkfs mount that holds canonical_path (the path itself or a path
// inside it), from the mount table; nullopt when the path is on another filesystem.
std::optional<std::string> DtkfsMountHolding(const std::string& canonical_path);

}  // namespace dtkfs::cli
