#include "fs/filesystem.h"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "util/log.h"
#include "util/path.h"

namespace dtkfs::fs {

std::string ProcPath(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

CallerIds::CallerIds(fuse_req_t req) {
  if (::geteuid() != 0) return;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx == nullptr || (ctx->uid == 0 && ctx->gid == 0)) return;
  ::setfsgid(ctx->gid);
  ::setfsuid(ctx->uid);
  switched_ = true;
}

CallerIds::~CallerIds() {
  if (!switched_) return;
  ::setfsuid(0);
  ::setfsgid(0);
}

Filesystem::Filesystem(int root_fd, std::string source_root, SizeStore& store,
                       Compactor& compactor, Options options)
    : root_(std::make_unique<Inode>()),
      source_root_(std::move(source_root)),
      store_(store),
      compactor_(compactor),
      options_(options) {
  struct stat st;
  ::fstat(root_fd, &st);
  root_->fd = root_fd;
  root_->dev = st.st_dev;
  root_->ino = st.st_ino;
  root_->is_dir = true;
  root_->refs = 1;
}

Filesystem::~Filesystem() {
  for (auto& [k, inode] : inodes_) ::close(inode->fd);
  ::close(root_->fd);
}

Inode* Filesystem::Find(dev_t dev, ino_t ino) {
  std::lock_guard lock(table_mu_);
  if (dev == root_->dev && ino == root_->ino) return root_.get();
  auto it = inodes_.find(Key{dev, ino});
  return it == inodes_.end() ? nullptr : it->second.get();
}

Inode* Filesystem::FindOrCreateLocked(int fd, const struct stat& st, Inode& parent,
                                      const char* name, bool* created) {
  *created = false;
  if (st.st_dev == root_->dev && st.st_ino == root_->ino) return root_.get();
  auto [it, inserted] = inodes_.try_emplace(Key{st.st_dev, st.st_ino});
  if (inserted) {
    auto inode = std::make_unique<Inode>();
    inode->fd = fd;
    inode->dev = st.st_dev;
    inode->ino = st.st_ino;
    inode->is_dir = S_ISDIR(st.st_mode);
    inode->accounted_size = inode->is_dir ? 0 : static_cast<uint64_t>(st.st_size);
    it->second = std::move(inode);
    *created = true;
  }
  Inode* inode = it->second.get();
  if (inode->is_dir) {
    if (inode->parent != &parent || inode->name != name || inode->removed) {
      // New, or renamed beside the mount: the kernel's view is the truth for its path.
      if (inode->parent != nullptr) UnrefLocked(inode->parent, 1);
      inode->parent = &parent;
      inode->name = name;
      inode->removed = false;
      parent.refs++;
    }
  } else if (!HasLink(*inode, parent, name)) {
    AddLinkLocked(*inode, parent, name);
  }
  return inode;
}

bool Filesystem::HasLink(const Inode& file, const Inode& parent, std::string_view name) {
  return std::any_of(file.links.begin(), file.links.end(),
                     [&](const Link& l) { return l.parent == &parent && l.name == name; });
}

namespace {
// Errors that mean a name from the link table no longer leads where it did (changed beside
// the mount), as opposed to failures to look (EMFILE, EACCES, ENOMEM, ...), which must not be
// mistaken for a vanished name.
bool Vanished(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }
}  // namespace

LinkKey Filesystem::TableKey(dev_t dev, ino_t ino) const {
  return LinkKey{static_cast<uint64_t>(dev) ^ static_cast<uint64_t>(root_->dev),
                 static_cast<uint64_t>(ino)};
}

Filesystem::Key Filesystem::KeyOf(const LinkKey& k) const {
  return Key{static_cast<dev_t>(k.dev ^ static_cast<uint64_t>(root_->dev)),
             static_cast<ino_t>(k.ino)};
}

Inode* Filesystem::ResolveDir(std::string_view dir_path, int* err) {
  Inode* cur = root_.get();  // the root is never freed: it needs no reference
  for (size_t pos = 0; pos < dir_path.size();) {
    size_t slash = dir_path.find('/', pos);
    if (slash == std::string_view::npos) slash = dir_path.size();
    const std::string name(dir_path.substr(pos, slash - pos));
    pos = slash + 1;
    int fd = ::openat(cur->fd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && ::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      fd = -1;
      errno = e;
    }
    const int open_err = errno;
    std::lock_guard lock(table_mu_);
    if (fd < 0) {
      *err = open_err;
      UnrefLocked(cur, 1);
      return nullptr;
    }
    bool created;
    Inode* child = FindOrCreateLocked(fd, st, *cur, name.c_str(), &created);
    if (!created) ::close(fd);
    child->refs++;
    UnrefLocked(cur, 1);  // the child's parent reference keeps cur
    cur = child;
  }
  return cur;
}

std::optional<LinkRecord> Filesystem::UnclaimedRecord(dev_t dev, ino_t ino) {
  {
    std::lock_guard lock(table_mu_);
    const Key key{dev, ino};
    if (inodes_.count(key) != 0 || claimed_.count(key) != 0) return std::nullopt;
  }
  auto base = store_.base();
  if (!base) return std::nullopt;
  return base->links().Find(TableKey(dev, ino));
}

int Filesystem::ResolveRecord(const LinkRecord& record, TableLinks* found) {
  found->size = record.size;
  const Key key = KeyOf(record.key);
  for (const std::string& p : record.paths) {
    int err = 0;
    Inode* dir = ResolveDir(path::Parent(p), &err);
    if (dir == nullptr) {
      if (Vanished(err)) continue;
      return err;
    }
    found->held.push_back(dir);
    std::string name(path::Basename(p));
    struct stat now;
    if (::fstatat(dir->fd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
      if (Vanished(errno)) continue;
      return errno;
    }
    if (now.st_dev == key.dev && now.st_ino == key.ino)
      found->links.push_back(Link{dir, std::move(name)});
  }
  return 0;
}

void Filesystem::ReleaseLocked(TableLinks& table) {
  for (Inode* dir : table.held) UnrefLocked(dir, 1);
  table.held.clear();
}

Inode* Filesystem::InsertLocked(int fd, const struct stat& st, Inode& parent, const char* name,
                                TableLinks* table, bool* created) {
  Inode* inode = FindOrCreateLocked(fd, st, parent, name, created);
  if (table != nullptr) {
    if (*created) {
      // First meeting: the table knows every name and what the store counts for each.
      claimed_.insert(Key{inode->dev, inode->ino});
      inode->accounted_size = table->size;
      for (Link& l : table->links)
        if (!HasLink(*inode, *l.parent, l.name)) AddLinkLocked(*inode, *l.parent, l.name, false);
    }
    ReleaseLocked(*table);
  }
  return inode;
}

int Filesystem::AdoptLinksBelow(Inode& parent, const std::string& name) {
  auto base = store_.base();
  if (!base || base->links().empty()) return 0;
  auto dir = DirPath(parent);
  if (!dir) return 0;
  const LinkTableView& table = base->links();
  for (size_t i : table.RecordsBelow(path::Join(*dir, name))) {
    const Key key = KeyOf(table.key_at(i));
    auto record = UnclaimedRecord(key.dev, key.ino);
    if (!record) continue;
    TableLinks found;
    int err = ResolveRecord(*record, &found);
    int fd = -1;
    struct stat st;
    if (err == 0 && !found.links.empty()) {
      const Link& first = found.links.front();
      fd = ::openat(first.parent->fd, first.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0 && ::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fd = -1;
        errno = e;
      }
      if (fd < 0 && !Vanished(errno)) err = errno;
      if (fd >= 0 && (st.st_dev != key.dev || st.st_ino != key.ino)) {
        ::close(fd);
        fd = -1;
      }
    }
    std::lock_guard lock(table_mu_);
    if (err != 0) {
      ReleaseLocked(found);
      return err;
    }
    if (fd < 0) {
      // No recorded name leads to the file any more (changed beside the mount): there is
      // nothing left to follow.
      claimed_.insert(key);
      ReleaseLocked(found);
      continue;
    }
    bool created;
    Link first = found.links.front();
    Inode* inode = InsertLocked(fd, st, *first.parent, first.name.c_str(), &found, &created);
    if (!created) ::close(fd);
    UnrefLocked(inode, 0);  // kept only while pinned (two or more names)
  }
  return 0;
}

int Filesystem::Lookup(Inode& parent, const char* name, fuse_entry_param* e, bool* created_out) {
  std::memset(e, 0, sizeof *e);
  e->attr_timeout = options_.attr_timeout;
  e->entry_timeout = options_.entry_timeout;
  int fd = ::openat(parent.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  if (::fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    ::close(fd);
    return err;
  }
  std::optional<TableLinks> table;
  if (!S_ISDIR(e->attr.st_mode) && e->attr.st_nlink > 1) {
    if (auto record = UnclaimedRecord(e->attr.st_dev, e->attr.st_ino)) {
      table.emplace();
      if (int err = ResolveRecord(*record, &*table); err != 0) {
        std::lock_guard lock(table_mu_);
        ReleaseLocked(*table);
        ::close(fd);
        return err;
      }
    }
  }
  bool created;
  Inode* inode;
  {
    std::lock_guard lock(table_mu_);
    inode = InsertLocked(fd, e->attr, parent, name, table ? &*table : nullptr, &created);
    inode->refs++;
  }
  if (!created) ::close(fd);
  if (created_out != nullptr) *created_out = created && !table;
  e->ino = IdOf(*inode);
  return 0;
}

void Filesystem::UnrefLocked(Inode* inode, uint64_t n) {
  std::vector<std::pair<Inode*, uint64_t>> work{{inode, n}};
  while (!work.empty()) {
    auto [in, count] = work.back();
    work.pop_back();
    if (in == root_.get()) continue;
    in->refs -= std::min(in->refs, count);
    if (in->refs > 0) continue;
    if (in->parent != nullptr) work.emplace_back(in->parent, 1);
    for (const Link& l : in->links) work.emplace_back(l.parent, 1);
    ::close(in->fd);
    inodes_.erase(Key{in->dev, in->ino});
  }
}

void Filesystem::Forget(Inode& inode, uint64_t n) {
  std::lock_guard lock(table_mu_);
  UnrefLocked(&inode, n);
}

std::optional<std::string> Filesystem::DirPath(Inode& dir) {
  std::lock_guard lock(table_mu_);
  return DirPathLocked(dir);
}

std::optional<std::string> Filesystem::DirPathLocked(Inode& dir) {
  std::vector<const std::string*> names;
  for (Inode* d = &dir; d != root_.get(); d = d->parent) {
    if (d == nullptr || d->removed) return std::nullopt;
    names.push_back(&d->name);
  }
  std::string p;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!p.empty()) p.push_back('/');
    p.append(**it);
  }
  return p;
}

void Filesystem::ReportStoreError(const Status& s) {
  if (!s.ok()) log::Error("size store: {}", s.message());
  suspect_.Record(s);
}

void Filesystem::ApplyDeltaAt(const std::string& dir_path, const Delta& delta) {
  if (delta.empty()) return;
  ReportStoreError(store_.AddDelta(dir_path, delta));
  MaybeRequestCompaction();
}

void Filesystem::ApplyDelta(Inode& dir, const Delta& delta) {
  if (delta.empty()) return;
  auto p = DirPath(dir);
  if (!p) return;  // the directory is gone; nothing below it is counted any more
  ApplyDeltaAt(*p, delta);
}

void Filesystem::Account(Inode& inode, int fd, bool ns_held) {
  if (inode.is_dir) return;
  std::shared_lock<std::shared_mutex> ns(ns_mu_, std::defer_lock);
  if (!ns_held) ns.lock();
  std::lock_guard size_lock(inode.size_mu);
  struct stat st;
  int rc = fd >= 0 ? ::fstat(fd, &st) : ::fstatat(inode.fd, "", &st, AT_EMPTY_PATH);
  if (rc != 0) return;
  const int64_t delta =
      static_cast<int64_t>(st.st_size) - static_cast<int64_t>(inode.accounted_size);
  if (delta == 0) return;
  inode.accounted_size = static_cast<uint64_t>(st.st_size);
  std::vector<Inode*> parents;
  {
    std::lock_guard lock(table_mu_);
    for (const Link& l : inode.links) parents.push_back(l.parent);
  }
  for (Inode* p : parents) ApplyDelta(*p, Delta{delta, 0, 0});
}

void Filesystem::AccountWrite(Inode& inode, int fd, uint64_t end_offset) {
  {
    std::lock_guard size_lock(inode.size_mu);
    if (end_offset <= inode.accounted_size) return;  // an overwrite inside the file
  }
  Account(inode, fd);
}

uint64_t Filesystem::AccountedSize(Inode& inode) {
  std::lock_guard size_lock(inode.size_mu);
  return inode.accounted_size;
}

void Filesystem::AddLinkLocked(Inode& file, Inode& parent, const std::string& name) {
  AddLinkLocked(file, parent, name, true);
}

void Filesystem::AddLinkLocked(Inode& file, Inode& parent, const std::string& name,
                               bool note_change) {
  file.links.push_back(Link{&parent, name});
  parent.refs++;
  if (file.links.size() < 2) return;
  // A file with two known links pins itself: when the kernel forgets it, the table must
  // still know every name a later size change has to reach. Its link-table record is ours.
  if (file.links.size() == 2) {
    file.refs++;
    claimed_.insert(Key{file.dev, file.ino});
  }
  if (note_change) store_.NoteLinksChanged();
}

void Filesystem::AddLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(table_mu_);
  if (!HasLink(file, parent, name)) AddLinkLocked(file, parent, name);
}

