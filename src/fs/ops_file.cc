// Open files: create, open, read, write, flush, release, fsync, fallocate,
// copy_file_range, lseek, flock. The handle (fi->fh) is the source file's fd.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

#include "fs/ops.h"
#include "fs/reply.h"

namespace dtkfs::fs {
namespace {

int FdOf(fuse_file_info* fi) { return static_cast<int>(fi->fh); }

}  // namespace

// Source open flags: never follow a symlink by surprise, never leak into children, and
// serve O_DIRECT as direct I/O on the FUSE side instead of failing on unaligned buffers.
//
// O_APPEND never reaches the source fd (but for an append-only file: OpenSource below): the kernel
// already turned each append into a write at the end it knows, and it alone knows what else the
// caller asked for (writeback of mmap'ed pages, pwritev2 with RWF_NOAPPEND, fcntl clearing
// O_APPEND). An appending source fd would put all of those at the end of the file (WriteAt below
// says how appends still reach the true end when the file grew beside the mount).
//
// Write-only opens (tar, cp, compilers, git objects) also get direct I/O on the FUSE side:
// each write(2) is then one WRITE request. Through the page cache, an unaligned write
// becomes two (the partial first page goes alone) plus a security.capability GETXATTR
// (the kernel's suid/capability check before every cached write), three round trips where
// one does. Nothing is lost: a write-only fd cannot be mmap'ed, and reads of other fds
// still use the cache (invalidated when the file's mtime changes).
int SourceFlags(fuse_file_info* fi) {
  int flags = fi->flags & ~(O_NOFOLLOW | O_DIRECT | O_APPEND);
  if ((fi->flags & O_DIRECT) || (fi->flags & O_ACCMODE) == O_WRONLY) fi->direct_io = 1;
  return flags | O_CLOEXEC;
}

// Opens name below dir with the flags SourceFlags gives. An append-only file (chattr +a) opens
// for writing only with O_APPEND (EPERM without it): when the caller asked for O_APPEND, the
// open is tried again with it. Every write to such a file lands at its end anyway, as
// natively (where fcntl cannot clear O_APPEND on it and pwrite appends).
int OpenSource(InodeTable& table, int dir, const char* name, fuse_file_info* fi, int extra = 0,
               mode_t mode = 0) {
  const int flags = SourceFlags(fi) | extra;
  int fd = table.OpenAt(dir, name, flags, mode);
  if (fd < 0 && errno == EPERM && (fi->flags & O_APPEND) && (fi->flags & O_ACCMODE) != O_RDONLY)
    fd = table.OpenAt(dir, name, flags | O_APPEND, mode);
  return fd;
}

// Whether the kernel may skip FLUSH at each close(2) of this open (FOPEN_NOFLUSH): one round
// trip less per close. OpFlush only reports write errors that a source filesystem keeps for
// close(2) (NFS, CIFS, FUSE: those with a ->flush). There are none to report for a read-only
// open, nor for a write-only one on a filesystem without ->flush (ext4, xfs, btrfs, tmpfs:
// their close(2) never fails). A read-write open keeps FLUSH on any filesystem: it may be
// mmap'ed, and the kernel writes its dirty pages back at FLUSH (the source then holds the
// data the moment close(2) returns, as natively).
bool FlushUseless(int fd, int flags) {
  if ((flags & O_ACCMODE) == O_RDONLY) return true;
  if ((flags & O_ACCMODE) != O_WRONLY) return false;
  struct statfs sfs;
  if (::fstatfs(fd, &sfs) != 0) return false;
  switch (static_cast<unsigned long>(sfs.f_type)) {
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
      return true;
    default:
      return false;
  }
}

void OpCreate(fuse_req_t req, fuse_ino_t parent_id, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    if (RefuseOpaque(req, parent)) return;
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    struct stat old;
    const bool existed = ::fstatat(dir.get(), name, &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (!UseCallerUmask(req)) return ReplyErr(req, EPERM);
    int journal_err = fs.accounting().WillChangeEntries(parent);
    // O_TRUNC of an existing file changes the size every one of its known names counts.
    if (journal_err == 0 && existed && (fi->flags & O_TRUNC))
      if (HeldInode known = fs.table().FindHeld(old.st_dev, old.st_ino))
        journal_err = fs.accounting().WillChangeSize(*known.get(), /*ns_held=*/true);
    if (journal_err != 0) return ReplyErr(req, journal_err);
    // O_NOFOLLOW: the kernel asks to create a name it thinks absent; if a symlink appeared
    // there beside the mount, following it could create a file outside the source.
    const int fd = OpenSource(fs.table(), dir.get(), name, fi, O_CREAT | O_NOFOLLOW, mode);
    if (fd < 0) return ReplyErr(req, errno);
    fuse_entry_param e;
    bool created = false;
    int err = fs.Lookup(parent, name, &e, &created);
    if (err != 0) {
      // The file exists now even though the reply fails: count a new one.
      struct stat now;
      if (!existed && ::fstat(fd, &now) == 0)
        fs.accounting().ApplyDelta(parent, Delta{static_cast<int64_t>(now.st_size), 1, 0});
      ::close(fd);
      return ReplyErr(req, err);
    }
    Inode& inode = fs.Get(e.ino);
    if (!existed) {
      fs.accounting().ApplyDelta(parent, Delta{static_cast<int64_t>(inode.CountedSize()), 1, 0});
    } else {
      if (created) {
        // New to the table: the store counts the size it had before O_TRUNC.
        Accounting::SetCounted(inode, static_cast<uint64_t>(old.st_size));
      }
      fs.accounting().Account(inode, fd, /*ns_held=*/true);
    }
    ns.unlock();
    fi->fh = static_cast<uint64_t>(fd);
    fi->noflush = FlushUseless(fd, fi->flags);
    fi->keep_cache = fs.options().kernel_keeps;
    ReplyCreate(req, fs, e, fi, fd);
  });
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    std::optional<Filesystem::SizeChange> change;
    if (fi->flags & O_TRUNC) {
      change.emplace(fs);
      if (int err = fs.accounting().WillChangeSize(inode); err != 0) return ReplyErr(req, err);
    }
    int fd;
    {
      InodeFd self = fs.Fd(inode);
      if (!self) return ReplyErr(req, self.error());
      fd = OpenSource(fs.table(), AT_FDCWD, ProcPath(self.get()).c_str(), fi);
    }
    if (fd < 0) return ReplyErr(req, errno);
    if (fi->flags & O_TRUNC) {
      fs.accounting().Account(inode, fd);
      Accounting::ResetKernelSize(inode, 0);  // atomic O_TRUNC: the kernel sets its size to 0
    }
    fi->fh = static_cast<uint64_t>(fd);
    fi->noflush = FlushUseless(fd, fi->flags);
    // Pages stay cached across opens (Options::kernel_keeps): writes through the mount update
    // or drop them in the kernel, changes beside it are dropped by KernelCache.
    fi->keep_cache = fs.options().kernel_keeps;
    ReplyOpen(req, fi, [fd] { ::close(fd); });
  });
}

