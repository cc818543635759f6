#include "fs/reply.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace dtkfs::fs {
namespace {

struct FaultPlan {
  uint64_t every = 0;  // 0: off
  uint64_t limit = UINT64_MAX;
};

// DTKFS_FAULT_FAIL_REPLY=N[,M]: every Nth reply fails, M times at most.
const FaultPlan& Plan() {
  static const FaultPlan plan = [] {
    FaultPlan p;
    const char* v = std::getenv("DTKFS_FAULT_FAIL_REPLY");
    if (v == nullptr) return p;
    char* end = nullptr;
    p.every = std::strtoull(v, &end, 10);
    if (end != nullptr && *end == ',') p.limit = std::strtoull(end + 1, nullptr, 10);
    return p;
  }();
  return plan;
}

}  // namespace

bool FailThisReply(fuse_req_t req) {
  const FaultPlan& plan = Plan();
  if (plan.every == 0) return false;
  static std::atomic<uint64_t> count{0};
  const uint64_t n = count.fetch_add(1);
  if (n % plan.every != plan.every - 1 || n / plan.every >= plan.limit) return false;
  ReplyErr(req, EIO);
  return true;
}

bool ReplyEntry(fuse_req_t req, Filesystem& fs, const fuse_entry_param& e) {
  if (!FailThisReply(req) && fuse_reply_entry(req, &e) == 0) return true;
  if (e.ino != 0) fs.table().Forget(fs.Get(e.ino), 1);  // ino 0: a negative entry holds nothing
  return false;
}

bool ReplyCreate(fuse_req_t req, Filesystem& fs, const fuse_entry_param& e,
                 const fuse_file_info* fi, int close_fd) {
  if (!FailThisReply(req) && fuse_reply_create(req, &e, fi) == 0) return true;
  ::close(close_fd);
  fs.table().Forget(fs.Get(e.ino), 1);
  return false;
}

bool ReplyDirentsPlus(fuse_req_t req, Filesystem& fs, const char* buf, size_t size,
                      const std::vector<fuse_ino_t>& entries) {
  if (!FailThisReply(req) && fuse_reply_buf(req, buf, size) == 0) return true;
  for (fuse_ino_t ino : entries) fs.table().Forget(fs.Get(ino), 1);
  return false;
}

}  // namespace dtkfs::fs
