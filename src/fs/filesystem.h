// Filesystem: the state behind the FUSE low-level operations (ops_*.cc), one object per
// mount, made of one part per concern:
//   InodeTable   (inode_table.h)   the inodes the kernel knows, their fds and names
//   LinkTracker  (link_tracker.h)  hard links: the index's multi-link table, claims, pins
//   Accounting   (accounting.h)    the only code that changes the size store
//   ActAsCaller  (credentials.h)   whom a worker thread acts as on the source
// Filesystem itself maps FUSE ids to inodes, holds the namespace lock, runs a lookup (table
// and tracker together) and the compaction freeze (store and tracker at one moment).
//
// Why the low-level API: it lets every operation work on file descriptors (an O_PATH fd per
// inode, *at() syscalls, as libfuse's passthrough_hp does) instead of rebuilding and
// re-resolving path strings, runs requests on many threads without the high-level API's
// path lock, and makes getxattr one table look-up plus one store look-up. Directories have
// one parent, so a directory's path (the size store's key) follows from the inode table.
//
// Locks, in order (never take an earlier one while holding a later one):
//   gate_mu_        SizeChange's count of size changes in flight: a leaf, taken alone.
//   ns_mu_          shared_mutex. Exclusive: operations that change the namespace (create,
//                   mknod, mkdir, symlink, link, unlink, rmdir, rename) and the compaction
//                   freeze, held across their syscall and store update, so the store never
//                   sees them interleaved. Shared: lookups and size accounting of open
//                   files (writes run in parallel). Size queries (DirTotals) take it only
//                   when namespace changes keep being published under them (ns_seq_).
//   Inode::size_mu  guards accounted_size.
//   InodeTable::mu() guards the inode map, refs, each inode's names (parent, name,
//                   more_links), and the link tracker's claims.
//   SizeStore::mu_  (inside the store) last: NoteLinksChanged is called under the table's.
//   SuspectTotals   (inside the accounting) a leaf: nothing is taken while it is held.
// No lock is held across a reply to the kernel.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>

#include "fs/accounting.h"
#include "fs/credentials.h"
#include "fs/inode_table.h"
#include "fs/link_tracker.h"
#include "store/compactor.h"
#include "store/journal.h"
#include "store/size_store.h"

namespace dtkfs::fs {

struct Options {
  // How long the kernel may keep names and attributes (seconds). The mount's defaults
  // (ChooseKernelCaching, fs/mount_options.h) are long when the kernel keeps caches (below),
  // else 1.
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  // The kernel keeps file pages and directory listings across opens (keep_cache,
  // cache_readdir): by default only when every change to the source reaches dtkfs (fanotify),
  // which then invalidates what a change beside the mount made stale (KernelCache). Changes
  // through the mount the kernel sees itself.
  bool kernel_keeps = false;
  bool list_totals = false;  // listxattr shows user.total_* on directories
  // false (-o track_sizes=off): a plain passthrough that counts nothing (for measuring what
  // counting costs). The size names answer ENODATA, the store stays empty, nothing watches
  // the source, and the index is left marked dirty, so the next mount rescans.
  bool track_sizes = true;
  size_t compact_threshold = 200000;  // active overlay entries that trigger a compaction
  size_t fd_budget = 0;               // inode descriptors kept open (0: InodeTable's default)
  std::string index_path;             // shown by the control channel
};

// How long the kernel may keep st: attr_timeout, but at most 1 s for a file with setuid or
// setgid, which the source clears on another user's write (as that user) without the kernel
// seeing it (README, "Many users").
inline double AttrTimeoutFor(const Options& options, const struct stat& st) {
  const bool setid = S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != 0;
  return setid && options.attr_timeout > 1.0 ? 1.0 : options.attr_timeout;
}

class SourceWatcher;

class Filesystem final : public Compactor::Freezer {
 public:
  // Takes ownership of root_fd.
  Filesystem(int root_fd, std::string source_root, SizeStore& store, Compactor& compactor,
             Options options);

  static Filesystem& From(fuse_req_t req) {
    return *static_cast<Filesystem*>(fuse_req_userdata(req));
  }
  Inode& Get(fuse_ino_t ino) {
    return ino == FUSE_ROOT_ID ? table_.root() : *reinterpret_cast<Inode*>(ino);
  }
  fuse_ino_t IdOf(Inode& inode) {
    return &inode == &table_.root() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(&inode);
  }

