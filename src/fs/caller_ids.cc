#include "fs/caller_ids.h"

#include <sys/fsuid.h>
#include <unistd.h>

namespace dtkfs::fs {

CallerIds::CallerIds(fuse_req_t req) {
  if (::geteuid() != 0) return;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx == nullptr || (ctx->uid == 0 && ctx->gid == 0)) return;
  ::setfsgid(ctx->gid);
  ::setfsuid(ctx->uid);
  switched_ = true;
}

CallerIds::~CallerIds() {
  if (!switched_) return;
  ::setfsuid(0);
  ::setfsgid(0);
}

}  // namespace dtkfs::fs
