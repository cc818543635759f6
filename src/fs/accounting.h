// Accounting: the only code in the FUSE layer that changes the size store (DESIGN-BRIEF
// sections 4 and 7). Every operation does its syscall on the source first and, if it
// succeeded, tells the accounting what changed, before replying:
//   - files: for each non-directory inode the size the store counts (accounted_size); after a
//     call that may change the size, fstat and apply new - accounted to the directory of every
//     known link (Ceph's accounted_rstat idea: concurrent writers never double count);
//   - entries: a non-directory appeared in or left a directory (ApplyDelta);
//   - directories: made, removed, renamed, exchanged (whole subtrees move in the store).
// A failure of the store (a directory it does not know, a total that would go negative) is
// logged: the source already changed, so the reply stays a success.
//
// Thread-safety: safe from any worker thread. Entry and directory changes expect the
// namespace lock held exclusively by the caller; Account takes it shared unless the caller
// holds it. Lock order: namespace lock, Inode::size_mu, InodeTable::mu(), the store's lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "dtkfs/totals.h"
#include "fs/inode_table.h"
#include "scan/scanner.h"
#include "store/compaction_thread.h"
#include "store/journal.h"
#include "store/reconcile.h"
#include "store/size_store.h"
#include "store/suspect_totals.h"
#include "util/status.h"

namespace dtkfs::fs {

class Accounting {
 public:
  // Finds the names of a file the inode table does not know (made beside the mount) and
  // brings their directories up to date (the source watcher).
  // Told when the mount changed the entries of a directory (store path; "*": any), so what
  // the source watcher remembers of its names is out of date.
  class EntriesListener {
   public:
    virtual ~EntriesListener() = default;
    virtual void EntriesChanged(const std::string& dir) = 0;
    // The mount moved the directory at from to to (exchange: both ways at once).
    virtual void DirMoved(const std::string& from, const std::string& to, bool exchange) = 0;
    // The mount changed a directory the store does not know (changed beside the mount, its
    // event not applied yet): it is to be reconciled.
    virtual void Unknown(const std::string& dir) = 0;
  };
  class LinkFollower {
   public:
    virtual ~LinkFollower() = default;
    virtual void FollowLinks(dev_t dev, ino_t ino) = 0;
  };

  // tracking false (-o track_sizes=off): every change below is ignored, the store stays as
  // it is (and no fstat is made after writes).
  Accounting(InodeTable& table, SizeStore& store, std::shared_mutex& ns_mu,
             size_t compact_threshold, bool tracking = true);

  // --- the journal (store/journal.h): called before a change reaches the source ---
  // Each returns 0, or the errno to fail the operation with (the journal could neither
  // record the change nor record that it broke). With no journal they do nothing.
  // A change will reach the entries directly inside dir (caller holds the namespace lock).
  int WillChangeEntries(Inode& dir);
  // file's size will change: every known link's directory (takes the namespace lock shared
  // unless ns_held).
  int WillChangeSize(Inode& file, bool ns_held = false);
  // A directory will appear at parent/name (mkdir, rename, exchange): if the persisted state
  // may hold another directory there, recovery must scan it whole (caller holds the
  // namespace lock exclusively).
  int WillPlaceDir(Inode& parent, const std::string& name);
  // dir was just made through the mount: changes inside it need no mark of their own in
  // this generation.
  void MadeDir(const Inode& dir);
  // Before serving; journal outlives the accounting's use of it. Null: no journal.
  void SetJournal(Journal* journal) { journal_ = journal; }
  Journal* journal() const { return journal_; }

  // --- files ---
  // After a call that may have changed a file's size: fstat (fd, or the inode's O_PATH fd
  // when fd < 0) and apply new - accounted to every known link's directory.
  void Account(Inode& inode, int fd, bool ns_held = false);
  // The store counts size for each link of file (a file new to the inode table whose counted
  // size is not its size now: O_TRUNC of an existing file).
  static void SetCounted(Inode& file, uint64_t size);
  // The kernel was told the file's size (a reply carrying its attributes).
  static void NoteKernelSize(Inode& inode, uint64_t size) { inode.kernel_size.NoteReply(size); }
  // The kernel grows its size to end after a write, copy or fallocate that reached it.
  static void NoteKernelEnd(Inode& inode, uint64_t end);
  // The kernel holds exactly this size now, whatever it held before (a truncation through
  // the mount: setattr, an atomic O_TRUNC open): earlier sizes and ends are forgotten.
  static void ResetKernelSize(Inode& inode, uint64_t size);

