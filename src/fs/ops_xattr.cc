// Extended attributes. The size names (user.total_bytes, user.total_files,
// user.total_dirs) are answered from the size store, read-only, and hidden from listxattr
// unless -o list_totals. The control names on the root (user.dtkfs.*) are the daemon's
// control channel (docs/control.md). Everything else passes through to the source.
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "dtkfs/xattr_names.h"
#include "fs/control.h"
#include "fs/ops.h"

namespace dtkfs::fs {
namespace {

constexpr std::string_view kTotalBytes = xattr::kTotalBytes;
constexpr std::string_view kTotalFiles = xattr::kTotalFiles;
constexpr std::string_view kTotalDirs = xattr::kTotalDirs;

bool IsSizeName(std::string_view n) {
  return n == kTotalBytes || n == kTotalFiles || n == kTotalDirs;
}

void ReplyValue(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) return void(fuse_reply_xattr(req, value.size()));
  if (size < value.size()) return ReplyErr(req, ERANGE);
  fuse_reply_buf(req, value.data(), value.size());
}

// Totals of a directory from the store; of anything else, itself.
std::optional<Totals> TotalsOf(Filesystem& fs, Inode& inode) {
  if (inode.is_dir) return fs.DirTotals(inode);
  InodeFd fd = fs.Fd(inode);
  struct stat st;
  if (!fd || ::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return std::nullopt;
  return Totals{static_cast<uint64_t>(st.st_size), 1, 0};
}

bool IsSymlink(int fd) {
  struct stat st;
  return ::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

// Where an inode's xattrs are read and written. Most inodes: their own /proc/self/fd link,
// which the *xattr calls follow to the inode. A symlink: its name in its directory, with the
// l*xattr calls (an O_PATH descriptor refuses xattr calls, and following its /proc link
// would reach the link's target); the name must still lead to this inode (ESTALE when it
// was renamed beside the mount).
struct XattrTarget {
  InodeFd fd;  // the inode's, or its directory's for a symlink
  std::string path;
  bool symlink = false;
  int error = 0;
};

XattrTarget TargetOf(Filesystem& fs, Inode& inode) {
  XattrTarget t;
  t.fd = fs.Fd(inode);
  if (!t.fd) {
    t.error = t.fd.error();
    return t;
  }
  if (!IsSymlink(t.fd.get())) {
    t.path = ProcPath(t.fd.get());
    return t;
  }
  t.symlink = true;
  // Each known name in turn, as the caller: the kernel reached the link through one the
  // caller may search, which need not be the first (a symlink with several names).
  for (size_t i = 0;; ++i) {
    std::string name;
    t.fd = fs.table().NameFd(inode, i, &name);
    if (!t.fd) {
      if (i == 0 || t.fd.error() != ENOENT) t.error = t.fd.error();
      return t;
    }
    t.path = ProcPath(t.fd.get()) + "/" + name;
    struct stat st;
    if (::lstat(t.path.c_str(), &st) != 0) {
      t.error = errno;
    } else if (st.st_dev != inode.dev || st.st_ino != inode.ino) {
      t.error = ESTALE;
    } else {
      t.error = 0;
      return t;
    }
  }
}

}  // namespace

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    std::string_view n(name);
    if (IsSizeName(n)) {
      // Nothing counted (-o track_sizes=off): no number rather than a stale one.
      if (!fs.options().track_sizes) return ReplyErr(req, ENODATA);
      fs.SyncWithSource();  // exact: changes beside the mount that already returned count
      auto t = TotalsOf(fs, inode);
      if (!t) return ReplyErr(req, ENODATA);
      uint64_t v = n == kTotalBytes ? t->bytes : n == kTotalFiles ? t->files : t->dirs;
      return ReplyValue(req, std::to_string(v), size);
    }
    if (ino == FUSE_ROOT_ID && IsControlName(n)) {
      std::string value;
      int err = ControlGet(fs, n, &value);
      if (err != 0) return ReplyErr(req, err);
      return ReplyValue(req, value, size);
    }
    XattrTarget t = TargetOf(fs, inode);
    if (t.error != 0) return ReplyErr(req, t.error);
    auto get = t.symlink ? ::lgetxattr : ::getxattr;
    if (size == 0) {
      ssize_t len = get(t.path.c_str(), name, nullptr, 0);
      if (len < 0) return ReplyErr(req, errno);
      return void(fuse_reply_xattr(req, static_cast<size_t>(len)));
    }
    std::string buf(size, '\0');
    ssize_t len = get(t.path.c_str(), name, buf.data(), size);
    if (len < 0) return ReplyErr(req, errno);
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(len));
  });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    XattrTarget t = TargetOf(fs, inode);
    if (t.error != 0) return ReplyErr(req, t.error);
    auto list = t.symlink ? ::llistxattr : ::listxattr;
    std::string names;
    ssize_t len = list(t.path.c_str(), nullptr, 0);
    if (len < 0) return ReplyErr(req, errno);
    names.resize(static_cast<size_t>(len));
    len = list(t.path.c_str(), names.data(), names.size());
    if (len < 0) return ReplyErr(req, errno);
    names.resize(static_cast<size_t>(len));
    if (fs.options().list_totals && fs.options().track_sizes && inode.is_dir) {
      for (std::string_view n : {kTotalBytes, kTotalFiles, kTotalDirs}) {
        names.append(n);
        names.push_back('\0');
      }
    }
    ReplyValue(req, names, size);
  });
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    std::string_view n(name);
    if (IsSizeName(n)) return ReplyErr(req, EPERM);
    if (ino == FUSE_ROOT_ID && IsControlName(n))
      return ReplyErr(req, ControlSet(fs, n, std::string_view(value, size)));
    Inode& inode = fs.Get(ino);
    if (RefuseOpaque(req, inode)) return;
    XattrTarget t = TargetOf(fs, inode);
    if (t.error != 0) return ReplyErr(req, t.error);
    int rc = (t.symlink ? ::lsetxattr : ::setxattr)(t.path.c_str(), name, value, size, flags);
    ReplyErr(req, rc == 0 ? 0 : errno);
  });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    std::string_view n(name);
    if (IsSizeName(n) || (ino == FUSE_ROOT_ID && IsControlName(n))) return ReplyErr(req, EPERM);
    Inode& inode = fs.Get(ino);
    if (RefuseOpaque(req, inode)) return;
    XattrTarget t = TargetOf(fs, inode);
    if (t.error != 0) return ReplyErr(req, t.error);
    int rc = (t.symlink ? ::lremovexattr : ::removexattr)(t.path.c_str(), name);
    ReplyErr(req, rc == 0 ? 0 : errno);
  });
}

}  // namespace dtkfs::fs
