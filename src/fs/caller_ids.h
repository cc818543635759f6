// CallerIds: the requester's identity on the calling thread while it lives, so the source
// sees the caller when the daemon runs as root (files are created with the caller's ids).
// A no-op when the daemon is not root or the caller is root.
//
// Thread-safety: per thread (setfsuid/setfsgid change only the calling thread's ids).
#pragma once

#include <fuse_lowlevel.h>

namespace dtkfs::fs {

class CallerIds {
 public:
  explicit CallerIds(fuse_req_t req);
  ~CallerIds();
  CallerIds(const CallerIds&) = delete;
  CallerIds& operator=(const CallerIds&) = delete;

 private:
  bool switched_ = false;
};

}  // namespace dtkfs::fs
