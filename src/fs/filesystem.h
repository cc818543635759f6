// Filesystem: the state behind the FUSE low-level operations (ops_*.cc).
//
// Why the low-level API: it lets every operation work on file descriptors (an O_PATH fd per
// inode, *at() syscalls, as libfuse's passthrough_hp does) instead of rebuilding and
// re-resolving path strings, runs requests on many threads without the high-level API's
// path lock, and makes getxattr one table look-up plus one store look-up. Directories have
// one parent, so a directory's path (the size store's key) follows from the inode table.
//
// Accounting (DESIGN-BRIEF section 7): every operation does the syscall on the source first
// and changes the size store only if it succeeded, before replying. For each non-directory
// inode we keep the size the store has counted (accounted_size) and the links we know of;
// after a size-changing call we fstat and apply new - accounted to the parent of every link.
//
// Hard links (the multi-link table, src/index/link_table.h): the index lists every file with
// two or more names in the tree, with those names and the size counted for each. The first
// time a lookup meets such a file, it takes all its names and that size from the table
// (checking each name still leads to the file), so a write through one name reaches every
// directory that counts it, and an unlink takes off what was counted. From then on the inode
// table is the truth for that file ("claimed"), and a file with two or more known names is
// pinned in it. Compaction writes the table of that moment: the unclaimed records of the
// index plus the pinned files (FreezeForCompaction).
//
// Locks, in order (never take an earlier one while holding a later one):
//   ns_mu_        shared_mutex. Exclusive: operations that change the namespace (create,
//                 mknod, mkdir, symlink, link, unlink, rmdir, rename), held across their
//                 syscall and store update, so the store never sees them interleaved.
//                 Shared: lookups and size accounting of open files (writes run in parallel).
//   Inode::size_mu  guards accounted_size.
//   table_mu_     guards the inode map, refs, and each inode's parent/name/links.
//   SizeStore::mu_  (inside the store) last: NoteLinksChanged is called under table_mu_.
//   suspect_ (SuspectTotals' own mutex) a leaf: nothing is taken while it is held.
// No lock is held across a reply to the kernel.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/compactor.h"
#include "store/size_store.h"
#include "store/suspect_totals.h"

namespace dtkfs::fs {

struct Inode;

// A name of a non-directory inode: (directory inode, entry name).
struct Link {
  Inode* parent;
  std::string name;
};

struct Inode {
  int fd = -1;  // O_PATH, owned
  dev_t dev = 0;
  ino_t ino = 0;
  bool is_dir = false;
  // --- guarded by Filesystem::table_mu_ ---
  uint64_t refs = 0;        // kernel lookups + pins from child dirs and links
  Inode* parent = nullptr;  // directories: the one parent (null: root or removed)
  std::string name;         // directories: name in parent
  bool removed = false;     // directories: rmdir'ed or replaced
  std::vector<Link> links;  // non-directories: the links we know of
  // --- guarded by size_mu ---
  std::mutex size_mu;
  uint64_t accounted_size = 0;  // non-directories: st_size the store counts per link
};

struct Options {
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  bool list_totals = false;  // listxattr shows user.total_* on directories
  size_t compact_threshold = 200000;  // active overlay entries that trigger a compaction
  std::string index_path;             // shown by the control channel
};

class Filesystem {
 public:
  Filesystem(int root_fd, std::string source_root, SizeStore& store, Compactor& compactor,
             Options options);
  ~Filesystem();

