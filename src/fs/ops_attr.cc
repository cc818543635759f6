// Attributes: getattr, setattr (chmod, chown, truncate, utimens), statfs, access.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>

#include "fs/credentials.h"
#include "fs/ops.h"

namespace dtkfs::fs {
namespace {

int StatInode(Filesystem& fs, Inode& inode, fuse_file_info* fi, struct stat* st) {
  if (fi != nullptr) return ::fstat(static_cast<int>(fi->fh), st) == 0 ? 0 : errno;
  InodeFd fd = fs.Fd(inode);
  if (!fd) return fd.error();
  return ::fstatat(fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

// The kernel's own clearing of setuid and setgid after a write or truncation by a caller
// without CAP_FSETID (file_remove_privs): a mode change from a caller who does not own the
// file that only clears those bits. Any other chmod by a non-owner was refused by the
// kernel (default_permissions, which POSIX ACLs and allow_other both imply) before it
// got here; this one runs as the daemon, because the source lets only the owner chmod.
bool IsKillPrivs(fuse_req_t req, int fd, mode_t mode) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct stat st;
  if (ctx == nullptr || ::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return false;
  constexpr mode_t kPrivs = S_ISUID | S_ISGID;
  return ctx->uid != st.st_uid && (st.st_mode & kPrivs) != 0 &&
         (mode & 07777) == (st.st_mode & 07777 & ~kPrivs);
}

int Chmod(fuse_req_t req, int fd, int self, const std::string& proc, mode_t mode) {
  auto chmod = [&] { return fd >= 0 ? ::fchmod(fd, mode) : ::chmod(proc.c_str(), mode); };
  if (chmod() == 0) return 0;
  const int err = errno;
  if (err != EPERM || !IsKillPrivs(req, self, mode)) return err;
  AsDaemon as_daemon;
  return chmod() == 0 ? 0 : errno;
}

}  // namespace

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = Filesystem::From(req);
  struct stat st;
  Inode& inode = fs.Get(ino);
  int err = StatInode(fs, inode, fi, &st);
  if (err != 0) return ReplyErr(req, err);
  Accounting::NoteKernelSize(inode, static_cast<uint64_t>(st.st_size));
  fuse_reply_attr(req, &st, fs.AttrTimeout(st));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    if (RefuseOpaque(req, inode)) return;
    const int fd = fi != nullptr ? static_cast<int>(fi->fh) : -1;
    InodeFd self = fs.Fd(inode);
    if (!self) return ReplyErr(req, self.error());
    const std::string proc = ProcPath(self.get());
    if (to_set & FUSE_SET_ATTR_MODE) {
      if (int err = Chmod(req, fd, self.get(), proc, attr->st_mode); err != 0)
        return ReplyErr(req, err);
    }
    if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
      uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
      gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
      if (::fchownat(self.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        return ReplyErr(req, errno);
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
      Filesystem::SizeChange change(fs);
      if (int err = fs.accounting().WillChangeSize(inode); err != 0) return ReplyErr(req, err);
      int rc = fd >= 0 ? ::ftruncate(fd, attr->st_size) : ::truncate(proc.c_str(), attr->st_size);
      if (rc != 0) return ReplyErr(req, errno);
      fs.accounting().Account(inode, fd);
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
      struct timespec tv[2];
      tv[0].tv_nsec = UTIME_OMIT;
      tv[1].tv_nsec = UTIME_OMIT;
      if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        tv[0].tv_nsec = UTIME_NOW;
      else if (to_set & FUSE_SET_ATTR_ATIME)
        tv[0] = attr->st_atim;
      if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        tv[1].tv_nsec = UTIME_NOW;
      else if (to_set & FUSE_SET_ATTR_MTIME)
        tv[1] = attr->st_mtim;
      int rc = fd >= 0 ? ::futimens(fd, tv) : ::utimensat(AT_FDCWD, proc.c_str(), tv, 0);
      if (rc != 0) return ReplyErr(req, errno);
    }
    struct stat st;
    int err = StatInode(fs, inode, fi, &st);
    if (err != 0) return ReplyErr(req, err);
    if (to_set & FUSE_SET_ATTR_SIZE)
      Accounting::ResetKernelSize(inode, static_cast<uint64_t>(st.st_size));  // truncated
    else
      Accounting::NoteKernelSize(inode, static_cast<uint64_t>(st.st_size));
    fuse_reply_attr(req, &st, fs.AttrTimeout(st));
  });
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  Filesystem& fs = Filesystem::From(req);
  struct statvfs sv;
  InodeFd fd = fs.Fd(fs.Get(ino));
  if (!fd) return ReplyErr(req, fd.error());
  if (::fstatvfs(fd.get(), &sv) != 0) return ReplyErr(req, errno);
  fuse_reply_statfs(req, &sv);
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  Filesystem& fs = Filesystem::From(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  // As the caller (ops_table.cc): AT_EACCESS checks its fsuid, fsgid and groups, not the
  // daemon's real uid.
  InodeFd fd = fs.Fd(fs.Get(ino));
  if (!fd) return ReplyErr(req, fd.error());
  int rc = ::faccessat(AT_FDCWD, ProcPath(fd.get()).c_str(), mask,
                       ctx != nullptr && ctx->uid != 0 ? AT_EACCESS : 0);
  ReplyErr(req, rc == 0 ? 0 : errno);
}

}  // namespace dtkfs::fs
