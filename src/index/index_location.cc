#include "index/index_location.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <cstdlib>

#include "dtkfs/index_format.h"
#include "index/index_files.h"
#include "scan/nested_mounts.h"
#include "util/mountinfo.h"
#include "util/path.h"

namespace fs = boost::filesystem;

namespace dtkfs {
namespace {

// FNV-1a 64: a stable name for a path (std::hash is not stable across builds).
uint64_t StableHash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string SafeName(const std::string& base) {
  std::string out;
  for (unsigned char c : base) {
    if (out.size() >= 64) break;
    out.push_back(std::isalnum(c) || c == '-' || c == '_' || c == '.' ? static_cast<char>(c) : '_');
  }
  return out.empty() ? std::string("root") : out;
}

}  // namespace

Result<std::string> CanonicalDirectory(const std::string& p) {
  boost::system::error_code ec;
  fs::path c = fs::canonical(fs::path(p), ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve", p);
  struct stat st;
  if (::stat(c.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", p);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(fmt::format("{}: not a directory", p));
  return c.string();
}

Result<std::string> StateDirectory() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x != nullptr && x[0] == '/')
    return std::string(x) + "/dtkfs";
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/')
    return Status::InvalidArgument("neither XDG_STATE_HOME nor HOME is set; pass --index PATH");
  return std::string(home) + "/.local/state/dtkfs";
}

Result<std::string> DefaultIndexPath(const std::string& canonical_source) {
  auto dir = StateDirectory();
  if (!dir.ok()) return dir.status();
  std::string base = fs::path(canonical_source).filename().string();
  if (base == "/" || base.empty()) base = "root";
  return fmt::format("{}/{}-{:016x}.dtkidx", *dir, SafeName(base), StableHash(canonical_source));
}

namespace {

// A daemon running as root must not keep its files where another user can plant a file or
// a symlink under one of their names. A sticky directory (like /tmp) is accepted: others
// cannot replace or remove this user's files there, and every file dtkfs opens is checked
// to be this user's.
Status CheckIndexDirectory(const std::string& dir) {
  // Every directory from / down to the index's: one that another user owns, or can write
  // without the sticky bit, lets that user rename it (or a parent) and put a symlink in its
  // place between our check and our next write, steering a root daemon's writes anywhere.
  // A sticky directory writable by all (like /tmp) is fine when it is root's or ours: others
  // cannot rename what is not theirs in it.
  const uid_t me = ::geteuid();
  std::string cur;
  for (const auto& part : fs::path(dir)) {
    cur = cur.empty() ? part.string() : (fs::path(cur) / part).string();
    struct stat st;
    if (::lstat(cur.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", cur);
    if (!S_ISDIR(st.st_mode))
      return Status::InvalidArgument(cur + ": not a directory (or a symbolic link)");
    const bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if ((st.st_uid != me && st.st_uid != 0) || (others_write && (st.st_mode & S_ISVTX) == 0))
      return Status::InvalidArgument(fmt::format(
          "index directory {}: {} (mode {:04o}, owner uid {}) can be changed by other users: "
          "renamed, with a link put in its place, it could steer dtkfs; put the index in a "
          "directory only you (and root) can change, all the way from /",
          dir, cur, st.st_mode & 07777, st.st_uid));
  }
  return Status::Ok();
}

// Whether a regular file of this user beside a missing index, at a side-file name, looks like
// dtkfs's own (left by an earlier daemon or scan) rather than somebody's data: dtkfs removes,
// overwrites or reads those files.
// Exact forms only: what dtkfs writes, nothing that merely starts like it.
bool LooksLikeOurSideFile(const std::string& path, std::string_view text, uint64_t size) {
  auto starts = [&](std::string_view p) { return text.substr(0, p.size()) == p; };
  auto one_line = [&] { return !text.empty() && text.find('\n') == text.size() - 1; };
  if (path.ends_with(".tmp")) return size == 0 || starts(format::kMagic);
  if (path.ends_with(".dirty")) return text == "mounted\n" || (starts("suspect: ") && one_line());
  // INDEX.last-exit: kExitStatusSize bytes, a result line first.
  return size == 4096 && (starts("running\n") || starts("ok\n") || starts("error: "));
}

// With no index yet, the names beside it must be free or hold dtkfs's leftovers: `--index
// report` must not remove report.tmp or overwrite report.last-exit that a user made.
Status CheckSideFiles(Env& env, const std::string& index) {
  for (const std::string& side :
       {IndexTempPath(index), DirtyMarkerPath(index), ExitStatusPath(index),
        DirtyMarkerPath(index) + ".tmp", ExitStatusPath(index) + ".tmp"}) {
    struct stat st;
    // Links, fifos, other users' files: never read or followed; replacing the name (not the
    // target) loses nothing.
    if (::lstat(side.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid())
      continue;
    auto text = env.ReadFileToString(side, 4096);
    if (text.ok() && LooksLikeOurSideFile(side, *text, static_cast<uint64_t>(st.st_size))) continue;
    return Status::InvalidArgument(fmt::format(
        "{}: exists beside the index path and is not dtkfs's; dtkfs would remove or overwrite "
        "it: choose another --index path",
        side));
  }
  return Status::Ok();
}

// An existing file at the index path is rebuilt only when it is recognisably a dtkfs index
// (a corrupt or truncated one may be rebuilt): anything else may be somebody's data.
Status CheckExistingIndex(Env& env, const std::string& index) {
  auto head = env.ReadFileToString(index, format::kMagic.size());
  if (head.status().code() == Status::Code::kNotFound) return CheckSideFiles(env, index);
  if (!head.ok()) return head.status();
  if (*head != format::kMagic)
    return Status::InvalidArgument(fmt::format(
        "{}: exists and is not a dtkfs index ({}); dtkfs will not overwrite it: choose another "
        "--index path",
        index, head->empty() ? "an empty file" : "it does not start with DSKTRKMM"));
  return Status::Ok();
}

// dir, or its nearest ancestor that exists (the part of an index path not yet created).
fs::path DeepestExisting(fs::path dir) {
  boost::system::error_code ec;
  while (!fs::exists(dir, ec) && dir.has_parent_path() && dir != "/") dir = dir.parent_path();
  return dir;
}

// Refuses an index whose directory is, by identity rather than by path, at or below the
// source or the mount point (a bind mount or another mount of the same filesystem reaches
// them by another path), or on a dtkfs mount (its writes would pass through a mount).
// Checked from the deepest directory that exists, before anything is created.
Status CheckIndexPlace(const fs::path& dir, const std::string& source,
                       const std::string& mountpoint) {
  struct stat src_st {
  }, mnt_st{};
  if (::stat(source.c_str(), &src_st) != 0) return Status::FromErrno(errno, "stat", source);
  const bool have_mnt = !mountpoint.empty() && ::stat(mountpoint.c_str(), &mnt_st) == 0;
  const fs::path existing = DeepestExisting(dir);
  int fd = ::open(existing.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open", existing.string());
  if (auto table = ReadMountInfo(); table.ok()) {
    const uint64_t id = MountIdOf(fd);
    for (const MountInfo& m : *table)
      if (m.id == id && m.fstype == "fuse.dtkfs") {
        ::close(fd);
        return Status::InvalidArgument(fmt::format(
            "index directory {} is on the dtkfs mount {}: the index would be written through "
            "a mount; choose a path outside it",
            dir.string(), m.mount_point));
      }
  }
  // A filesystem mounted inside the source and counted there (a tmpfs at SRC/t) may hold the
  // index under another path (the same tmpfs mounted elsewhere too): the index would count
  // itself. The source's own filesystem is the one the walk below settles.
  if (auto nested = NestedMounts::Load(source); nested.ok()) {
    struct stat here;
    if (::fstat(fd, &here) == 0 && here.st_dev != src_st.st_dev &&
        nested->counted_devices().count(
            fmt::format("{}:{}", major(here.st_dev), minor(here.st_dev))) != 0) {
      ::close(fd);
      return Status::InvalidArgument(fmt::format(
          "index directory {} is on a filesystem that is also mounted inside the source {}: "
          "the index could count itself; choose a path outside it",
          dir.string(), source));
    }
  }
  while (true) {
    struct stat st;
    if (::fstat(fd, &st) != 0) break;
    const auto same = [&](const struct stat& o) {
      return st.st_dev == o.st_dev && st.st_ino == o.st_ino;
    };
    if (same(src_st) || (have_mnt && same(mnt_st))) {
      ::close(fd);
      return Status::InvalidArgument(fmt::format(
          "index directory {} is {} by another path (a bind mount?): {}; choose a path outside "
          "it",
          dir.string(), same(src_st) ? "inside the source" : "inside the mount point",
          same(src_st) ? "it would count itself" : "the daemon would write through its mount"));
    }
    const int up = ::openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat up_st;
    const bool top = up < 0 || ::fstat(up, &up_st) != 0 ||
                     (up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino);
    ::close(fd);
    fd = up;
    if (top) break;
  }
  if (fd >= 0) ::close(fd);
  return Status::Ok();
}

}  // namespace

Result<std::string> PrepareIndexPath(Env& env, const std::string& canonical_source,
                                     const std::string& canonical_mountpoint,
                                     const std::string& index_path) {
  if (index_path.empty())
    return Status::InvalidArgument(
        "the index path is empty; leave --index out for the default location");
  const std::string name = index_path.substr(index_path.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..")
    return Status::InvalidArgument(fmt::format(
        "index {}: the last component must be a file name (not a directory, '.' or '..')",
        index_path));
  // Resolved before anything is created: the existing part canonically (symlinks included),
  // the rest (still to be created, so no links in it) lexically.
  boost::system::error_code ec;
  const fs::path parent =
      fs::weakly_canonical(fs::absolute(fs::path(index_path)).parent_path(), ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve", index_path);
  const std::string index = (parent / name).string();
  if (path::IsSameOrBelowAbsolute(index, canonical_source))
    return Status::InvalidArgument(fmt::format(
        "index {} is inside the source {}: it would count itself; choose a path outside it",
        index_path, canonical_source));
  if (!canonical_mountpoint.empty() && path::IsSameOrBelowAbsolute(index, canonical_mountpoint))
    return Status::InvalidArgument(fmt::format(
        "index {} is inside the mount point {}: the daemon would write its index through its "
        "own mount; choose a path outside it",
        index_path, canonical_mountpoint));
  DTKFS_RETURN_IF_ERROR(CheckIndexPlace(parent, canonical_source, canonical_mountpoint));
  // The part that exists is checked before anything is created in it (mkdir would follow a
  // link swapped in by whoever owns a directory on the way); what dtkfs creates is its own.
  const fs::path existing = DeepestExisting(parent);
  DTKFS_RETURN_IF_ERROR(CheckIndexDirectory(existing.string()));
  DTKFS_RETURN_IF_ERROR(env.CreateDirs(parent.string(), 0700));
  // A new directory's name is durable only once its parent is synced: without this a power
  // cut after a successful scan could lose the new index directory, index and all.
  for (fs::path d = parent; d != existing && d.has_parent_path(); d = d.parent_path())
    DTKFS_RETURN_IF_ERROR(env.SyncDir(d.parent_path().string()));
  DTKFS_RETURN_IF_ERROR(CheckIndexDirectory(parent.string()));
  DTKFS_RETURN_IF_ERROR(CheckExistingIndex(env, index));
  return index;
}

Result<std::unique_ptr<FileLock>> LockIndex(Env& env, const std::string& index_path) {
  return env.LockFile(IndexLockPath(index_path));
}

Result<std::unique_ptr<FileLock>> LockSource(Env& env, const std::string& canonical_source) {
  // The source directory itself is the lock: there is no file to create or plant, it works
  // for every user who can read the source, and it catches the same directory reached by
  // another path (a bind mount, a symlink). flock belongs to the open file description, so
  // it survives fuse_daemonize's fork like the index lock does.
  return env.LockDirectory(canonical_source);
}

std::optional<FoundIndex> FindIndexFor(Env& env, const std::string& canonical_path) {
  std::string cur = canonical_path;
  while (true) {
    auto idx = DefaultIndexPath(cur);
    if (idx.ok() && env.FileExists(*idx)) {
      FoundIndex f;
      f.source_root = cur;
      f.index_path = *idx;
      if (canonical_path.size() > cur.size())
        f.relative = canonical_path.substr(cur == "/" ? 1 : cur.size() + 1);
      return f;
    }
    if (cur == "/") return std::nullopt;
    size_t slash = cur.rfind('/');
    cur = slash == 0 ? std::string("/") : cur.substr(0, slash);
  }
}

}  // namespace dtkfs
