// The low-level operations table: one place that lists what dtkfs implements, and that
// every request reaches the source as its caller (fs/credentials.h); FORGET has no caller,
// and RELEASE only closes.
#include "fs/credentials.h"
#include "fs/ops.h"

namespace dtkfs::fs {
namespace {

void OpInit(void* userdata, fuse_conn_info* conn) {
  // Writeback caching stays off: every write must reach dtkfs before it returns, so the
  // sizes are exact the moment the syscall returns.
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
  // Requests are read with read(2) by dtkfs's hooks (fs/tmpfile.h), which have no splice
  // receive; libfuse 3.14 asks for splice reads by default, and they would bring a pipe and
  // 4 KiB copies per write back if the hooks went (docs/design.md, "Round trips").
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_SPLICE_READ);
  // The kernel checks modes and POSIX ACLs (read through getxattr, cached) with the caller's
  // own credentials, groups included, and leaves the umask to dtkfs (UseCallerUmask), so
  // default ACLs apply to new files as natively. The source checks again: every request
  // reaches it as its caller.
  if (conn->capable & FUSE_CAP_POSIX_ACL) conn->want |= FUSE_CAP_POSIX_ACL;
  if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
  // The source clears setuid and setgid itself on a write, truncation or chown by a caller
  // without CAP_FSETID, since requests reach it as their callers. Without this, the kernel
  // would instead send a chmod as the writer, which a non-owner may not do.
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV) conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
  conn->max_write = 1024 * 1024;
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = AsCaller<OpLookup>::Run;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = AsCaller<OpGetattr>::Run;
  ops.setattr = AsCaller<OpSetattr>::Run;
  ops.readlink = AsCaller<OpReadlink>::Run;
  ops.mknod = AsCaller<OpMknod>::Run;
  ops.mkdir = AsCaller<OpMkdir>::Run;
  ops.unlink = AsCaller<OpUnlink>::Run;
  ops.rmdir = AsCaller<OpRmdir>::Run;
  ops.symlink = AsCaller<OpSymlink>::Run;
  ops.rename = AsCaller<OpRename>::Run;
  ops.link = AsCaller<OpLink>::Run;
  ops.open = AsCaller<OpOpen>::Run;
  ops.read = AsCaller<OpReadBuf>::Run;
  ops.write_buf = AsCaller<OpWriteBuf>::Run;
  ops.flush = AsCaller<OpFlush>::Run;
  ops.release = OpRelease;  // a close: never refused, whoever closes
  ops.fsync = AsCaller<OpFsync>::Run;
  ops.opendir = AsCaller<OpOpendir>::Run;
  ops.readdir = AsCaller<OpReaddir>::Run;
  ops.readdirplus = AsCaller<OpReaddirPlus>::Run;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = AsCaller<OpFsyncdir>::Run;
  ops.statfs = AsCaller<OpStatfs>::Run;
  ops.setxattr = AsCaller<OpSetxattr>::Run;
  ops.getxattr = AsCaller<OpGetxattr>::Run;
  ops.listxattr = AsCaller<OpListxattr>::Run;
  ops.removexattr = AsCaller<OpRemovexattr>::Run;
  ops.access = AsCaller<OpAccess>::Run;
  ops.create = AsCaller<OpCreate>::Run;
  ops.fallocate = AsCaller<OpFallocate>::Run;
  ops.copy_file_range = AsCaller<OpCopyFileRange>::Run;
  ops.lseek = AsCaller<OpLseek>::Run;
  ops.flock = AsCaller<OpFlock>::Run;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& Operations() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace dtkfs::fs
