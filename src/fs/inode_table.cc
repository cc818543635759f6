#include "fs/inode_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace dtkfs::fs {

InodeTable::InodeTable(int root_fd, std::string source_root)
    : root_(std::make_unique<Inode>()), mounts_(std::move(source_root), MountIdOf(root_fd)) {
  struct stat st;
  ::fstat(root_fd, &st);
  root_->fd = root_fd;
  root_->dev = st.st_dev;
  root_->ino = st.st_ino;
  root_->is_dir = true;
  root_->mnt_id = MountIdOf(root_fd);
  root_->refs = 1;
}

InodeTable::~InodeTable() {
  for (auto& [k, inode] : inodes_) ::close(inode->fd);
  ::close(root_->fd);
}

DirMount InodeTable::MountOf(uint64_t mnt_id, const Inode& parent) {
  DirMount m;
  m.mnt_id = mnt_id;
  // Only a mount point (a mount other than its parent's) can be an alias.
  m.opaque = mnt_id != parent.mnt_id && mounts_.IsAlias(mnt_id);
  return m;
}

bool InodeTable::IsFileAlias(uint64_t mnt_id, const Inode& parent) {
  return mnt_id != parent.mnt_id && mounts_.IsAlias(mnt_id);
}

Inode* InodeTable::Find(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  return FindLocked(dev, ino);
}

Inode* InodeTable::FindLocked(dev_t dev, ino_t ino) {
  if (dev == root_->dev && ino == root_->ino) return root_.get();
  auto it = inodes_.find(Key{dev, ino});
  return it == inodes_.end() ? nullptr : it->second.get();
}

Inode* InodeTable::FindOrCreateLocked(int fd, const struct stat& st, const DirMount& mount,
                                      Inode& parent, const char* name, bool* created) {
  *created = false;
  if (st.st_dev == root_->dev && st.st_ino == root_->ino && !mount.opaque) return root_.get();
  auto [it, inserted] =
      inodes_.try_emplace(Key{st.st_dev, st.st_ino, mount.opaque ? mount.mnt_id : 0});
  if (inserted) {
    auto inode = std::make_unique<Inode>();
    inode->fd = fd;
    inode->dev = st.st_dev;
    inode->ino = st.st_ino;
    inode->is_dir = S_ISDIR(st.st_mode);
    inode->mnt_id = mount.mnt_id;
    inode->opaque = mount.opaque;
    inode->accounted_size = inode->is_dir ? 0 : static_cast<uint64_t>(st.st_size);
    it->second = std::move(inode);
    *created = true;
  }
  Inode* inode = it->second.get();
  if (inode->is_dir) {
    if (inode->parent != &parent || inode->name != name || inode->removed) {
      // New, or renamed beside the mount: the kernel's view is the truth for its path.
      if (inode->parent != nullptr) {
        Disown(*inode->parent, inode->name, *inode);
        UnrefLocked(inode->parent, 1);
      }
      inode->parent = &parent;
      inode->name = name;
      inode->removed = false;
      parent.refs++;
      Adopt(parent, inode->name, *inode);
    }
  } else if (!HasLink(*inode, parent, name)) {
    AddLinkLocked(*inode, parent, name);
  }
  return inode;
}

Inode* InodeTable::ResolveDir(std::string_view dir_path, int* err) {
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
    const DirMount mount = fd >= 0 ? MountOf(MountIdOf(fd), *cur) : DirMount{};
    std::lock_guard lock(mu_);
    if (fd < 0 || mount.opaque) {  // names from the index never lead into an alias
      *err = fd < 0 ? open_err : ENOENT;
      if (fd >= 0) ::close(fd);
      UnrefLocked(cur, 1);
      return nullptr;
    }
    bool created;
    Inode* child = FindOrCreateLocked(fd, st, mount, *cur, name.c_str(), &created);
    if (!created) ::close(fd);
    child->refs++;
    UnrefLocked(cur, 1);  // the child's parent reference keeps cur
    cur = child;
  }
  return cur;
}

void InodeTable::UnrefLocked(Inode* inode, uint64_t n) {
  std::vector<std::pair<Inode*, uint64_t>> work{{inode, n}};
  while (!work.empty()) {
    auto [in, count] = work.back();
    work.pop_back();
    if (in == root_.get()) continue;
    in->refs -= std::min(in->refs, count);
    if (in->refs > 0) continue;
    if (in->parent != nullptr) {
      Disown(*in->parent, in->name, *in);
      work.emplace_back(in->parent, 1);
    }
    for (const Link& l : in->links) {
      Disown(*l.parent, l.name, *in);
      work.emplace_back(l.parent, 1);
    }
    ::close(in->fd);
    inodes_.erase(KeyOf(*in));
  }
}

