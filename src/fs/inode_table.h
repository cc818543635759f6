// InodeTable: the source inodes the kernel knows through the mount, the lookup references
// that keep each, and its place in the tree: a directory's one parent and name (its
// size-store key follows from them, DirPath), a non-directory's known links. It also pins the
// files the hard-link tracker needs kept (two or more known links).
//
// Descriptors. Every operation works relative to an inode's O_PATH descriptor (*at()
// syscalls, never rebuilt path strings), taken with Fd() for as long as the operation runs.
// The kernel keeps inodes cached as long as memory allows, so the table cannot hold a
// descriptor for each: it keeps at most a budget of them open (FdBudget), closing the least
// recently used idle ones (a clock sweep), and opens an evicted inode again on demand: by
// file handle (open_by_handle_at, when the daemon may), else by its recorded name, checking
// (dev, ino) either way. An inode no name leads to any more answers ESTALE, never EMFILE.
//
// No libfuse here (Filesystem maps FUSE ids to inodes), so tests drive it with plain fds.
//
// Thread-safety: every method locks mu() itself except the ...Locked ones, whose caller holds
// it. mu() guards the map, refs, and each inode's names (parent, name, more_links) and
// removed; the hard-link tracker's claims are guarded by it too (link_tracker.h). Lock
// order: the namespace lock (Filesystem), then Inode::size_mu, then mu(), then the
// descriptor lock (private, a leaf but for the size store's), then the size store's lock.
// Fd() takes mu() itself when it must reopen, so it is never called with mu() held.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scan/nested_mounts.h"
#include "util/flat_ptr_set.h"
#include "util/small_mutex.h"

namespace dtkfs::fs {

struct Inode;

// What the kernel may believe a file's size is (its cached i_size), which differs from the
// source's size when the file changed beside the mount: one of the last sizes we replied
// with (lookup, getattr, setattr), or the furthest end of a write, copy or fallocate it was
// told of (the kernel grows i_size to it). Which one the kernel holds depends on the order
// it took replies in (concurrent replies, attributes it drops because they raced with a
// write), so an append is a write at any of them. Hints for placing appends (ops_file.cc,
// IsEnd), hence no lock.
//
// Small while it can be (one per inode the kernel knows): a file whose replies all carried
// one size keeps that one; the ring of the last kRing replies is made at the first reply
// with another size.
class KernelSizes {
 public:
  static constexpr uint64_t kNone = UINT64_MAX;  // nothing told yet
  static constexpr size_t kRing = 16;
  KernelSizes() = default;
  KernelSizes(const KernelSizes&) = delete;
  KernelSizes& operator=(const KernelSizes&) = delete;
  ~KernelSizes() { delete ring_.load(); }

  // A reply told the kernel the file's size.
  void NoteReply(uint64_t size);
  // A write, copy or fallocate the kernel saw reached end.
  void NoteEnd(uint64_t end);
  // The kernel holds exactly size now (a truncation through the mount): the rest is
  // forgotten.
  void Reset(uint64_t size);
  // True when the kernel may believe the file ends at off.
  bool IsEnd(uint64_t off) const;

 private:
  struct Ring {
    std::atomic<uint64_t> sizes[kRing];
    std::atomic<uint32_t> next{0};
  };
  std::atomic<uint64_t> only_{kNone};  // the one size replied, while there is no ring
  std::atomic<Ring*> ring_{nullptr};
  std::atomic<uint64_t> write_end_{kNone};
};

// A file handle of a source inode (name_to_handle_at), kept to open it again once its
// descriptor was evicted: one allocation of [type: int][length: 1 byte][handle bytes].
struct SourceHandle {
  std::unique_ptr<unsigned char[]> data;
  explicit operator bool() const { return data != nullptr; }
};

// A name of an inode: (directory inode, entry name).
struct Link {
  Inode* parent;
  std::string name;
};

// One known name of an inode, seen in place (Inode::links()): valid while the table's mu()
// is held and the inode's names do not change.
struct LinkRef {
  Inode* parent;
  const std::string& name;
};

// An inode's known names in the order they became known (Inode::links()).
class LinkRange {
 public:
  class iterator {
   public:
    LinkRef operator*() const;
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const iterator&) const = default;