  InodeTable& table() { return table_; }
  // inode's descriptor, open while the result lives (InodeTable::Fd).
  InodeFd Fd(Inode& inode) { return table_.Fd(inode); }
  LinkTracker& links() { return links_; }
  Accounting& accounting() { return accounting_; }
  const Options& options() const { return options_; }
  double AttrTimeout(const struct stat& st) const { return AttrTimeoutFor(options_, st); }
  SizeStore& store() { return store_; }
  Compactor& compactor() { return compactor_; }
  const std::string& source_root() const { return source_root_; }
  std::shared_mutex& ns_mu() { return ns_mu_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // A directory's totals (nullopt: not in the tree or the store). It does not wait for an
  // operation that holds the namespace lock across its system call (a rename on a cold
  // disk, a create): it reads the table and the store as they are, and reads again when a
  // namespace change was published meanwhile (NamespaceChange), taking the lock only if
  // that keeps happening.
  std::optional<Totals> DirTotals(Inode& dir);
  // Held by an operation, under the exclusive namespace lock, while it changes directory
  // paths in the table and the store after its system call (rename, rmdir, the watcher's
  // reconcile): DirTotals does not mix the paths before it with the store after it. It must
  // end before the lock is let go, so that one change is published at a time.
  class NamespaceChange {
   public:
    explicit NamespaceChange(Filesystem& fs) : seq_(fs.ns_seq_) {
      seq_.fetch_add(1, std::memory_order_acq_rel);  // odd: a change in progress
    }
    ~NamespaceChange() { seq_.fetch_add(1, std::memory_order_release); }
    NamespaceChange(const NamespaceChange&) = delete;
    NamespaceChange& operator=(const NamespaceChange&) = delete;

   private:
    std::atomic<uint64_t>& seq_;
  };

  // Opens name in parent (O_PATH, no follow), stats it, and returns the inode with one more
  // kernel reference, recording parent/name or the link (and, for a hard-linked file met for
  // the first time, every name the index knows). Fills e. Returns errno or 0.
  // created (optional) tells whether the inode was new to the table with no counted size
  // known (not taken from the link table or the source watcher): its accounted size is its
  // size now.
  int Lookup(Inode& parent, const char* name, fuse_entry_param* e, bool* created = nullptr);
  // The mount's compaction freeze: the store's overlays and the multi-link table of the
  // same moment (no namespace change or size accounting in between), and the end of the
  // journal's generation. It waits for no size change of an open file in flight (one may
  // be stuck in its system call for as long as the source likes: a lease, a hung NFS
  // server, dirty-page throttling); Published waits for them instead.
  Compactor::Frozen FreezeForCompaction() override;
  // Retires the journal generations the new index covers, once every size change that
  // began in them has made its store update (SizeChange): one that landed after the freeze
  // is missing from the new index, and its accounting marked it again in the new generation
  // (Accounting::AccountToLocked) before the store heard of it.
  void Published(const Compactor::Frozen& frozen) override;

  // The write-intent journal (store/journal.h); null when the mount runs without one. Set
  // before serving.
  void SetJournal(Journal* journal);
  Journal* journal() const { return journal_; }
  // What recovery did at this mount ("" when there was nothing to recover), for status.
  void SetRecoverySummary(std::string summary) { recovery_ = std::move(summary); }
  const std::string& recovery_summary() const { return recovery_; }

  // Held by an operation that changes an open file's size (write, truncate, fallocate,
  // copy_file_range, an O_TRUNC open) from before its journal mark until its store update:
  // the journal generation it began in is not retired before it ends (Published). It never
  // waits. Namespace operations need none: they hold the namespace lock, which the freeze
  // takes.
  class SizeChange {
   public:
    explicit SizeChange(Filesystem& fs);
    ~SizeChange();
    SizeChange(const SizeChange&) = delete;
    SizeChange& operator=(const SizeChange&) = delete;

   private:
    Filesystem* fs_;           // null: no journal, nothing held
    uint64_t generation_ = 0;  // the journal's when it began (its mark is in it or later)
  };
  // The watcher of changes beside the mount (null: none, or stopped).
  void SetWatcher(SourceWatcher* watcher) { watcher_.store(watcher); }
  SourceWatcher* watcher() { return watcher_.load(); }
  // Before answering a size query: every change to the source whose syscall has returned is
  // applied (SourceWatcher::Sync).
  void SyncWithSource();
  // Takes the namespace lock for an operation that changes names, after applying the
  // changes made beside the mount that already happened (the operation may build on them: a
  // directory made beside the mount, renamed through it).
  std::unique_lock<std::shared_mutex> LockNamespace() {
    SyncWithSource();
    return std::unique_lock(ns_mu_);
  }
  // The first change the store could not apply (Accounting::SuspectReason).
  std::optional<std::string> SuspectReason() const { return accounting_.SuspectReason(); }

 private:
  const std::string source_root_;
  SizeStore& store_;
  Compactor& compactor_;
  const Options options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::atomic<SourceWatcher*> watcher_{nullptr};
  Journal* journal_ = nullptr;
  std::string recovery_;
  // Size changes in flight (SizeChange), by the journal generation each began in.
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  std::map<uint64_t, uint64_t> inflight_;
  std::shared_mutex ns_mu_;
  std::atomic<uint64_t> ns_seq_{0};  // odd while a NamespaceChange is in progress
  InodeTable table_;
  LinkTracker links_;
  Accounting accounting_;
};

// The table of low-level operations (ops_table.cc).
const fuse_lowlevel_ops& Operations();

// Replies with an error; the one place an errno becomes a FUSE reply.
inline void ReplyErr(fuse_req_t req, int err) { fuse_reply_err(req, err); }
// Replies "done" to a request that returns nothing else (FUSE spells it as error 0).
inline void ReplyOk(fuse_req_t req) { fuse_reply_err(req, 0); }

// "/proc/self/fd/N": how ops reach an inode through its O_PATH fd by name.
std::string ProcPath(int fd);

}  // namespace dtkfs::fs
