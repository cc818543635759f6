// Declarations of the FUSE low-level operations, one family per file (ops_*.cc), gathered
// into one table by ops_table.cc. Each runs on a libfuse worker thread, replies exactly
// once, and lets no exception escape (Safely).
#pragma once

#include <fuse_lowlevel.h>

#include <cerrno>
#include <new>

#include "fs/filesystem.h"

namespace dtkfs::fs {

// Runs body; a C++ exception (only bad_alloc can happen) becomes ENOMEM instead of
// crossing into libfuse. Bodies reply as their last step, so no double reply.
template <typename Body>
void Safely(fuse_req_t req, Body&& body) noexcept {
  try {
    body();
  } catch (...) {
    ReplyErr(req, ENOMEM);
  }
}

// An opaque alias (a nested mount dtkfs does not descend into, src/scan/nested_mounts.h) is an
// empty directory that nothing may change: creating in it, renaming into or out of it, and
// changing its attributes fail with EROFS.
inline bool RefuseOpaque(fuse_req_t req, const Inode& inode) {
  if (!inode.opaque) return false;
  ReplyErr(req, EROFS);
  return true;
}

// ops_file.cc: whether the kernel may skip FLUSH at each close of an open file of the source
// (fd, opened with flags): FOPEN_NOFLUSH.
bool FlushUseless(int fd, int flags);

// ops_dir.cc: names and directories
void OpLookup(fuse_req_t, fuse_ino_t, const char*);
void OpForget(fuse_req_t, fuse_ino_t, uint64_t);
void OpForgetMulti(fuse_req_t, size_t, fuse_forget_data*);
void OpMkdir(fuse_req_t, fuse_ino_t, const char*, mode_t);
void OpRmdir(fuse_req_t, fuse_ino_t, const char*);
void OpUnlink(fuse_req_t, fuse_ino_t, const char*);
void OpSymlink(fuse_req_t, const char*, fuse_ino_t, const char*);
void OpMknod(fuse_req_t, fuse_ino_t, const char*, mode_t, dev_t);
void OpLink(fuse_req_t, fuse_ino_t, fuse_ino_t, const char*);
void OpReadlink(fuse_req_t, fuse_ino_t);
void OpOpendir(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpReaddir(fuse_req_t, fuse_ino_t, size_t, off_t, fuse_file_info*);
void OpReaddirPlus(fuse_req_t, fuse_ino_t, size_t, off_t, fuse_file_info*);
void OpReleasedir(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpFsyncdir(fuse_req_t, fuse_ino_t, int, fuse_file_info*);
// ops_rename.cc
void OpRename(fuse_req_t, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned int);
// ops_attr.cc
void OpGetattr(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpSetattr(fuse_req_t, fuse_ino_t, struct stat*, int, fuse_file_info*);
void OpStatfs(fuse_req_t, fuse_ino_t);
void OpAccess(fuse_req_t, fuse_ino_t, int);
// ops_file.cc
// The flags a source open uses for the kernel's fi->flags (sets fi->direct_io where wanted).
int SourceFlags(fuse_file_info* fi);
void OpCreate(fuse_req_t, fuse_ino_t, const char*, mode_t, fuse_file_info*);
void OpOpen(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpReadBuf(fuse_req_t, fuse_ino_t, size_t, off_t, fuse_file_info*);
void OpWriteBuf(fuse_req_t, fuse_ino_t, fuse_bufvec*, off_t, fuse_file_info*);
void OpFlush(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpRelease(fuse_req_t, fuse_ino_t, fuse_file_info*);
void OpFsync(fuse_req_t, fuse_ino_t, int, fuse_file_info*);
void OpFallocate(fuse_req_t, fuse_ino_t, int, off_t, off_t, fuse_file_info*);
void OpCopyFileRange(fuse_req_t, fuse_ino_t, off_t, fuse_file_info*, fuse_ino_t, off_t,
                     fuse_file_info*, size_t, int);
void OpLseek(fuse_req_t, fuse_ino_t, off_t, int, fuse_file_info*);
void OpFlock(fuse_req_t, fuse_ino_t, fuse_file_info*, int);
// ops_xattr.cc
void OpGetxattr(fuse_req_t, fuse_ino_t, const char*, size_t);
void OpListxattr(fuse_req_t, fuse_ino_t, size_t);
void OpSetxattr(fuse_req_t, fuse_ino_t, const char*, const char*, size_t, int);
void OpRemovexattr(fuse_req_t, fuse_ino_t, const char*);

}  // namespace dtkfs::fs
