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
  } else {
    bool known = std::any_of(inode->links.begin(), inode->links.end(),
                             [&](const Link& l) { return l.parent == &parent && l.name == name; });
    if (!known) AddLinkLocked(*inode, parent, name);
  }
  return inode;
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
  bool created;
  Inode* inode;
  {
    std::lock_guard lock(table_mu_);
    inode = FindOrCreateLocked(fd, e->attr, parent, name, &created);
    inode->refs++;
  }
  if (!created) ::close(fd);
  if (created_out != nullptr) *created_out = created;
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
  file.links.push_back(Link{&parent, name});
  parent.refs++;
  // A file with two known links pins itself: when the kernel forgets it, the table must
  // still know every name a later size change has to reach.
  if (file.links.size() == 2) file.refs++;
}

void Filesystem::AddLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(table_mu_);
  for (const Link& l : file.links)
    if (l.parent == &parent && l.name == name) return;
  AddLinkLocked(file, parent, name);
}

void Filesystem::RemoveLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(table_mu_);
  auto it = std::find_if(file.links.begin(), file.links.end(),
                         [&](const Link& l) { return l.parent == &parent && l.name == name; });
  if (it == file.links.end()) return;
  file.links.erase(it);
  UnrefLocked(&parent, 1);
  if (file.links.size() == 1) UnrefLocked(&file, 1);  // back to one link: drop the pin
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
