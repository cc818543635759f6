// Is this path a dtkfs mount point? Answered from the kernel's mount table
// (/proc/self/mountinfo), never from what the path itself says: any directory can carry a
// user.dtkfs.status xattr, and `dtkfs umount` must not act on a forged one.
//
// Pure parsing plus one read of /proc; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dtkfs::cli {

inline constexpr std::string_view kDtkfsFsType = "fuse.dtkfs";

struct MountEntry {
  std::string mount_point;  // decoded
  std::string fstype;       // "fuse.dtkfs", "ext4", ...
};

// A mountinfo field with its octal escapes ("\040" for a space, "\134" for a backslash)
// decoded.
std::string DecodeMountInfoField(std::string_view field);
// The entries of mountinfo text (proc(5)), in file order; malformed lines are skipped.
std::vector<MountEntry> ParseMountInfo(std::string_view text);

// canonical_path against a parsed table: Ok when the mount that holds the path is a dtkfs
// mount whose mount point is exactly that path; otherwise InvalidArgument saying it is not a
// dtkfs mount, or that it is inside one (naming the mount point to use instead).
Status CheckDtkfsMountPoint(const std::string& canonical_path,
                            const std::vector<MountEntry>& table);

// Resolves path canonically and checks it against /proc/self/mountinfo; returns the
// canonical mount point.
Result<std::string> ResolveDtkfsMountPoint(const std::string& path);

}  // namespace dtkfs::cli