   private:
    friend class LinkRange;
    iterator(const Inode* inode, size_t i) : inode_(inode), i_(i) {}
    const Inode* inode_;
    size_t i_;
  };
  explicit LinkRange(const Inode& inode) : inode_(&inode) {}
  iterator begin() const { return iterator(inode_, 0); }
  iterator end() const;
  size_t size() const;
  bool empty() const { return size() == 0; }

 private:
  const Inode* inode_;
};

// One per inode the kernel knows, by the million: what it costs is the daemon's memory per
// entry (docs/benchmarks.md "Memory per entry", bench/entry_memory_bench.py: about 240 bytes
// per walked entry). 152 bytes, a 160-byte malloc chunk, whose next size is 176: fields are
// ordered so the small ones share words, and a field only some inodes need lives behind a
// pointer made when first needed (children, more_links, the file handle, the kernel sizes'
// ring). Beside it: a slot in the table's and in its directory's FlatPtrSet (8 bytes each,
// 3/8 to 3/4 full), its file handle once its descriptor was evicted (a 32-byte chunk), its
// name past 15 bytes (a heap string), and a file's second and later links (a 48-byte vector
// element each, and the vector).
struct Inode {
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t mnt_id = 0;  // directories: the source mount they are on (statx STATX_MNT_ID)
  bool is_dir = false;
  // Directories: a nested mount dtkfs does not descend into (src/scan/nested_mounts.h), shown
  // as an empty read-only directory. Its inode is its own, apart from the directory it shows.
  bool opaque = false;
  // --- guarded by InodeTable::mu() ---
  bool removed = false;  // directories: rmdir'ed or replaced
  // --- guarded by InodeTable's descriptor lock (fd_mu_) ---
  bool fd_recent = false;  // used since the clock hand last passed
  // An O_TMPFILE file (tmpfile.h): no name could open it again, so its descriptor is never
  // evicted (it stays so once linked; the kernel forgets it in time).
  bool unnamed = false;
  int fd = -1;            // O_PATH, owned; -1 while evicted (InodeTable::Fd opens it again)
  uint32_t fd_users = 0;  // InodeFds using fd: it is not closed while any is
  uint32_t fd_slot = 0;   // its place in the table's ring of open descriptors
  // --- guarded by size_mu (accounting.h) ---
  SmallMutex size_mu;
  uint64_t accounted_size = 0;  // non-directories: st_size the store counts per link
  // --- set once by the descriptor lock, before fd is first evicted; read after ---
  // Its identity, taken when fd was first evicted: the file handle (or the birth time where
  // handles do not work), so a new inode that took its number is not taken for it.
  SourceHandle handle;
  // --- guarded by InodeTable::mu() ---
  uint64_t refs = 0;  // kernel lookups + pins from child dirs and links
  // Its names (links()). The first is (parent, name): a directory's one parent and its name
  // there (null: the root, or removed), a non-directory's first known link (null: none
  // known). A non-directory's second and later links are in more_links, made at the second
  // (most files have one name: one pointer, no vector element of their own).
  Inode* parent = nullptr;
  std::string name;
  std::unique_ptr<std::vector<Link>> more_links;
  // Directories: the known inodes named inside it (a directory child once, a file once per
  // link here; their names are theirs: links()), so reconciling a directory finds them
  // without a table walk. Made at the first child (null for files and empty directories).
  using Children = FlatPtrSet<Inode>;
  std::unique_ptr<Children> children;
  // --- no lock (see KernelSizes) ---
  KernelSizes kernel_size;

  uint64_t CountedSize() {
    std::lock_guard lock(size_mu);
    return accounted_size;
  }

  // Its known names, (parent, name) pairs: a directory's one, a non-directory's links. The
  // caller holds InodeTable::mu(); InodeTable changes them (AddLink, RemoveLink, MoveLink),
  // keeping the references, the children indexes and the pins that go with them.
  LinkRange links() const { return LinkRange(*this); }
  size_t link_count() const {
    return parent == nullptr ? 0 : 1 + (more_links ? more_links->size() : 0);
  }
  bool HasLink(const Inode& dir, std::string_view entry) const;

