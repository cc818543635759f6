#include "fs/filesystem.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "fs/source_watcher.h"
#include "util/log.h"

namespace dtkfs::fs {

std::string ProcPath(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

Filesystem::Filesystem(int root_fd, std::string source_root, SizeStore& store, Compactor& compactor,
                       Options options)
    : source_root_(std::move(source_root)),
      store_(store),
      compactor_(compactor),
      options_(options),
      table_(root_fd, source_root_),
      links_(table_, store_),
      accounting_(table_, store_, ns_mu_, options_.compact_threshold, options_.track_sizes) {
  table_.SetLinkListener(&links_);
  if (options_.fd_budget != 0) table_.SetFdBudget(options_.fd_budget);
}

int Filesystem::Lookup(Inode& parent, const char* name, fuse_entry_param* e, bool* created_out) {
  std::memset(e, 0, sizeof *e);
  e->attr_timeout = options_.attr_timeout;
  e->entry_timeout = options_.entry_timeout;
  if (parent.opaque) return ENOENT;  // an alias shows nothing (src/scan/nested_mounts.h)
  // The kernel sends one name; "." and ".." only to a filesystem that exports itself over
  // NFS, which dtkfs does not ask for. Refused all the same: no lookup climbs out of SRC.
  if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0 || std::strchr(name, '/'))
    return EINVAL;
  int fd;
  {
    InodeFd dir = table_.Fd(parent);
    if (!dir) return dir.error();
    fd = table_.OpenAt(dir.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) return errno;
  uint64_t mnt_id = 0;
  if (int err = StatWithMount(fd, &e->attr, &mnt_id); err != 0) {
    ::close(fd);
    return err;
  }
  DirMount mount;
  if (S_ISDIR(e->attr.st_mode)) {
    mount = table_.MountOf(mnt_id, parent);
  } else if (table_.IsFileAlias(mnt_id, parent)) {
    ::close(fd);  // a file bind mount inside the source: hidden (src/scan/nested_mounts.h)
    return ENOENT;
  }
  // A hard-linked file the table has not met: its names and counted size from the index.
  std::optional<LinkTracker::TableLinks> recorded;
  if (!S_ISDIR(e->attr.st_mode) && e->attr.st_nlink > 1) {
    if (auto record = links_.UnclaimedRecord(e->attr.st_dev, e->attr.st_ino)) {
      recorded.emplace();
      if (int err = links_.ResolveRecord(*record, &*recorded); err != 0) {
        std::lock_guard lock(table_.mu());
        links_.ReleaseLocked(*recorded);
        ::close(fd);
        return err;
      }
    }
  }
  bool created;
  Inode* inode;
  {
    std::lock_guard lock(table_.mu());
    inode = table_.FindOrCreateLocked(fd, e->attr, mount, parent, name, &created);
    if (recorded) links_.ClaimLocked(*inode, created, *recorded);
    inode->refs++;
  }
  if (!created) ::close(fd);
  // A file the watcher saw beside the mount: the store counts what it saw, which the size
  // now may have passed (its event not applied yet); the table must count the same.
  bool counted_known = recorded.has_value();
  if (created && !recorded && !inode->is_dir)
    if (SourceWatcher* w = watcher_.load())
      if (auto dir = table_.DirPath(parent))
        if (auto counted = w->CountedFor(*dir, name, inode->dev, inode->ino)) {
          Accounting::SetCounted(*inode, *counted);
          counted_known = true;
        }
  if (created_out != nullptr) *created_out = created && !counted_known;
  Accounting::NoteKernelSize(*inode, static_cast<uint64_t>(e->attr.st_size));
  e->attr_timeout = AttrTimeout(e->attr);
  e->ino = IdOf(*inode);
  return 0;
}

std::optional<Totals> Filesystem::DirTotals(Inode& dir) {
  // A sequence lock's reader: the path and the store are each read under their own locks,
  // and the pair is kept when no namespace change was published between the two.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t before = ns_seq_.load(std::memory_order_acquire);
    if (before & 1) {
      std::this_thread::yield();
      continue;
    }
    auto path = table_.DirPath(dir);
    std::optional<Totals> totals;
    if (path) totals = store_.Lookup(*path);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (ns_seq_.load(std::memory_order_relaxed) == before) return totals;
  }
  std::shared_lock ns(ns_mu_);  // changes keep coming: wait for a quiet moment
  auto path = table_.DirPath(dir);
  if (!path) return std::nullopt;
  return store_.Lookup(*path);
}

void Filesystem::SyncWithSource() {
  if (SourceWatcher* w = watcher_.load()) w->Sync();
}

Filesystem::SizeChange::SizeChange(Filesystem& fs) : fs_(fs.journal_ ? &fs : nullptr) {
  if (fs_ == nullptr) return;
  // Read before the mark: the mark goes to this generation or a later one.
  generation_ = fs_->journal_->generation();
  std::lock_guard lock(fs_->gate_mu_);
  ++fs_->inflight_[generation_];
}

Filesystem::SizeChange::~SizeChange() {
  if (fs_ == nullptr) return;
  std::lock_guard lock(fs_->gate_mu_);
  auto it = fs_->inflight_.find(generation_);
  if (--it->second == 0) {
    fs_->inflight_.erase(it);
    fs_->gate_cv_.notify_all();
  }
}

Compactor::Frozen Filesystem::FreezeForCompaction() {
  std::unique_lock ns(ns_mu_);  // no namespace change or size accounting in flight
  Compactor::Frozen out;
  out.snap = store_.Freeze();
  if (journal_ != nullptr) {
    out.journal_generation = journal_->Advance();
    const uint64_t covered = out.snap.base ? out.snap.base->journal_generation() : 0;
    out.journal_pending = journal_->HasFilesAfter(covered);
  }
  LinkTracker::Captured links = links_.Capture(out.snap.base.get());
  ns.unlock();
  // The index is immutable: its records are decoded without holding up the mount.
  out.link_table = LinkTracker::Encode(std::move(links), out.snap.base.get());
  return out;
}

void Filesystem::SetJournal(Journal* journal) {
  journal_ = journal;
  // Whoever's request writes a batch, the journal's files are the daemon's.
  if (journal != nullptr)
    journal->SetIoWrapper([](const std::function<Status()>& f) {
      AsDaemon as_daemon;
      return f();
    });
  accounting_.SetJournal(journal);
}

void Filesystem::Published(const Compactor::Frozen& frozen) {
  if (journal_ == nullptr || !frozen.journal_generation) return;
  const uint64_t covered = *frozen.journal_generation;
  {
    // A size change that began in a covered generation may have landed after the freeze
    // (not in the new index): its mark must stay until its store update re-marked it.
    std::unique_lock gate(gate_mu_);
    gate_cv_.wait(gate, [&] { return inflight_.empty() || inflight_.begin()->first > covered; });
  }
  journal_->Retire(covered);
}

}  // namespace dtkfs::fs
