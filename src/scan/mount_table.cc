#include "scan/mount_table.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <cstdlib>

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "util/path.h"

namespace dtkfs {
namespace {

struct MountLine {
  uint64_t id = 0;
  std::string dev;  // "major:minor"
  std::string root;
  std::string point;
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
                                      (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<MountLine> ParseLines(std::string_view text) {
  std::vector<MountLine> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root point options [optional...] - fstype source superoptions
    std::istringstream f(line);
    MountLine m;
    std::string parent, root, point;
    if (!(f >> m.id >> parent >> m.dev >> root >> point)) continue;
    m.root = Unescape(root);
    m.point = Unescape(point);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

uint64_t MountIdOf(int fd) {
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0) return 0;
  return (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
}

NestedMounts NestedMounts::Parse(std::string_view mountinfo, const std::string& root,
                                 uint64_t root_mount_id) {
  NestedMounts out;
  const std::vector<MountLine> lines = ParseLines(mountinfo);
  std::string root_dev;
  for (const MountLine& m : lines)
    if (m.id == root_mount_id) root_dev = m.dev;
  out.known_ids_.insert(root_mount_id);
  // Later lines mount over earlier ones at the same point: the last one is what is seen.
  std::map<std::string, const MountLine*> nested;  // relative path -> mount
  const std::string prefix = root == "/" ? "/" : root + "/";
  for (const MountLine& m : lines) {
    if (m.point.size() <= prefix.size() || m.point.compare(0, prefix.size(), prefix) != 0)
      continue;
    nested[m.point.substr(prefix.size())] = &m;
  }
  std::map<std::string, int> per_device;
  for (const auto& [rel, m] : nested) per_device[m->dev]++;
  for (const auto& [rel, m] : nested) {
    out.known_ids_.insert(m->id);
    const bool alias = m->root != "/" || m->dev == root_dev || per_device[m->dev] > 1;
    if (!alias) continue;
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
  if (::realpath(root.c_str(), resolved) == nullptr) return Status::FromErrno(errno, "resolve", root);
  const std::string canonical_root = resolved;
  const int fd = ::open(canonical_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open", canonical_root);
  const uint64_t id = MountIdOf(fd);
  ::close(fd);
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::FromErrno(errno, "read", "/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), canonical_root, id);
}

MountBoundaries::MountBoundaries(std::string canonical_root, uint64_t root_mount_id)
    : root_(std::move(canonical_root)), root_mount_id_(root_mount_id) {
  if (auto m = NestedMounts::Load(root_); m.ok()) mounts_ = std::move(m).value();
}

bool MountBoundaries::IsAlias(uint64_t mount_id) {
  if (mount_id == 0 || mount_id == root_mount_id_) return false;
  std::lock_guard lock(mu_);
  if (!mounts_.Knows(mount_id)) {
    // Mounted since the last look (or a mount below an alias, which is never reached).
    if (auto m = NestedMounts::Load(root_); m.ok()) mounts_ = std::move(m).value();
  }
  return mounts_.IsAlias(mount_id);
}

}  // namespace dtkfs
