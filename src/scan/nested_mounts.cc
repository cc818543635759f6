#include "scan/nested_mounts.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdlib>
#include <map>
#include <vector>

#include "util/mountinfo.h"
#include "util/path.h"

namespace dtkfs {

uint64_t MountIdOf(int fd) {
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0) return 0;
  return (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
}

int StatWithMount(int fd, struct stat* st, uint64_t* mount_id) {
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID,
              &stx) != 0)
    return errno;
  *st = {};
  st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st->st_ino = stx.stx_ino;
  st->st_mode = stx.stx_mode;
  st->st_nlink = stx.stx_nlink;
  st->st_uid = stx.stx_uid;
  st->st_gid = stx.stx_gid;
  st->st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
  st->st_size = static_cast<off_t>(stx.stx_size);
  st->st_blksize = static_cast<blksize_t>(stx.stx_blksize);
  st->st_blocks = static_cast<blkcnt_t>(stx.stx_blocks);
  st->st_atim = {stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec};
  st->st_mtim = {stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec};
  st->st_ctim = {stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
  *mount_id = (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
  return 0;
}

NestedMounts NestedMounts::Parse(std::string_view mountinfo, const std::string& root,
                                 uint64_t root_mount_id) {
  return FromTable(ParseMountInfo(mountinfo), root, root_mount_id);
}

NestedMounts NestedMounts::FromTable(const std::vector<MountInfo>& lines, const std::string& root,
                                     uint64_t root_mount_id) {
  NestedMounts out;
  std::string root_dev;
  for (const MountInfo& m : lines)
    if (m.id == root_mount_id) root_dev = m.device;
  out.known_ids_.insert(root_mount_id);
  // Later lines mount over earlier ones at the same point: the last one is what is seen.
  std::map<std::string, const MountInfo*> nested;  // relative path -> mount
  for (const MountInfo& m : lines) {
    if (m.mount_point == root || !path::IsSameOrBelowAbsolute(m.mount_point, root)) continue;
    nested[m.mount_point.substr(root == "/" ? 1 : root.size() + 1)] = &m;
  }
  std::map<std::string, int> per_device;
  for (const auto& [rel, m] : nested) per_device[m->device]++;
  if (!root_dev.empty()) out.counted_devices_.insert(root_dev);
  for (const auto& [rel, m] : nested) {
    out.known_ids_.insert(m->id);
    const bool alias = m->root != "/" || m->device == root_dev || per_device[m->device] > 1;
    if (!alias) {
      bool below_alias = false;
      for (const std::string& a : out.alias_paths_)
        if (path::IsSameOrBelow(rel, a)) below_alias = true;
      if (!below_alias) out.counted_devices_.insert(m->device);
      continue;
    }
    // Mounts below an alias are never reached; only the outermost matters.
    bool below_alias = false;
    for (const std::string& a : out.alias_paths_)
      if (path::IsSameOrBelow(rel, a)) below_alias = true;
    if (below_alias) continue;
    out.alias_paths_.insert(rel);
    out.alias_ids_.insert(m->id);
  }
  return out;
}

Result<NestedMounts> NestedMounts::Load(const std::string& root) {
  char resolved[PATH_MAX];
  if (::realpath(root.c_str(), resolved) == nullptr)
    return Status::FromErrno(errno, "resolve", root);
  const std::string canonical_root = resolved;
  const int fd = ::open(canonical_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open", canonical_root);
  const uint64_t id = MountIdOf(fd);
  ::close(fd);
  auto table = ReadMountInfo();
  if (!table.ok()) return table.status();
  return FromTable(*table, canonical_root, id);
}

MountBoundaries::MountBoundaries(std::string canonical_root, uint64_t root_mount_id)
    : root_(std::move(canonical_root)), root_mount_id_(root_mount_id) {}

bool MountBoundaries::IsAlias(uint64_t mount_id) const {
  if (mount_id == 0 || mount_id == root_mount_id_) return false;
  // Read afresh at every mount point met (only lookups that cross one come here): mount ids
  // are reused, so a table kept by id would take a new bind mount for the tmpfs that had its
  // id before, or the other way round.
  auto mounts = NestedMounts::Load(root_);
  return mounts.ok() && mounts->IsAlias(mount_id);
}

}  // namespace dtkfs
