// KernelCache: tells the kernel that what it caches of the mount (a name's dentry, an inode's
// attributes and pages) no longer matches the source, after a change made beside the mount
// (DESIGN-BRIEF section 9). Then `stat`, `ls` and `cat` through the mount see the source at
// once, whatever the entry and attribute timeouts.
//
// The notifications go out from a thread of their own: libfuse's notify calls may wait for
// the kernel, which may wait for a request a worker holds (fuse_lowlevel.h warns they deadlock
// inside a handler), so callers only queue them (Post), never holding a lock.
//
// Thread-safety: Post is safe from any thread. The destructor stops the thread before the
// session is unmounted: it waits a moment for a notification in flight, and leaves one the
// kernel holds up (a request no worker will answer any more) to end on its own; no new one
// starts after it.
#pragma once

#include <fuse_lowlevel.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dtkfs::fs {

struct Invalidation {
  fuse_ino_t parent = 0;  // with name: the entry (parent, name); 0: none
  std::string name;
  fuse_ino_t inode = 0;  // its attributes and cached pages; 0: none
};

class KernelCache {
 public:
  explicit KernelCache(fuse_session* se);
  ~KernelCache();
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;

  void Post(std::vector<Invalidation> items);

 private:
  // Shared with the thread, which may outlive the object (see above).
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Invalidation> queue;
    bool stop = false;
    bool done = false;
  };
  static void Run(std::shared_ptr<State> state, fuse_session* se);

  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::thread thread_;
};

}  // namespace dtkfs::fs
