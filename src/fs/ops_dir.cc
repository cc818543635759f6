// Names and directories: lookup/forget, mkdir/rmdir, unlink, symlink, mknod, link,
// readlink, and directory listing.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "fs/ops.h"
#include "fs/reply.h"
#include "util/path.h"

namespace dtkfs::fs {
namespace {

// What a name in a directory is right now (before the syscall that changes it).
struct Existing {
  bool exists = false;
  struct stat st {};
};
Existing StatName(const InodeFd& parent, const char* name) {
  Existing e;
  e.exists = ::fstatat(parent.get(), name, &e.st, AT_SYMLINK_NOFOLLOW) == 0;
  return e;
}

// The kernel forgets inodes in bursts when it sheds its cache, in batches of any size, and
// malloc keeps the memory the freed inodes used. It is given back (malloc_trim, a pass over
// malloc's free chunks) each time the inodes freed since the last time reach an eighth of
// those still known, and at least kTrimEvery: a trim per many frees, and what a burst leaves
// untrimmed is small beside what the inodes still known use.
constexpr uint64_t kTrimEvery = 1024;

void GiveBackFreed(InodeTable& table) {
  static std::atomic<uint64_t> trimmed_at{0};
  const InodeTable::Census census = table.GetCensus();
  uint64_t last = trimmed_at.load();
  if (census.freed - last >= std::max<uint64_t>(kTrimEvery, census.known / 8) &&
      trimmed_at.compare_exchange_strong(last, census.freed))
    ::malloc_trim(0);
}

// Replies to a call that created name in parent: looks it up (the kernel gets a reference)
// and counts it as one new non-directory of its size.
void ReplyNewEntry(fuse_req_t req, Filesystem& fs, Inode& parent, const char* name) {
  fuse_entry_param e;
  int err = fs.Lookup(parent, name, &e);
  if (err != 0) {
    // The entry exists even though the reply fails: count it from the source.
    InodeFd dir = fs.Fd(parent);
    struct stat st;
    if (dir && ::fstatat(dir.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0)
      fs.accounting().ApplyDelta(parent, Delta{static_cast<int64_t>(st.st_size), 1, 0});
    return ReplyErr(req, err);
  }
  // A new link of a known file counts what its other links count.
  const auto size = static_cast<int64_t>(fs.Get(e.ino).CountedSize());
  fs.accounting().ApplyDelta(parent, Delta{size, 1, 0});
  ReplyEntry(req, fs, e);
}

}  // namespace

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    fuse_entry_param e;
    int err;
    {
      std::shared_lock ns(fs.ns_mu());
      err = fs.Lookup(fs.Get(parent), name, &e);
    }
    if (err == ENOENT) {
      // A negative entry the kernel may cache as long as a positive one.
      std::memset(&e, 0, sizeof e);
      e.entry_timeout = fs.options().entry_timeout;
      return void(ReplyEntry(req, fs, e));
    }
    if (err != 0) return ReplyErr(req, err);
    ReplyEntry(req, fs, e);
  });
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Filesystem& fs = Filesystem::From(req);
  fs.table().Forget(fs.Get(ino), nlookup);
  fuse_reply_none(req);
  GiveBackFreed(fs.table());
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem& fs = Filesystem::From(req);
  for (size_t i = 0; i < count; ++i) fs.table().Forget(fs.Get(forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
  GiveBackFreed(fs.table());
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent_id, const char* name, mode_t mode) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    if (RefuseOpaque(req, parent)) return;
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    if (!UseCallerUmask(req)) return ReplyErr(req, EPERM);
    int err = fs.accounting().WillChangeEntries(parent);
    if (err == 0) err = fs.accounting().WillPlaceDir(parent, name);
    if (err != 0) return ReplyErr(req, err);
    if (::mkdirat(dir.get(), name, mode) != 0) return ReplyErr(req, errno);
    fuse_entry_param e;
    err = fs.Lookup(parent, name, &e);
    if (err == 0) fs.accounting().MadeDir(fs.Get(e.ino));
    fs.accounting().MakeDir(parent, name);
    ns.unlock();
    if (err != 0) return ReplyErr(req, err);
    ReplyEntry(req, fs, e);
  });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent_id, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    Existing old = StatName(dir, name);
    if (int err = fs.accounting().WillChangeEntries(parent); err != 0) return ReplyErr(req, err);
    if (::unlinkat(dir.get(), name, AT_REMOVEDIR) != 0) return ReplyErr(req, errno);
    {
      Filesystem::NamespaceChange change(fs);
      fs.accounting().RemoveDir(parent, name);
      if (old.exists)
        if (HeldInode gone = fs.table().FindHeld(old.st.st_dev, old.st.st_ino))
          fs.table().DetachDir(*gone.get());
    }
    ns.unlock();
    ReplyOk(req);
  });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent_id, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    Existing old = StatName(dir, name);
    if (int err = fs.accounting().WillChangeEntries(parent); err != 0) return ReplyErr(req, err);
    if (::unlinkat(dir.get(), name, 0) != 0) return ReplyErr(req, errno);
    if (old.exists) {
      uint64_t size = static_cast<uint64_t>(old.st.st_size);
      if (HeldInode inode = fs.table().FindHeld(old.st.st_dev, old.st.st_ino)) {
        size = inode.get()->CountedSize();
        fs.table().RemoveLink(*inode.get(), parent, name);
      }
      fs.accounting().ApplyDelta(parent, Delta{-static_cast<int64_t>(size), -1, 0});
    }
    ns.unlock();
    ReplyOk(req);
  });
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent_id, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    if (RefuseOpaque(req, parent)) return;
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    if (int err = fs.accounting().WillChangeEntries(parent); err != 0) return ReplyErr(req, err);
    if (::symlinkat(target, dir.get(), name) != 0) return ReplyErr(req, errno);
    ReplyNewEntry(req, fs, parent, name);
  });
}

