// Replies that hand the kernel something it must give back: an entry (a lookup reference, which
// the kernel returns with FORGET), a created or opened file (a handle, returned with RELEASE),
// a readdirplus buffer (one reference per entry). When the kernel does not take the reply
// (the request was interrupted or the connection aborted: libfuse returns an error), it will
// never give those back, so these helpers do: they drop the references and close the handles.
//
// Fault point for tests: with DTKFS_FAULT_FAIL_REPLY=N[,M] in the daemon's environment, every
// Nth such reply (M times at most) is answered with EIO instead and treated as not taken, so
// the clean-up paths run on demand (tests/e2e/hardening_test.cc). Unset, it costs one load of
// a static.
//
// Thread-safety: called from any worker thread.
#pragma once

#include <fuse_lowlevel.h>

#include <vector>

#include "fs/filesystem.h"

namespace dtkfs::fs {

// Returns true when the kernel took the reply.
bool ReplyEntry(fuse_req_t req, Filesystem& fs, const fuse_entry_param& e);
// On failure also closes close_fd (the source fd behind fi->fh).
bool ReplyCreate(fuse_req_t req, Filesystem& fs, const fuse_entry_param& e,
                 const fuse_file_info* fi, int close_fd);
// On failure runs release (closes what fi->fh holds).
template <typename Release>
bool ReplyOpen(fuse_req_t req, const fuse_file_info* fi, Release&& release);
// A readdirplus buffer holding one reference to each of entries (the ids added to it).
bool ReplyDirentsPlus(fuse_req_t req, Filesystem& fs, const char* buf, size_t size,
                      const std::vector<fuse_ino_t>& entries);

// The fault point above: true when this reply is to fail (and has been answered with EIO).
bool FailThisReply(fuse_req_t req);

template <typename Release>
bool ReplyOpen(fuse_req_t req, const fuse_file_info* fi, Release&& release) {
  if (FailThisReply(req) || fuse_reply_open(req, fi) != 0) {
    release();
    return false;
  }
  return true;
}

}  // namespace dtkfs::fs
