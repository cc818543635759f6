// NestedMounts: the mounts inside a source tree, and which of them dtkfs does not descend
// into (docs/design.md, "Mounts inside the source").
//
// Directories have one path everywhere in dtkfs (the size store is keyed by path, the inode
// table gives each directory one parent). Only a mount can show one directory at a second
// path: a bind mount of a directory of the tree (`mount --bind S/a S/b`), of the tree itself
// (`mount --bind S S/c`), or a second mount of a filesystem already in the tree. Counting both
// paths would make a change through one of them wrong at the other. So a nested mount is an
// *alias* and is not descended into, by the scanner or the mount, when
//   - it shows a subdirectory of its filesystem (a bind mount: mountinfo's root is not "/"), or
//   - its filesystem is the one the source is on, or
//   - its filesystem is mounted at another place inside the tree too.
// An alias counts as one empty directory; through the mount it is an empty, read-only
// directory. Every other nested mount (a separate filesystem mounted once) is descended into
// and counted like any directory.
//
// Thread-safety: NestedMounts is immutable after Load. MountBoundaries is safe from any thread.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/mountinfo.h"
#include "util/status.h"

namespace dtkfs {

class NestedMounts {
 public:
  // Reads /proc/self/mountinfo for the tree at root (resolved to its canonical path).
  static Result<NestedMounts> Load(const std::string& root);
  // Parses mountinfo text for a root on mount root_mount_id (tests feed their own).
  static NestedMounts Parse(std::string_view mountinfo, const std::string& canonical_root,
                            uint64_t root_mount_id);
  static NestedMounts FromTable(const std::vector<MountInfo>& table,
                                const std::string& canonical_root, uint64_t root_mount_id);

  // Paths relative to the root of the aliases (not descended into), and their mount ids.
  const std::set<std::string>& alias_paths() const { return alias_paths_; }
  bool IsAlias(uint64_t mount_id) const { return alias_ids_.count(mount_id) != 0; }
  // Every mount id at or below the root that Load saw (aliases included).
  bool Knows(uint64_t mount_id) const { return known_ids_.count(mount_id) != 0; }
  // The devices ("major:minor") of the filesystems counted inside the tree: the root's and
  // every nested mount that is not an alias. A file on one of them may be inside the tree.
  const std::set<std::string>& counted_devices() const { return counted_devices_; }

 private:
  std::set<std::string> alias_paths_;
  std::set<uint64_t> alias_ids_;
  std::set<uint64_t> known_ids_;
  std::set<std::string> counted_devices_;
};

// The mount id of the directory or file open as fd (statx STATX_MNT_ID), or 0 if unknown.
uint64_t MountIdOf(int fd);
// lstat of the file open as fd (an O_PATH fd works) and its mount id, in one statx call.
// Returns 0 or an errno.
int StatWithMount(int fd, struct stat* st, uint64_t* mount_id);

// For the FUSE layer: is the mount id of an entry met at lookup (a mount point: its mount
// differs from its parent's) an alias? Reads the mount table afresh each time: mount ids are
// reused, and mounts come and go beside the daemon.
class MountBoundaries {
 public:
  explicit MountBoundaries(std::string canonical_root, uint64_t root_mount_id);
  bool IsAlias(uint64_t mount_id) const;

 private:
  const std::string root_;
  const uint64_t root_mount_id_;
};

}  // namespace dtkfs