  static Filesystem& From(fuse_req_t req) {
    return *static_cast<Filesystem*>(fuse_req_userdata(req));
  }
  Inode& Get(fuse_ino_t ino) {
    return ino == FUSE_ROOT_ID ? *root_ : *reinterpret_cast<Inode*>(ino);
  }
  fuse_ino_t IdOf(Inode& inode) {
    return &inode == root_.get() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(&inode);
  }
  const Options& options() const { return options_; }
  SizeStore& store() { return store_; }
  Compactor& compactor() { return compactor_; }
  const std::string& source_root() const { return source_root_; }
  std::shared_mutex& ns_mu() { return ns_mu_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // Opens name in parent (O_PATH, no follow), stats it, and returns the inode with one more
  // kernel reference, recording parent/name or the link. Fills e. Returns errno or 0.
  // created (optional) tells whether the inode was new to the table with no counted size
  // known (not taken from the link table): its accounted size is its size now.
  int Lookup(Inode& parent, const char* name, fuse_entry_param* e, bool* created = nullptr);
  // Drops n kernel references.
  void Forget(Inode& inode, uint64_t n);

  // The size store key of a directory inode (nullopt if it was removed).
  std::optional<std::string> DirPath(Inode& dir);
  // The mount's compaction freeze: the store's overlays and the multi-link table of the
  // same moment (no namespace change or size accounting in between).
  Compactor::Frozen FreezeForCompaction();
  // The inode for (dev, ino) if the kernel knows it.
  Inode* Find(dev_t dev, ino_t ino);

  // After a call that may have changed a file's size: fstat (fd, or the inode's O_PATH fd
  // when fd < 0) and apply new - accounted to every known link's directory.
  // Takes ns_mu_ shared unless the caller holds it (ns_held).
  void Account(Inode& inode, int fd, bool ns_held = false);
  // After a write that ended at end_offset: accounts only if the file may have grown.
  void AccountWrite(Inode& inode, int fd, uint64_t end_offset);
  // The size the store counts for each link of a non-directory.
  uint64_t AccountedSize(Inode& inode);
  // Applies a delta to the directory inode's store entry (caller holds ns_mu_). Logs a
  // failure: the source already changed, so the reply stays a success.
  void ApplyDelta(Inode& dir, const Delta& delta);
  void ApplyDeltaAt(const std::string& dir_path, const Delta& delta);

  // Link bookkeeping (caller holds ns_mu_ exclusive).
  void AddLink(Inode& file, Inode& parent, const std::string& name);
  void RemoveLink(Inode& file, Inode& parent, const std::string& name);
  // The caller holds table_mu_ and has checked that the link is new.
  void AddLinkLocked(Inode& file, Inode& parent, const std::string& name);
  // True when the file's own name (parent, name) is among its known links.
  static bool HasLink(const Inode& file, const Inode& parent, std::string_view name);
  // Before the directory name in parent is renamed: the files below it that the link
  // table lists and the inode table has not met are taken into the inode table, so their
  // names follow the rename (the table's paths would go stale). Caller holds ns_mu_
  // exclusive. Linear in the link table's size.
  // Returns 0, or the errno of a failure to look (the rename must then fail).
  int AdoptLinksBelow(Inode& parent, const std::string& name);
  // A name of a file moves (rename): its pin and claim stay as they are.
  void MoveLink(Inode& file, Inode& from_parent, const std::string& from_name,
                Inode& to_parent, const std::string& to_name);
  void MoveDir(Inode& dir, Inode& new_parent, const std::string& new_name);
  void DetachDir(Inode& dir);

  // Logs a store failure (the source changed; the numbers may now be off) and remembers the
  // first one: the totals are then suspect until a rescan.
  void ReportStoreError(const Status& s);
  // The first store failure's message, or nullopt while every change applied.
  std::optional<std::string> SuspectReason() const { return suspect_.Reason(); }
  // Wakes the compaction thread when the overlay passes the threshold.
  void MaybeRequestCompaction();
  void SetCompactionWaker(std::function<void()> waker) { waker_ = std::move(waker); }

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.ino ^ (uint64_t(k.dev) << 40)); }
  };
  // A file's names and counted size from the index's link table, each name checked against
  // the source, its directory resolved to an inode (held: one temporary reference each).
  struct TableLinks {
    uint64_t size = 0;
    std::vector<Link> links;
    std::vector<Inode*> held;
  };

  Inode* FindOrCreateLocked(int fd, const struct stat& st, Inode& parent, const char* name,
                            bool* created);
  void UnrefLocked(Inode* inode, uint64_t n);
  std::optional<std::string> DirPathLocked(Inode& dir);
  // Link-table keys hold st_dev XOR the root's st_dev (docs/format.md).
  LinkKey TableKey(dev_t dev, ino_t ino) const;
  Key KeyOf(const LinkKey& k) const;
  // The index's link-table record of a file the inode table has not met nor claimed.
  std::optional<LinkRecord> UnclaimedRecord(dev_t dev, ino_t ino);
  // Fills found with the record's names that still lead to its file, their directories
  // resolved (held). A name that vanished (ENOENT, ENOTDIR, ELOOP, another inode) is left
  // out; any other failure is returned as an errno, and the caller releases found.
  int ResolveRecord(const LinkRecord& record, TableLinks* found);
  void ReleaseLocked(TableLinks& table);
  // FindOrCreateLocked, then, for a new inode with a table record (table non-null): claims
  // it and takes the record's names and size. Releases table's held references.
  Inode* InsertLocked(int fd, const struct stat& st, Inode& parent, const char* name,
                      TableLinks* table, bool* created);
  // Opens the directory at path (relative to the root) component by component, without
  // following symlinks; returns its inode with one temporary reference, or null and *err.
  Inode* ResolveDir(std::string_view path, int* err);
  void RemoveLinkLocked(Inode& file, Inode& parent, const std::string& name);
  void AddLinkLocked(Inode& file, Inode& parent, const std::string& name, bool note_change);

  std::unique_ptr<Inode> root_;
  const std::string source_root_;
  SizeStore& store_;
  Compactor& compactor_;
  const Options options_;
  std::function<void()> waker_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  SuspectTotals suspect_;  // the first store failure (ReportStoreError)

  std::shared_mutex ns_mu_;
  std::mutex table_mu_;  // guards inodes_, claimed_ (and the Inode fields marked above)
  std::unordered_map<Key, std::unique_ptr<Inode>, KeyHash> inodes_;
  // Files whose link-table record the inode table has taken over (see the top).
  std::unordered_set<Key, KeyHash> claimed_;
};

// The table of low-level operations (ops_table.cc).
const fuse_lowlevel_ops& Operations();

// Replies with an error; the one place an errno becomes a FUSE reply.
inline void ReplyErr(fuse_req_t req, int err) { fuse_reply_err(req, err); }

// "/proc/self/fd/N": how ops reach an inode through its O_PATH fd by name.
std::string ProcPath(int fd);

// Switches the calling thread's fsuid/fsgid to the requester's while it lives, so files are
// created with the caller's ids when the daemon runs as root (no-op otherwise).
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