  // --- entries and directories (caller holds the namespace lock exclusively) ---
  // A non-directory entry directly inside dir appeared, left or changed size.
  void ApplyDelta(Inode& dir, const Delta& delta);
  void MakeDir(Inode& parent, const std::string& name);
  void RemoveDir(Inode& parent, const std::string& name);
  // Paths are size-store keys of directories (InodeTable::DirPath).
  void RenameDir(const std::string& from, const std::string& to);
  void ExchangeDirs(const std::string& a, const std::string& b);

  // --- out-of-band changes (caller holds the namespace lock exclusively) ---
  // What the kernel may cache that an out-of-band change made stale: names in directories,
  // and inodes (attributes, data). Pointers are ids for the kernel, never dereferenced.
  struct KernelStale {
    std::vector<std::pair<const Inode*, std::string>> entries;
    std::vector<const Inode*> inodes;
  };
  // Makes the store and the inode table agree with listing, dir's listing on the source
  // (store/reconcile.h for the store's part): files the mount knows in dir are accounted
  // at their size now first (every directory that counts them follows), names they lost or
  // gained in dir are dropped or added, known directories found in dir take their place in
  // it. names: the names events reported (their entries and inodes are stale in the kernel);
  // rescan: directories moved to a name (store/reconcile.h).
  Result<ReconcileReport> Reconcile(const std::string& root, const std::string& dir,
                                    const Result<DirListing>& listing,
                                    const std::set<std::string>& names,
                                    const std::set<std::string>& rescan, KernelStale* stale);

  // The directories (store paths) of the names the inode table knows for (dev, ino).
  std::vector<std::string> KnownLinkDirs(dev_t dev, ino_t ino);

  // Logs a store failure (the source changed; the numbers may now be off) and remembers the
  // first one: the totals are then suspect until a rescan.
  void ReportStoreError(const Status& s);
  // The first store failure's message, or nullopt while every change applied.
  std::optional<std::string> SuspectReason() const { return suspect_.Reason(); }
  // Woken when the active overlay passes its threshold (the compaction thread); null: none.
  void SetCompactionWaker(CompactionWaker* waker) { waker_.store(waker); }
  // Told when a file whose size changed has more names than the table knows; null: none.
  void SetLinkFollower(LinkFollower* follower) { follower_.store(follower); }
  void SetEntriesListener(EntriesListener* listener) { entries_listener_.store(listener); }
  // A change beside the mount to dir's own entries, found name by name (caller holds the
  // namespace lock exclusively).
  void ApplyOutOfBand(const std::string& dir, const Delta& delta);
  // A file's size as a listing or stat of the source saw it: every known link's directory
  // counts size from now on (caller holds the namespace lock; takes size_mu).
  void AccountTo(Inode& inode, uint64_t size);

 private:
  // Account's body: caller holds the namespace lock (any mode) and inode.size_mu.
  void AccountSizeLocked(Inode& inode, const struct stat& st);
  void AccountToLocked(Inode& inode, uint64_t size);
  // After a reconcile of d scanned subtrees whole: the files the mount knows in them count
  // the scan's sizes (caller holds the namespace lock exclusively).
  void CountScanned(Inode& d, const ReconcileReport& report, KernelStale* stale);
  void ApplyDeltaAt(const std::string& dir_path, const Delta& delta);
  void MaybeRequestCompaction();
  // Marks dir (caller holds the namespace lock); the errno to fail with, or 0.
  int MarkDirty(Inode& dir);
  int MarkDirtyPath(const std::string& dir);
  // Marks every known link's directory of file (caller holds the namespace lock).
  int MarkLinksLocked(Inode& file);

  InodeTable& table_;
  SizeStore& store_;
  std::shared_mutex& ns_mu_;
  const size_t compact_threshold_;
  Journal* journal_ = nullptr;
  const bool tracking_;
  std::atomic<CompactionWaker*> waker_{nullptr};
  std::atomic<LinkFollower*> follower_{nullptr};
  std::atomic<EntriesListener*> entries_listener_{nullptr};
  void NoteEntriesChanged(const std::string& dir) {
    if (EntriesListener* l = entries_listener_.load()) l->EntriesChanged(dir);
  }
  SuspectTotals suspect_;  // the first store failure (a leaf lock inside)
};

}  // namespace dtkfs::fs