void OpReadBuf(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = FdOf(fi);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

namespace {

// Writes in at off on the source fd (pwrite semantics). Returns bytes written or -errno.
ssize_t WriteAt(int fd, fuse_bufvec* in, off_t off) {
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fd;
  out.buf[0].pos = off;
  return fuse_buf_copy(&out, in, FUSE_BUF_NO_SPLICE);
}

// Appends in at the source file's true end (RWF_APPEND: atomic with other appenders).
// Returns bytes written or -errno.
ssize_t WriteAtEnd(int fd, fuse_bufvec* in) {
  std::string data(fuse_buf_size(in), '\0');
  fuse_bufvec mem = FUSE_BUFVEC_INIT(data.size());
  mem.buf[0].mem = data.data();
  const ssize_t got = fuse_buf_copy(&mem, in, FUSE_BUF_NO_SPLICE);
  if (got < 0) return got;
  size_t done = 0;
  while (done < static_cast<size_t>(got)) {
    iovec iov{data.data() + done, static_cast<size_t>(got) - done};
    const ssize_t n = ::pwritev2(fd, &iov, 1, 0, RWF_APPEND);
    if (n < 0) {
      if (errno == EINTR) continue;
      return done > 0 ? static_cast<ssize_t>(done) : -errno;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

// Where a write lands. The kernel hands us an offset; for a file in append mode (O_APPEND in
// the kernel's file flags at the time of the write, which fcntl may have changed) that offset
// is the end of the file as the kernel knows it, its cached size, which is stale when the
// file changed size beside the mount. When the offset is a size the kernel may believe
// (Inode::IsKernelEnd), the write is an append and goes to the true end. Every other write is
// positional: writeback of mmap'ed pages (fi->writepage), RWF_NOAPPEND at another offset.
// Not distinguishable (docs/design.md): an RWF_NOAPPEND write aimed at exactly the kernel's
// idea of the end (it lands at the true end), and pwritev2(RWF_APPEND) on an fd without
// O_APPEND (the kernel does not say it was an append: it lands at the kernel's idea of the
// end, which is stale only if the file changed beside the mount).
void OpWriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    const int fd = FdOf(fi);
    // An append is a write at the end the kernel believes; it goes to the true end, atomically
    // (RWF_APPEND), even when nothing seems to have changed: another writer may append beside
    // the mount between any look at the size and the write.
    const bool append = !fi->writepage && (fi->flags & O_APPEND) &&
                        inode.kernel_size.IsEnd(static_cast<uint64_t>(off));
    Filesystem::SizeChange change(fs);
    if (int err = fs.accounting().WillChangeSize(inode); err != 0) return ReplyErr(req, err);
    const ssize_t n = append ? WriteAtEnd(fd, in) : WriteAt(fd, in, off);
    // Always measured, never inferred from off + n: a write inside the counted size still
    // grows a file that shrank beside the mount; a failed write may have grown it too.
    fs.accounting().Account(inode, fd);
    if (n < 0) return ReplyErr(req, static_cast<int>(-n));
    Accounting::NoteKernelEnd(inode, static_cast<uint64_t>(off) + static_cast<uint64_t>(n));
    fuse_reply_write(req, static_cast<size_t>(n));
  });
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // Not sent for opens with noflush (FlushUseless). Closing a duplicate reports delayed write
  // errors (NFS and the like) without closing. Out of fds for the duplicate: nothing to report,
  // rather than a misleading EBADF.
  const int dup = ::dup(FdOf(fi));
  if (dup < 0) return ReplyOk(req);
  int rc = ::close(dup);
  ReplyErr(req, rc == 0 ? 0 : errno);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ::close(FdOf(fi));
  ReplyOk(req);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int rc = datasync ? ::fdatasync(FdOf(fi)) : ::fsync(FdOf(fi));
  ReplyErr(req, rc == 0 ? 0 : errno);
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                 fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    std::optional<Filesystem::SizeChange> change;
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      change.emplace(fs);
      if (int err = fs.accounting().WillChangeSize(fs.Get(ino)); err != 0)
        return ReplyErr(req, err);
    }
    const int rc = ::fallocate(FdOf(fi), mode, off, len);
    const int err = rc == 0 ? 0 : errno;
    // Also after a failure: a fallocate that runs out of space may have grown the file.
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      fs.accounting().Account(fs.Get(ino), FdOf(fi));
      if (err == 0) Accounting::NoteKernelEnd(fs.Get(ino), static_cast<uint64_t>(off + len));
    }
    ReplyErr(req, err);
  });
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                     int flags) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Filesystem::SizeChange change(fs);
    if (int err = fs.accounting().WillChangeSize(fs.Get(ino_out)); err != 0)
      return ReplyErr(req, err);
    loff_t in = off_in, out = off_out;
    ssize_t n =
        ::copy_file_range(FdOf(fi_in), &in, FdOf(fi_out), &out, len, static_cast<unsigned>(flags));
    if (n < 0) return ReplyErr(req, errno);
    fs.accounting().Account(fs.Get(ino_out), FdOf(fi_out));
    Accounting::NoteKernelEnd(fs.Get(ino_out), static_cast<uint64_t>(out));
    fuse_reply_write(req, static_cast<size_t>(n));
  });
}

void OpLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  off_t res = ::lseek(FdOf(fi), off, whence);
  if (res < 0) return ReplyErr(req, errno);
  fuse_reply_lseek(req, res);
}

void OpFlock(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, int op) {
  int rc = ::flock(FdOf(fi), op);
  ReplyErr(req, rc == 0 ? 0 : errno);
}

}  // namespace dtkfs::fs