void OpMknod(fuse_req_t req, fuse_ino_t parent_id, const char* name, mode_t mode, dev_t rdev) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& parent = fs.Get(parent_id);
    if (RefuseOpaque(req, parent)) return;
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    if (!UseCallerUmask(req)) return ReplyErr(req, EPERM);
    if (int err = fs.accounting().WillChangeEntries(parent); err != 0) return ReplyErr(req, err);
    if (::mknodat(dir.get(), name, mode, rdev) != 0) return ReplyErr(req, errno);
    ReplyNewEntry(req, fs, parent, name);
  });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent_id, const char* name) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Inode& inode = fs.Get(ino);
    Inode& parent = fs.Get(parent_id);
    if (RefuseOpaque(req, parent)) return;
    InodeFd file = fs.Fd(inode);
    if (!file) return ReplyErr(req, file.error());
    InodeFd dir = fs.Fd(parent);
    if (!dir) return ReplyErr(req, dir.error());
    auto ns = fs.LockNamespace();
    if (int err = fs.accounting().WillChangeEntries(parent); err != 0) return ReplyErr(req, err);
    if (::linkat(file.get(), "", dir.get(), name, AT_EMPTY_PATH) != 0) {
      // Without CAP_DAC_READ_SEARCH, AT_EMPTY_PATH is refused: go through /proc.
      if (errno != ENOENT && errno != EPERM) return ReplyErr(req, errno);
      if (::linkat(AT_FDCWD, ProcPath(file.get()).c_str(), dir.get(), name, AT_SYMLINK_FOLLOW) != 0)
        return ReplyErr(req, errno);
    }
    ReplyNewEntry(req, fs, parent, name);
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    InodeFd fd = fs.Fd(fs.Get(ino));
    if (!fd) return ReplyErr(req, fd.error());
    char buf[PATH_MAX + 1];
    ssize_t n = ::readlinkat(fd.get(), "", buf, sizeof buf);
    if (n < 0) return ReplyErr(req, errno);
    if (static_cast<size_t>(n) >= sizeof buf) return ReplyErr(req, ENAMETOOLONG);
    buf[n] = '\0';
    fuse_reply_readlink(req, buf);
  });
}

