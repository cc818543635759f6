// The kernel's mount table as this process sees it (/proc/self/mountinfo, proc(5)), parsed once
// for everyone who asks about mounts: the scanner and the mount (bind mounts inside a source,
// src/scan/nested_mounts.h) and the CLI (is this path a dtkfs mount?).
//
// Pure parsing plus one read of /proc; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dtkfs {

struct MountInfo {
  uint64_t id = 0;            // field 1: the mount id (statx's stx_mnt_id)
  uint64_t parent_id = 0;     // field 2
  std::string device;         // field 3: "major:minor" of the filesystem
  std::string root;           // field 4: the directory of the filesystem shown here ("/": all)
  std::string mount_point;    // field 5
  std::string fstype;         // after the "-": "ext4", "fuse.dtkfs", ...
  std::string super_options;  // the last field: "rw,user_id=0,group_id=0" for FUSE
};

// A mountinfo field with its octal escapes ("\040" for a space, "\134" for a backslash)
// decoded.
std::string DecodeMountInfoField(std::string_view field);
// The entries of mountinfo text in file order (later entries on the same mount point are on
// top); malformed lines are skipped.
std::vector<MountInfo> ParseMountInfo(std::string_view text);
// Reads and parses /proc/self/mountinfo.
Result<std::vector<MountInfo>> ReadMountInfo();

}  // namespace dtkfs