void InodeTable::Forget(Inode& inode, uint64_t n) {
  std::lock_guard lock(mu_);
  UnrefLocked(&inode, n);
}

std::optional<std::string> InodeTable::DirPath(Inode& dir) {
  std::lock_guard lock(mu_);
  return DirPathLocked(dir);
}

std::optional<std::string> InodeTable::DirPathLocked(Inode& dir) {
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

void InodeTable::MoveDir(Inode& dir, Inode& new_parent, const std::string& new_name) {
  std::lock_guard lock(mu_);
  new_parent.refs++;
  if (dir.parent != nullptr) {
    Disown(*dir.parent, dir.name, dir);
    UnrefLocked(dir.parent, 1);
  }
  dir.parent = &new_parent;
  dir.name = new_name;
  dir.removed = false;
  Adopt(new_parent, new_name, dir);
}

void InodeTable::DetachDir(Inode& dir) {
  std::lock_guard lock(mu_);
  dir.removed = true;
  if (dir.parent != nullptr) {
    Disown(*dir.parent, dir.name, dir);
    UnrefLocked(dir.parent, 1);
  }
  dir.parent = nullptr;
}

bool InodeTable::HasLink(const Inode& file, const Inode& parent, std::string_view name) {
  return std::any_of(file.links.begin(), file.links.end(),
                     [&](const Link& l) { return l.parent == &parent && l.name == name; });
}

void InodeTable::AddLinkLocked(Inode& file, Inode& parent, const std::string& name, bool notify) {
  file.links.push_back(Link{&parent, name});
  parent.refs++;
  Adopt(parent, name, file);
  if (file.links.size() < 2) return;
  // A file with two known links pins itself: when the kernel forgets it, the table must
  // still know every name a later size change has to reach.
  if (file.links.size() == 2) {
    file.refs++;
    if (listener_ != nullptr) listener_->OnPinned(file);
  }
  if (notify && listener_ != nullptr) listener_->OnLinksChanged();
}

void InodeTable::AddLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(mu_);
  if (!HasLink(file, parent, name)) AddLinkLocked(file, parent, name);
}

void InodeTable::RemoveLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(mu_);
  RemoveLinkLocked(file, parent, name);
}

void InodeTable::RemoveLinkLocked(Inode& file, Inode& parent, const std::string& name) {
  auto it = std::find_if(file.links.begin(), file.links.end(),
                         [&](const Link& l) { return l.parent == &parent && l.name == name; });
  if (it == file.links.end()) return;
  if (file.links.size() >= 2 && listener_ != nullptr) listener_->OnLinksChanged();
  Disown(parent, name, file);
  file.links.erase(it);
  UnrefLocked(&parent, 1);
  if (file.links.size() == 1) UnrefLocked(&file, 1);  // back to one link: drop the pin
}

void InodeTable::MoveLink(Inode& file, Inode& from_parent, const std::string& from_name,
                          Inode& to_parent, const std::string& to_name) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(file.links.begin(), file.links.end(), [&](const Link& l) {
    return l.parent == &from_parent && l.name == from_name;
  });
  if (it == file.links.end() || HasLink(file, to_parent, to_name)) {
    if (!HasLink(file, to_parent, to_name)) AddLinkLocked(file, to_parent, to_name);
    RemoveLinkLocked(file, from_parent, from_name);
    return;
  }
  // One name changes in place: the file's pin stays as it is.
  to_parent.refs++;
  Disown(from_parent, from_name, file);
  it->parent = &to_parent;
  it->name = to_name;
  Adopt(to_parent, to_name, file);
  UnrefLocked(&from_parent, 1);
  if (file.links.size() >= 2 && listener_ != nullptr) listener_->OnLinksChanged();
}

void InodeTable::Disown(Inode& parent, const std::string& name, Inode& child) {
  auto [first, last] = parent.children.equal_range(name);
  for (auto it = first; it != last; ++it) {
    if (it->second == &child) {
      parent.children.erase(it);
      return;
    }
  }
}

std::vector<std::pair<std::string, Inode*>> InodeTable::HoldChildren(Inode& dir) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, Inode*>> out(dir.children.begin(), dir.children.end());
  for (auto& [name, child] : out) child->refs++;
  return out;
}

void InodeTable::Hold(Inode& inode) {
  std::lock_guard lock(mu_);
  inode.refs++;
}

void InodeTable::Release(Inode& inode) {
  std::lock_guard lock(mu_);
  UnrefLocked(&inode, 1);
}

std::vector<Inode*> InodeTable::PinnedLocked() {
  std::vector<Inode*> out;
  for (auto& [key, inode] : inodes_)
    if (!inode->is_dir && inode->links.size() >= 2) out.push_back(inode.get());
  return out;
}

}  // namespace dtkfs::fs