 private:
  friend class InodeTable;
  // Storage of the names alone, for InodeTable.
  void PushLink(Inode& dir, std::string_view entry);
  // False when (dir, entry) is not one of its names.
  bool EraseLink(const Inode& dir, std::string_view entry);
  bool RenameLink(const Inode& dir, std::string_view entry, Inode& to_dir,
                  std::string_view to_entry);
};

static_assert(sizeof(Inode) <= 152,
              "a bigger Inode takes the next malloc size (176 bytes) "
              "for every inode the kernel knows: see its comment");

inline LinkRef LinkRange::iterator::operator*() const {
  if (i_ == 0) return LinkRef{inode_->parent, inode_->name};
  const Link& l = (*inode_->more_links)[i_ - 1];
  return LinkRef{l.parent, l.name};
}
inline LinkRange::iterator LinkRange::end() const { return iterator(inode_, size()); }
inline size_t LinkRange::size() const { return inode_->link_count(); }

class InodeTable;

// An inode's descriptor, held open for as long as this lives (move-only), with a reference
// on the inode (an operation may outlive the kernel's: it may reply first). Empty when the
// inode could not be opened: error() says why (ESTALE: no recorded name leads to it now).
// Ending one takes the table's locks: never let one end while holding them or an inode's
// size_mu.
class InodeFd {
 public:
  InodeFd() = default;
  InodeFd(InodeFd&& o) noexcept { *this = std::move(o); }
  InodeFd& operator=(InodeFd&& o) noexcept;
  InodeFd(const InodeFd&) = delete;
  InodeFd& operator=(const InodeFd&) = delete;
  ~InodeFd() { Reset(); }

  int get() const { return fd_; }
  int error() const { return err_; }
  explicit operator bool() const { return fd_ >= 0; }
  void Reset();

 private:
  friend class InodeTable;
  InodeTable* table_ = nullptr;  // null: nothing to give back (the root, or empty)
  Inode* inode_ = nullptr;
  int fd_ = -1;
  int err_ = 0;
};

// A table inode found by (dev, ino), with a temporary reference: a FORGET meanwhile (of it,
// or of the child whose reference kept it) cannot free it while this lives. Move-only.
// Ending it takes the table's lock: never while holding it or an inode's size_mu.
class HeldInode {
 public:
  HeldInode() = default;
  HeldInode(HeldInode&& o) noexcept { *this = std::move(o); }
  HeldInode& operator=(HeldInode&& o) noexcept;
  HeldInode(const HeldInode&) = delete;
  HeldInode& operator=(const HeldInode&) = delete;
  ~HeldInode() { Reset(); }

  Inode* get() const { return inode_; }
  explicit operator bool() const { return inode_ != nullptr; }
  void Reset();

 private:
  friend class InodeTable;
  InodeTable* table_ = nullptr;
  Inode* inode_ = nullptr;
};

// Where a directory met at lookup stands: its mount, and whether it is an opaque alias.
struct DirMount {
  uint64_t mnt_id = 0;
  bool opaque = false;
};

class InodeTable {
 public:
  // What the table tells the hard-link tracker, called with mu() held.
  class LinkListener {
   public:
    virtual ~LinkListener() = default;
    // file has just reached two known links and is pinned in the table.
    virtual void OnPinned(const Inode& file) = 0;
    // The names of a file with two or more known links changed.
    virtual void OnLinksChanged() = 0;
  };

  // Takes ownership of root_fd (an O_PATH or O_RDONLY fd of the source root).
  InodeTable(int root_fd, std::string source_root);
  ~InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  void SetLinkListener(LinkListener* listener) { listener_ = listener; }
  Inode& root() { return *root_; }
  std::mutex& mu() { return mu_; }