namespace {
struct DirHandle {
  DIR* dp = nullptr;
  bool empty = false;  // an opaque alias: only "." and ".."
  off_t offset = 0;
  struct dirent* entry = nullptr;
  ~DirHandle() {
    if (dp != nullptr) ::closedir(dp);
  }
};
DirHandle* HandleOf(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }
}  // namespace

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    InodeFd self = fs.Fd(fs.Get(ino));
    if (!self) return ReplyErr(req, self.error());
    // Through /proc, not openat(self, "."): looking up "." takes search permission on the
    // directory, and open(O_RDONLY) natively takes only read permission.
    int fd = fs.table().OpenAt(AT_FDCWD, ProcPath(self.get()).c_str(),
                               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ReplyErr(req, errno);
    auto d = std::make_unique<DirHandle>();
    d->dp = ::fdopendir(fd);
    if (d->dp == nullptr) {
      int err = errno;
      ::close(fd);
      return ReplyErr(req, err);
    }
    d->empty = fs.Get(ino).opaque;
    fi->fh = reinterpret_cast<uint64_t>(d.release());
    // The kernel keeps the listing across opens (Options::kernel_keeps); a change through
    // the mount drops it (the kernel's own), one beside it too (KernelCache, on the directory).
    fi->cache_readdir = fs.options().kernel_keeps;
    fi->keep_cache = fs.options().kernel_keeps;
    ReplyOpen(req, fi, [fi] { delete HandleOf(fi); });
  });
}

static void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi,
                    bool plus) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    DirHandle* d = HandleOf(fi);
    std::unique_ptr<char[]> buf(new char[size]);
    std::vector<fuse_ino_t> held;  // entries in buf that carry a lookup reference
    char* p = buf.get();
    size_t rem = size;
    if (d->empty) {
      for (off_t i = offset; i < 2; ++i) {
        fuse_entry_param e{};
        e.attr.st_mode = S_IFDIR;
        e.attr.st_ino = fs.Get(ino).ino;  // readdir callers drop entries with inode 0
        const char* dot = i == 0 ? "." : "..";
        const size_t used = plus ? fuse_add_direntry_plus(req, p, rem, dot, &e, i + 1)
                                 : fuse_add_direntry(req, p, rem, dot, &e.attr, i + 1);
        if (used > rem) break;
        p += used;
        rem -= used;
      }
      return void(fuse_reply_buf(req, buf.get(), size - rem));
    }
    if (offset != d->offset) {
      ::seekdir(d->dp, offset);
      d->entry = nullptr;
      d->offset = offset;
    }
    int err = 0;
    while (true) {
      if (d->entry == nullptr) {
        errno = 0;
        d->entry = ::readdir(d->dp);
        if (d->entry == nullptr) {
          err = errno;
          break;
        }
      }
      const char* name = d->entry->d_name;
      const off_t next = d->entry->d_off;
      const bool dot = std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0;
      size_t used;
      if (plus && !dot) {
        fuse_entry_param e;
        int lerr;
        {
          std::shared_lock ns(fs.ns_mu());
          lerr = fs.Lookup(fs.Get(ino), name, &e);
        }
        if (lerr == ENOENT) {  // gone since readdir saw it: skip
          d->entry = nullptr;
          d->offset = next;
          continue;
        }
        if (lerr != 0) {  // e.g. out of fds: never hide the entry; fail or stop here
          err = lerr;
          break;
        }
        used = fuse_add_direntry_plus(req, p, rem, name, &e, next);
        if (used > rem) {
          fs.table().Forget(fs.Get(e.ino), 1);  // the kernel will not get this entry
          break;
        }
        held.push_back(e.ino);
      } else if (plus) {
        fuse_entry_param e{};
        e.attr.st_ino = d->entry->d_ino;
        e.attr.st_mode = static_cast<mode_t>(d->entry->d_type) << 12;
        used = fuse_add_direntry_plus(req, p, rem, name, &e, next);
        if (used > rem) break;
      } else {
        struct stat st {};
        st.st_ino = d->entry->d_ino;
        st.st_mode = static_cast<mode_t>(d->entry->d_type) << 12;
        used = fuse_add_direntry(req, p, rem, name, &st, next);
        if (used > rem) break;
      }
      p += used;
      rem -= used;
      d->entry = nullptr;
      d->offset = next;
    }
    if (err != 0 && rem == size) return ReplyErr(req, err);
    if (plus) return void(ReplyDirentsPlus(req, fs, buf.get(), size - rem, held));
    fuse_reply_buf(req, buf.get(), size - rem);
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  Readdir(req, ino, size, offset, fi, false);
}

void OpReaddirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  Readdir(req, ino, size, offset, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete HandleOf(fi);
  ReplyOk(req);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = ::dirfd(HandleOf(fi)->dp);
  int rc = datasync ? ::fdatasync(fd) : ::fsync(fd);
  ReplyErr(req, rc == 0 ? 0 : errno);
}

}  // namespace dtkfs::fs