void Filesystem::RemoveLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(table_mu_);
  RemoveLinkLocked(file, parent, name);
}

void Filesystem::RemoveLinkLocked(Inode& file, Inode& parent, const std::string& name) {
  auto it = std::find_if(file.links.begin(), file.links.end(),
                         [&](const Link& l) { return l.parent == &parent && l.name == name; });
  if (it == file.links.end()) return;
  if (file.links.size() >= 2) store_.NoteLinksChanged();
  file.links.erase(it);
  UnrefLocked(&parent, 1);
  if (file.links.size() == 1) UnrefLocked(&file, 1);  // back to one link: drop the pin
}

void Filesystem::MoveLink(Inode& file, Inode& from_parent, const std::string& from_name,
                          Inode& to_parent, const std::string& to_name) {
  std::lock_guard lock(table_mu_);
  auto it = std::find_if(file.links.begin(), file.links.end(), [&](const Link& l) {
    return l.parent == &from_parent && l.name == from_name;
  });
  if (it == file.links.end() || HasLink(file, to_parent, to_name)) {
    if (!HasLink(file, to_parent, to_name)) AddLinkLocked(file, to_parent, to_name);
    RemoveLinkLocked(file, from_parent, from_name);
    return;
  }
  // One name changes in place: the file's pin and claim stay as they are.
  to_parent.refs++;
  it->parent = &to_parent;
  it->name = to_name;
  UnrefLocked(&from_parent, 1);
  if (file.links.size() >= 2) store_.NoteLinksChanged();
}

