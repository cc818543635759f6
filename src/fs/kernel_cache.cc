#include "fs/kernel_cache.h"

#include <chrono>

#include "util/log.h"

namespace dtkfs::fs {

KernelCache::KernelCache(fuse_session* se) : thread_(Run, state_, se) {}

KernelCache::~KernelCache() {
  std::unique_lock lock(state_->mu);
  state_->stop = true;
  state_->cv.notify_all();
  if (state_->cv.wait_for(lock, std::chrono::seconds(1), [&] { return state_->done; })) {
    lock.unlock();
    thread_.join();
    return;
  }
  lock.unlock();
  log::Warning("a kernel cache notification is held up by the kernel; leaving it behind");
  thread_.detach();
}

void KernelCache::Post(std::vector<Invalidation> items) {
  if (items.empty()) return;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stop) return;
    for (auto& i : items) state_->queue.push_back(std::move(i));
  }
  state_->cv.notify_all();
}

void KernelCache::Run(std::shared_ptr<State> state, fuse_session* se) {
  std::unique_lock lock(state->mu);
  while (true) {
    state->cv.wait(lock, [&] { return state->stop || !state->queue.empty(); });
    if (state->stop) break;
    Invalidation i = std::move(state->queue.front());
    state->queue.pop_front();
    lock.unlock();
    // ENOENT (the kernel does not know it any more) and ENOSYS are fine: nothing to drop.
    if (i.parent != 0) fuse_lowlevel_notify_inval_entry(se, i.parent, i.name.data(), i.name.size());
    if (i.inode != 0) fuse_lowlevel_notify_inval_inode(se, i.inode, 0, 0);
    lock.lock();
  }
  state->done = true;
  state->cv.notify_all();
}

}  // namespace dtkfs::fs
