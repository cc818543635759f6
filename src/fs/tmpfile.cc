#include "fs/tmpfile.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fs/credentials.h"
#include "fs/filesystem.h"
#include "fs/ops.h"
#include "util/log.h"

namespace dtkfs::fs {
namespace {

// A reply written straight to the request's descriptor (each worker reads and answers on
// its own clone: the kernel finds the request in that clone's queue).
bool WriteReply(int fd, uint64_t unique, int error, const void* body, size_t size) {
  fuse_out_header out{};
  out.len = static_cast<uint32_t>(sizeof out + (error == 0 ? size : 0));
  out.error = -error;
  out.unique = unique;
  iovec iov[2] = {{&out, sizeof out}, {const_cast<void*>(body), size}};
  return ::writev(fd, iov, error == 0 && size > 0 ? 2 : 1) == static_cast<ssize_t>(out.len);
}

uint64_t Seconds(double t) { return t > 0 ? static_cast<uint64_t>(t) : 0; }
uint32_t Nanoseconds(double t) {
  return t > 0 ? static_cast<uint32_t>((t - static_cast<double>(Seconds(t))) * 1e9) : 0;
}

void FillAttr(const struct stat& st, fuse_attr* a) {
  a->ino = st.st_ino;
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
}

// FUSE_TMPFILE: fuse_create_in and a placeholder name in; fuse_entry_out and fuse_open_out
// out, as for FUSE_CREATE. Returns the errno to answer with, or 0 once answered.
int MakeTmpfile(Filesystem& fs, int dev_fd, const fuse_in_header& in, const fuse_create_in& arg) {
  fuse_ctx caller{};
  caller.uid = in.uid;
  caller.gid = in.gid;
  caller.pid = static_cast<pid_t>(in.pid);
  caller.umask = arg.umask;
  if (!ActAsCaller(caller)) return EPERM;
  Inode& parent = fs.Get(in.nodeid);
  if (parent.opaque) return EROFS;  // an alias is read-only (ops.h RefuseOpaque)
  InodeFd dir = fs.Fd(parent);
  if (!dir) return dir.error();
  fuse_file_info fi{};
  fi.flags = static_cast<int>(arg.flags);
  const int flags = (SourceFlags(&fi) & ~(O_CREAT | O_TRUNC)) | O_TMPFILE;
  if (!UseCallerUmask(arg.umask)) return EPERM;
  // Closed on every way out until the table and the reply own them (bad_alloc included).
  struct Owned {
    int fd = -1;
    ~Owned() {
      if (fd >= 0) ::close(fd);
    }
  } file, path;
  file.fd = ::openat(dir.get(), ".", flags, arg.mode & 07777);
  if (file.fd < 0) return errno;
  struct stat st;
  path.fd = ::openat(AT_FDCWD, ProcPath(file.fd).c_str(), O_PATH | O_CLOEXEC);
  if (path.fd < 0 || ::fstat(path.fd, &st) != 0) return errno;
  Inode* inode = fs.table().AddUnnamed(path.fd, st);
  path.fd = -1;  // the table's
  const int fd = file.fd;
  Accounting::NoteKernelSize(*inode, static_cast<uint64_t>(st.st_size));
  struct {
    fuse_entry_out entry;
    fuse_open_out open;
  } out{};
  out.entry.nodeid = fs.IdOf(*inode);
  out.entry.entry_valid = Seconds(fs.options().entry_timeout);
  out.entry.entry_valid_nsec = Nanoseconds(fs.options().entry_timeout);
  out.entry.attr_valid = Seconds(fs.options().attr_timeout);
  out.entry.attr_valid_nsec = Nanoseconds(fs.options().attr_timeout);
  FillAttr(st, &out.entry.attr);
  out.open.fh = static_cast<uint64_t>(fd);
  if (fi.direct_io) out.open.open_flags |= FOPEN_DIRECT_IO;
  if (WriteReply(dev_fd, in.unique, 0, &out, sizeof out)) {
    file.fd = -1;  // the kernel's now, given back with RELEASE
  } else {
    // Not taken (the connection was aborted): the kernel holds neither the entry nor the
    // file. (A FUSE_INTERRUPT of this request reaches libfuse, which never saw the request:
    // it answers EAGAIN to it until the kernel gives up, as for any request already done.)
    fs.table().Forget(*inode, 1);
  }
  return 0;
}

// True when buf (n bytes) was a request dtkfs answered itself.
bool AnsweredHere(Filesystem& fs, int dev_fd, const char* buf, size_t n) {
  fuse_in_header in;
  if (n < sizeof in) return false;
  std::memcpy(&in, buf, sizeof in);
  if (in.opcode != FUSE_TMPFILE) return false;
  fuse_create_in arg{};
  int err = EINVAL;
  if (n >= sizeof in + sizeof arg) {
    std::memcpy(&arg, buf + sizeof in, sizeof arg);
    try {
      err = MakeTmpfile(fs, dev_fd, in, arg);
    } catch (...) {  // only bad_alloc: never into libfuse's loop
      err = ENOMEM;
    }
  }
  if (err != 0) WriteReply(dev_fd, in.unique, err, nullptr, 0);
  return true;
}

ssize_t ReadRequest(int fd, void* buf, size_t size, void* userdata) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, size);
    if (n <= 0 || userdata == nullptr ||
        !AnsweredHere(*static_cast<Filesystem*>(userdata), fd, static_cast<const char*>(buf),
                      static_cast<size_t>(n)))
      return n;
  }
}

ssize_t WriteReplies(int fd, iovec* iov, int count, void*) { return ::writev(fd, iov, count); }

ssize_t SpliceReplies(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t len,
                      unsigned int flags, void*) {
  return ::splice(fd_in, off_in, fd_out, off_out, len, flags);
}

}  // namespace

const fuse_custom_io& RequestIo() {
  static const fuse_custom_io io = {WriteReplies, ReadRequest, nullptr, SpliceReplies};
  return io;
}

}  // namespace dtkfs::fs
