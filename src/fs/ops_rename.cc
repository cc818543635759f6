// rename: plain, RENAME_NOREPLACE and RENAME_EXCHANGE, of files and of whole directories.
//
// The store moves a directory's subtree as one range (SizeStore::RenameDir); a file moves
// its size and count between the two parents. What a rename replaces (a file, or an empty
// directory) leaves the store first.
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>

#include <optional>

#include "fs/ops.h"
#include "util/log.h"
#include "util/path.h"

namespace dtkfs::fs {
namespace {

struct Side {
  Inode& dir;
  const char* name;
  InodeFd dir_fd;  // dir's descriptor (Filesystem::Fd)
  bool exists = false;
  struct stat st {};
  HeldInode held;          // the inode if the table knows it, held while the rename runs
  Inode* inode = nullptr;  // held.get()
  bool is_dir() const { return exists && S_ISDIR(st.st_mode); }
};

void Probe(Filesystem& fs, Side& s) {
  s.exists = ::fstatat(s.dir_fd.get(), s.name, &s.st, AT_SYMLINK_NOFOLLOW) == 0;
  s.held = s.exists ? fs.table().FindHeld(s.st.st_dev, s.st.st_ino) : HeldInode();
  s.inode = s.held.get();
}

// The size the store counts for a non-directory at s.
int64_t CountedSize(Filesystem& fs, const Side& s) {
  return static_cast<int64_t>(s.inode != nullptr ? s.inode->CountedSize()
                                                 : static_cast<uint64_t>(s.st.st_size));
}

// The entry at `from` now lives at `to` (store and inode table).
void Moved(Filesystem& fs, const Side& from, const Side& to, const std::string& from_path,
           const std::string& to_path) {
  if (from.is_dir()) {
    fs.accounting().RenameDir(from_path, to_path);
    if (from.inode != nullptr) fs.table().MoveDir(*from.inode, to.dir, to.name);
  } else {
    const int64_t size = CountedSize(fs, from);
    fs.accounting().ApplyDelta(from.dir, Delta{-size, -1, 0});
    fs.accounting().ApplyDelta(to.dir, Delta{size, 1, 0});
    if (from.inode != nullptr)
      fs.table().MoveLink(*from.inode, from.dir, from.name, to.dir, to.name);
  }
}

// The entry at s was replaced and is gone from the tree.
void Replaced(Filesystem& fs, const Side& s, const std::string& s_path) {
  if (s.is_dir()) {
    fs.accounting().RemoveDir(s.dir, s.name);
    if (s.inode != nullptr) fs.table().DetachDir(*s.inode);
  } else {
    fs.accounting().ApplyDelta(s.dir, Delta{-CountedSize(fs, s), -1, 0});
    if (s.inode != nullptr) fs.table().RemoveLink(*s.inode, s.dir, s.name);
  }
}

}  // namespace

void OpRename(fuse_req_t req, fuse_ino_t parent_id, const char* name, fuse_ino_t newparent_id,
              const char* newname, unsigned int flags) {
  Safely(req, [&] {
    Filesystem& fs = Filesystem::From(req);
    Side from{fs.Get(parent_id), name, {}};
    Side to{fs.Get(newparent_id), newname, {}};
    if (RefuseOpaque(req, from.dir) || RefuseOpaque(req, to.dir)) return;
    for (Side* s : {&from, &to}) {
      s->dir_fd = fs.Fd(s->dir);
      if (!s->dir_fd) return ReplyErr(req, s->dir_fd.error());
    }
    auto ns = fs.LockNamespace();
    Probe(fs, from);
    Probe(fs, to);
    // RENAME_WHITEOUT (overlayfs on top of dtkfs) would leave a device node the sizes do
    // not count; refuse it, as filesystems without whiteout support do.
    if (flags & RENAME_WHITEOUT) return ReplyErr(req, EINVAL);
    // Hard-linked files below a moving directory must be known by inode, not by the path
    // the link table has for them. Adopting may bring the directories into the inode
    // table, so probe again.
    if (from.is_dir() || to.is_dir()) {
      for (const Side* s : {&from, &to})
        if (s->is_dir())
          if (int err = fs.links().AdoptLinksBelow(s->dir, s->name); err != 0)
            return ReplyErr(req, err);
      Probe(fs, from);
      Probe(fs, to);
    }
    // Before the rename: both directories' entries change, and a directory arriving where
    // the persisted state may hold another is to be scanned whole after a crash.
    int journal_err = fs.accounting().WillChangeEntries(from.dir);
    if (journal_err == 0) journal_err = fs.accounting().WillChangeEntries(to.dir);
    if (journal_err == 0 && from.is_dir())
      journal_err = fs.accounting().WillPlaceDir(to.dir, newname);
    if (journal_err == 0 && (flags & RENAME_EXCHANGE) && to.is_dir())
      journal_err = fs.accounting().WillPlaceDir(from.dir, name);
    if (journal_err != 0) return ReplyErr(req, journal_err);
    if (::renameat2(from.dir_fd.get(), name, to.dir_fd.get(), newname, flags) != 0)
      return ReplyErr(req, errno);
    // Ends before the namespace lock does: one change published at a time.
    std::optional<Filesystem::NamespaceChange> change(std::in_place, fs);
    // Renaming one link of a file onto another link of it changes nothing.
    const bool same_inode = from.exists && to.exists && from.st.st_dev == to.st.st_dev &&
                            from.st.st_ino == to.st.st_ino;
    if (from.exists && !same_inode) {
      auto from_dir = fs.table().DirPath(from.dir);
      auto to_dir = fs.table().DirPath(to.dir);
      if (from_dir && to_dir) {
        const std::string from_path = path::Join(*from_dir, name);
        const std::string to_path = path::Join(*to_dir, newname);
        if (flags & RENAME_EXCHANGE) {
          if (from.is_dir() && to.is_dir()) {
            fs.accounting().ExchangeDirs(from_path, to_path);
            if (from.inode) fs.table().MoveDir(*from.inode, to.dir, newname);
            if (to.inode) fs.table().MoveDir(*to.inode, from.dir, name);
          } else {
            // Files leave first so a directory can move onto a name the store does not hold.
            const Side* file_first[2] = {from.is_dir() ? &to : &from, from.is_dir() ? &from : &to};
            for (const Side* s : file_first) {
              const Side& other = s == &from ? to : from;
              const std::string& sp = s == &from ? from_path : to_path;
              const std::string& op = s == &from ? to_path : from_path;
              Moved(fs, *s, other, sp, op);
            }
          }
        } else {
          if (to.exists) Replaced(fs, to, to_path);
          Moved(fs, from, to, from_path, to_path);
        }
      } else {
        log::Warning("rename {} to {}: a parent directory is no longer in the tree", name, newname);
      }
    }
    change.reset();
    ns.unlock();
    ReplyOk(req);
  });
}

}  // namespace dtkfs::fs
