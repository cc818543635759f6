#include "fs/kernel_cache.h"

namespace dtkfs::fs {

KernelCache::KernelCache(fuse_session* se) : se_(se), thread_([this] { Run(); }) {}

KernelCache::~KernelCache() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void KernelCache::Post(std::vector<Invalidation> items) {
  if (items.empty()) return;
  {
    std::lock_guard lock(mu_);
    posted_ += items.size();
    for (auto& i : items) queue_.push_back(std::move(i));
  }
  cv_.notify_all();
}

void KernelCache::Flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = posted_;
  cv_.wait(lock, [&] { return sent_ >= target || stop_; });
}

void KernelCache::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Invalidation i = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    // ENOENT (the kernel does not know it any more) and ENOSYS are fine: nothing to drop.
    if (i.parent != 0)
      fuse_lowlevel_notify_inval_entry(se_, i.parent, i.name.data(), i.name.size());
    if (i.inode != 0) fuse_lowlevel_notify_inval_inode(se_, i.inode, 0, 0);
    lock.lock();
    ++sent_;
    cv_.notify_all();
  }
}

}  // namespace dtkfs::fs