  // Descriptors (see the top of this file). Fd opens inode's descriptor if it was evicted;
  // the caller holds a reference on inode (a kernel lookup, Hold) and no lock of the table.
  InodeFd Fd(Inode& inode);
  // The directory holding inode's known name number i (0: the first), leased, and that
  // name: for what a descriptor of the inode itself cannot do (the xattrs of a symlink: an
  // O_PATH descriptor refuses them, and its /proc/self/fd link leads to the link, not
  // through it). Empty with ENOENT when the inode has no name number i.
  InodeFd NameFd(Inode& inode, size_t i, std::string* name);
  // A new file with no name (O_TMPFILE), from its O_PATH descriptor fd (owned from here),
  // with one kernel reference. Its size counts nowhere until a link gives it a name.
  Inode* AddUnnamed(int fd, const struct stat& st);
  // How many inode descriptors may stay open when idle (at least 4; default: half the
  // descriptor limit, at most 32768, see DefaultFdBudget).
  void SetFdBudget(size_t budget);
  size_t fd_budget() const { return fd_budget_; }
  static size_t DefaultFdBudget();
  struct FdStats {
    size_t open = 0;        // inode descriptors open now (the root's not counted)
    uint64_t evicted = 0;   // closed to stay within the budget
    uint64_t reopened = 0;  // opened again on demand
    uint64_t stale = 0;     // could not be opened again (ESTALE)
    bool handles = false;   // reopening by file handle works here
  };
  FdStats GetFdStats();
  // Reopen by recorded name only, even where file handles work (tests of that path).
  void DisableReopenByHandle() { handles_ = false; }
  // Called when an open failed with EMFILE or ENFILE: closes every idle inode descriptor.
  // True if it closed any (the caller may retry once).
  bool ShedFds();
  // openat that, out of descriptors, sheds the idle inode descriptors and tries once more.
  int OpenAt(int dir_fd, const char* name, int flags, mode_t mode = 0);

  // Where a directory on mount mnt_id, met as a child of parent, stands.
  DirMount MountOf(uint64_t mnt_id, const Inode& parent);
  // True when a non-directory on mount mnt_id, met as a child of parent, is an alias (a file
  // bind mount): it is hidden, as an alias directory's content is.
  bool IsFileAlias(uint64_t mnt_id, const Inode& parent);
  // The inode for st, found or created (taking fd; an existing one leaves fd to the caller,
  // *created false), with (parent, name) recorded as its name or one of its links. A
  // directory met under a new name (renamed beside the mount) takes it. Caller holds mu().
  Inode* FindOrCreateLocked(int fd, const struct stat& st, const DirMount& mount, Inode& parent,
                            const char* name, bool* created);
  // The inode for (dev, ino) if the table has it (opaque aliases never match).
  Inode* Find(dev_t dev, ino_t ino);
  // The same, held (HeldInode): for operations that use it after the table's lock.
  HeldInode FindHeld(dev_t dev, ino_t ino);
  // True when the table knows a non-directory (dev, ino), read under its lock.
  bool KnowsFile(dev_t dev, ino_t ino);
  Inode* FindLocked(dev_t dev, ino_t ino);
  // How many inodes the table holds (the root not counted): those the kernel knows, pinned
  // files and the directories their names keep; and how many it has freed since it was made.
  struct Census {
    size_t known = 0;
    uint64_t freed = 0;
  };
  Census GetCensus();
  // Drops n references; an inode with none left is closed and freed, and lets go of its
  // parent or link directories in turn.
  void Forget(Inode& inode, uint64_t n);
  // Before dir moves under new_parent: where the table still has new_parent below dir (the
  // two swapped beside the mount, the watcher not yet heard from), the link of dir's child
  // on that chain is dropped, so no directory's path loops (DirPath would never end); that
  // child's path is unknown until a lookup finds it again. Caller holds mu().
  void BreakCycleLocked(Inode& dir, Inode& new_parent);
  void UnrefLocked(Inode* inode, uint64_t n);
  // Opens the directory at path (relative to the root) component by component, without
  // following symlinks or entering an alias; returns its inode with one temporary reference,
  // or null and *err.
  Inode* ResolveDir(std::string_view path, int* err);

  // The size store key of a directory inode (nullopt if it was removed).
  std::optional<std::string> DirPath(Inode& dir);
  std::optional<std::string> DirPathLocked(Inode& dir);
  // A directory moved (rename) or left the tree (rmdir, replaced).
  void MoveDir(Inode& dir, Inode& new_parent, const std::string& new_name);
  void DetachDir(Inode& dir);

