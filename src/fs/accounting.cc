#include "fs/accounting.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <mutex>
#include <vector>

#include "util/log.h"
#include "util/path.h"

namespace dtkfs::fs {

Accounting::Accounting(InodeTable& table, SizeStore& store, std::shared_mutex& ns_mu,
                       size_t compact_threshold)
    : table_(table), store_(store), ns_mu_(ns_mu), compact_threshold_(compact_threshold) {}

void Accounting::Account(Inode& inode, int fd, bool ns_held) {
  if (inode.is_dir) return;
  std::shared_lock<std::shared_mutex> ns(ns_mu_, std::defer_lock);
  if (!ns_held) ns.lock();
  std::lock_guard size_lock(inode.size_mu);
  struct stat st;
  int rc = fd >= 0 ? ::fstat(fd, &st) : ::fstatat(inode.fd, "", &st, AT_EMPTY_PATH);
  if (rc == 0) AccountSizeLocked(inode, st);
}

void Accounting::SetCounted(Inode& file, uint64_t size) {
  std::lock_guard size_lock(file.size_mu);
  file.accounted_size = size;
}

void Accounting::ResetKernelSize(Inode& inode, uint64_t size) {
  for (auto& s : inode.kernel_attr_sizes) s.store(size);
  inode.kernel_write_end.store(size);
}

void Accounting::NoteKernelEnd(Inode& inode, uint64_t end) {
  uint64_t cur = inode.kernel_write_end.load();
  while ((cur == Inode::kNoEnd || cur < end) &&
         !inode.kernel_write_end.compare_exchange_weak(cur, end)) {
  }
}

void Accounting::AccountSizeLocked(Inode& inode, const struct stat& st) {
  const int64_t delta =
      static_cast<int64_t>(st.st_size) - static_cast<int64_t>(inode.accounted_size);
  if (delta == 0) return;
  inode.accounted_size = static_cast<uint64_t>(st.st_size);
  std::vector<Inode*> parents;
  {
    std::lock_guard lock(table_.mu());
    for (const Link& l : inode.links) parents.push_back(l.parent);
  }
  for (Inode* p : parents) ApplyDelta(*p, Delta{delta, 0, 0});
}

void Accounting::ApplyDeltaAt(const std::string& dir_path, const Delta& delta) {
  if (delta.empty()) return;
  ReportStoreError(store_.AddDelta(dir_path, delta));
  MaybeRequestCompaction();
}

void Accounting::ApplyDelta(Inode& dir, const Delta& delta) {
  if (delta.empty()) return;
  auto p = table_.DirPath(dir);
  if (!p) return;  // the directory is gone; nothing below it is counted any more
  ApplyDeltaAt(*p, delta);
}

void Accounting::MakeDir(Inode& parent, const std::string& name) {
  if (auto p = table_.DirPath(parent)) ReportStoreError(store_.MakeDir(path::Join(*p, name)));
  MaybeRequestCompaction();
}

void Accounting::RemoveDir(Inode& parent, const std::string& name) {
  if (auto p = table_.DirPath(parent)) ReportStoreError(store_.RemoveDir(path::Join(*p, name)));
}

void Accounting::RenameDir(const std::string& from, const std::string& to) {
  ReportStoreError(store_.RenameDir(from, to));
}

void Accounting::ExchangeDirs(const std::string& a, const std::string& b) {
  ReportStoreError(store_.ExchangeDirs(a, b));
}

void Accounting::ReportStoreError(const Status& s) {
  if (!s.ok()) log::Error("size store: {}", s.message());
  suspect_.Record(s);
}

void Accounting::MaybeRequestCompaction() {
  CompactionWaker* waker = waker_.load();
  if (waker != nullptr && store_.active_size() > compact_threshold_) waker->Wake();
}

}  // namespace dtkfs::fs