Compactor::Frozen Filesystem::FreezeForCompaction() {
  std::unique_lock ns(ns_mu_);  // no namespace change or size accounting in flight
  Compactor::Frozen out;
  out.snap = store_.Freeze();
  const LinkTableView* table = out.snap.base ? &out.snap.base->links() : nullptr;
  std::vector<size_t> carried;  // the index's records to write again
  std::vector<Inode*> pinned;
  {
    std::lock_guard lock(table_mu_);
    for (auto& [key, inode] : inodes_)
      if (!inode->is_dir && inode->links.size() >= 2) pinned.push_back(inode.get());
    // A claim only hides the index's record: without one (and not pinned, so not written
    // below) it means nothing, in this index or the one written now.
    std::erase_if(claimed_, [&](const Key& k) {
      auto it = inodes_.find(k);
      if (it != inodes_.end() && it->second->links.size() >= 2) return false;
      return table == nullptr || !table->Contains(TableKey(k.dev, k.ino));
    });
    for (size_t i = 0; table != nullptr && i < table->size(); ++i)
      if (claimed_.count(KeyOf(table->key_at(i))) == 0) carried.push_back(i);
  }
  std::vector<LinkRecord> records;
  for (Inode* inode : pinned) {
    LinkRecord r;
    r.key = TableKey(inode->dev, inode->ino);
    r.size = AccountedSize(*inode);
    std::lock_guard lock(table_mu_);
    for (const Link& l : inode->links)
      if (auto dir = DirPathLocked(*l.parent)) r.paths.push_back(path::Join(*dir, l.name));
    std::sort(r.paths.begin(), r.paths.end());
    if (r.paths.size() >= 2) records.push_back(std::move(r));
  }
  ns.unlock();
  // The index is immutable: its records are decoded without holding up the mount.
  for (size_t i : carried) records.push_back(table->at(i));
  std::sort(records.begin(), records.end(),
            [](const LinkRecord& a, const LinkRecord& b) { return a.key < b.key; });
  out.link_table = EncodeLinkTable(records);
  return out;
}

void Filesystem::MoveDir(Inode& dir, Inode& new_parent, const std::string& new_name) {
  std::lock_guard lock(table_mu_);
  new_parent.refs++;
  if (dir.parent != nullptr) UnrefLocked(dir.parent, 1);
  dir.parent = &new_parent;
  dir.name = new_name;
  dir.removed = false;
}

void Filesystem::DetachDir(Inode& dir) {
  std::lock_guard lock(table_mu_);
  dir.removed = true;
  if (dir.parent != nullptr) UnrefLocked(dir.parent, 1);
  dir.parent = nullptr;
}

void Filesystem::MaybeRequestCompaction() {
  if (waker_ && store_.active_size() > options_.compact_threshold) waker_();
}

}  // namespace dtkfs::fs