  // Links of non-directories. AddLink/RemoveLink/MoveLink lock mu(); the ...Locked forms
  // expect it held. notify: tell the listener when a pinned file's names changed (false
  // while the tracker itself fills in names from the index's link table).
  void AddLink(Inode& file, Inode& parent, const std::string& name);
  void AddLinkLocked(Inode& file, Inode& parent, const std::string& name, bool notify = true);
  void RemoveLink(Inode& file, Inode& parent, const std::string& name);
  void RemoveLinkLocked(Inode& file, Inode& parent, const std::string& name);
  // A name of a file moves (rename): its pin stays as it is.
  void MoveLink(Inode& file, Inode& from_parent, const std::string& from_name, Inode& to_parent,
                const std::string& to_name);
  // Non-directories with two or more known links. Caller holds mu().
  std::vector<Inode*> PinnedLocked();
  // The inodes dir knows by name (Inode::children), each with one temporary reference the
  // caller gives back with UnrefLocked/Release.
  std::vector<std::pair<std::string, Inode*>> HoldChildren(Inode& dir);
  // A temporary reference taken on inode (table lookups that must outlive mu()).
  void Hold(Inode& inode);
  void Release(Inode& inode);

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    uint64_t opaque_mnt = 0;  // an opaque mount point's mount id: apart from what it shows
    bool operator==(const Key&) const = default;
  };
  static Key KeyOf(const Inode& i) { return Key{i.dev, i.ino, i.opaque ? i.mnt_id : 0}; }
  // The table is a set of inodes found by Key (transparent look-up): no key copy per entry.
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.ino ^ (uint64_t(k.dev) << 40) ^ (k.opaque_mnt << 20));
    }
    size_t operator()(const Inode* i) const { return (*this)(KeyOf(*i)); }
  };
  struct KeyEq {
    bool operator()(const Key& k, const Inode* i) const { return k == KeyOf(*i); }
  };
  // Inode::children upkeep, with mu() held.
  static void Adopt(Inode& parent, Inode& child) {
    if (!parent.children) parent.children = std::make_unique<Inode::Children>();
    parent.children->insert(&child);
  }
  static void Disown(Inode& parent, Inode& child);
  // Descriptor cache upkeep. Install: inode's fd was just set (fd_mu_ held); Evict: closes
  // idle descriptors beyond the budget (fd_mu_ held); Drop: inode is being freed.
  void InstallFdLocked(Inode& inode);
  void EvictLocked(size_t keep);
  void CloseFdLocked(Inode& inode);
  void DropFd(Inode& inode);
  // The identity of the object at fd: its file handle, or its birth time where handles do
  // not work (empty where neither does).
  SourceHandle IdentityOf(int fd) const;
  // True when known (evicted) has the number of the object at fd but is not it: the source
  // freed known's inode and gave its number to a new one. mu() held.
  bool IsReincarnationLocked(Inode& known, int fd);
  // Takes known out of the table with its names (mu() held); the kernel may still hold it.
  void RetireLocked(Inode* known);
  // Opens inode again: by handle, else by one of its names. Returns the fd or -errno.
  int Reopen(Inode& inode);
  int ReopenByName(Inode& inode);
  int OpenByNames(Inode& inode, const std::vector<Link>& names);  // parents held
  // Drops the names of inode, whose parents' references and children indexes it held.
  void DropLinksLocked(Inode& inode);
  void ReleaseFd(Inode& inode);
  InodeFd LeaseLocked(Inode& inode);  // fd_mu_ held, inode.fd open
  friend class InodeFd;

  std::unique_ptr<Inode> root_;
  MountBoundaries mounts_;
  LinkListener* listener_ = nullptr;
  std::mutex mu_;  // guards inodes_, freed_ and the Inode fields marked above
  FlatPtrSet<Inode, KeyHash, KeyEq> inodes_;  // owned (deleted when forgotten)
  uint64_t freed_ = 0;

  std::mutex fd_mu_;  // guards ring_, hand_, the stats and each inode's fd fields; after mu_
  std::vector<Inode*> ring_;  // inodes with an open descriptor (not the root)
  size_t hand_ = 0;
  size_t fd_budget_;
  int handle_mount_fd_ = -1;  // the root, O_RDONLY: open_by_handle_at's mount argument
  bool handles_ = false;      // open_by_handle_at works (CAP_DAC_READ_SEARCH, a filesystem that
                              // exports handles)
  FdStats fd_stats_;
};

}  // namespace dtkfs::fs
