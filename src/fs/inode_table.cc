#include "fs/inode_table.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "fs/credentials.h"

namespace dtkfs::fs {
namespace {

// The inode's file handle, or an empty one where the filesystem gives none.
SourceHandle HandleOf(int fd) {
  struct {
    struct file_handle fh;
    unsigned char room[MAX_HANDLE_SZ];
  } buf;
  buf.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  SourceHandle h;
  if (::name_to_handle_at(fd, "", &buf.fh, &mount_id, AT_EMPTY_PATH) != 0 ||
      buf.fh.handle_bytes > UINT8_MAX)
    return h;
  const int type = buf.fh.handle_type;
  h.data = std::make_unique<unsigned char[]>(sizeof type + 1 + buf.fh.handle_bytes);
  std::memcpy(h.data.get(), &type, sizeof type);
  h.data[sizeof type] = static_cast<unsigned char>(buf.fh.handle_bytes);
  std::memcpy(h.data.get() + sizeof type + 1, buf.fh.f_handle, buf.fh.handle_bytes);
  return h;
}

// Not a handle type: an identity that is the inode's birth time (where handles do not work).
constexpr int kBirthTime = INT_MIN;

SourceHandle BirthTimeOf(int fd) {
  struct statx stx;
  SourceHandle h;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BTIME, &stx) != 0 ||
      (stx.stx_mask & STATX_BTIME) == 0)
    return h;
  const int type = kBirthTime;
  const unsigned char len = sizeof stx.stx_btime.tv_sec + sizeof stx.stx_btime.tv_nsec;
  h.data = std::make_unique<unsigned char[]>(sizeof type + 1 + len);
  std::memcpy(h.data.get(), &type, sizeof type);
  h.data[sizeof type] = len;
  std::memcpy(h.data.get() + sizeof type + 1, &stx.stx_btime.tv_sec, sizeof stx.stx_btime.tv_sec);
  std::memcpy(h.data.get() + sizeof type + 1 + sizeof stx.stx_btime.tv_sec, &stx.stx_btime.tv_nsec,
              sizeof stx.stx_btime.tv_nsec);
  return h;
}

bool IsHandle(const SourceHandle& h) {
  int type;
  std::memcpy(&type, h.data.get(), sizeof type);
  return type != kBirthTime;
}

// True when a and b name the same inode incarnation.
bool SameIdentity(const SourceHandle& a, const SourceHandle& b) {
  const size_t head = sizeof(int) + 1;
  return a && b && a.data[head - 1] == b.data[head - 1] &&
         std::memcmp(a.data.get(), b.data.get(), head + a.data[head - 1]) == 0;
}

// Opens the object of h on the filesystem of mount_fd (O_PATH), or -1 and errno.
int OpenHandle(int mount_fd, const SourceHandle& h) {
  struct {
    struct file_handle fh;
    unsigned char room[MAX_HANDLE_SZ];
  } buf;
  int type;
  std::memcpy(&type, h.data.get(), sizeof type);
  buf.fh.handle_type = type;
  buf.fh.handle_bytes = h.data[sizeof type];
  std::memcpy(buf.fh.f_handle, h.data.get() + sizeof type + 1, buf.fh.handle_bytes);
  return ::open_by_handle_at(mount_fd, &buf.fh, O_PATH | O_CLOEXEC);
}

// True when fd is the object (dev, ino).
bool Is(int fd, dev_t dev, ino_t ino) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

// True when reopening by file handle works on mount_fd's filesystem: the filesystem exports
// handles and the daemon may open them (CAP_DAC_READ_SEARCH).
bool HandlesWork(int mount_fd) {
  const SourceHandle h = HandleOf(mount_fd);
  if (!h) return false;
  struct stat st;
  if (::fstat(mount_fd, &st) != 0) return false;
  int fd = OpenHandle(mount_fd, h);
  if (fd < 0) return false;
  const bool same = Is(fd, st.st_dev, st.st_ino);
  ::close(fd);
  return same;
}

bool OutOfDescriptors(int err) { return err == EMFILE || err == ENFILE; }

}  // namespace

InodeFd& InodeFd::operator=(InodeFd&& o) noexcept {
  if (this != &o) {
    Reset();
    table_ = std::exchange(o.table_, nullptr);
    inode_ = std::exchange(o.inode_, nullptr);
    fd_ = std::exchange(o.fd_, -1);
    err_ = std::exchange(o.err_, 0);
  }
  return *this;
}

void InodeFd::Reset() {
  if (table_ != nullptr) table_->ReleaseFd(*inode_);
  table_ = nullptr;
  inode_ = nullptr;
  fd_ = -1;
}

size_t InodeTable::DefaultFdBudget() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 32768;
  return std::clamp<size_t>(rl.rlim_cur / 2, 4, 32768);
}

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
  fd_budget_ = DefaultFdBudget();
  // open_by_handle_at refuses an O_PATH descriptor as its mount argument.
  handle_mount_fd_ = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  handles_ = handle_mount_fd_ >= 0 && HandlesWork(handle_mount_fd_);
  fd_stats_.handles = handles_;
}

InodeTable::~InodeTable() {
  for (Inode* inode : inodes_) {
    if (inode->fd >= 0) ::close(inode->fd);
    delete inode;
  }
  ::close(root_->fd);
  if (handle_mount_fd_ >= 0) ::close(handle_mount_fd_);
}

Inode* InodeTable::AddUnnamed(int fd, const struct stat& st) {
  auto* inode = new Inode();
  inode->fd = fd;
  inode->dev = st.st_dev;
  inode->ino = st.st_ino;
  inode->accounted_size = static_cast<uint64_t>(st.st_size);
  inode->refs = 1;
  std::lock_guard lock(mu_);
  // Its number is new (the source just made it), unless an evicted inode kept a removed
  // file's number: that one is retired, as a lookup would.
  if (Inode* old = inodes_.find(Key{st.st_dev, st.st_ino, 0})) {
    bool evicted;
    {
      std::lock_guard fd_lock(fd_mu_);
      evicted = old->fd < 0;
    }
    if (evicted) RetireLocked(old);
  }
  inodes_.insert(inode);
  std::lock_guard fd_lock(fd_mu_);
  inode->unnamed = true;
  InstallFdLocked(*inode);
  return inode;
}

InodeFd InodeTable::NameFd(Inode& inode, size_t i, std::string* name) {
  Inode* parent = nullptr;
  {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (LinkRef l : inode.links()) {
      if (n++ != i) continue;
      parent = l.parent;
      *name = l.name;
      break;
    }
    if (parent != nullptr) parent->refs++;  // until the lease holds its own
  }
  if (parent == nullptr) {
    InodeFd none;
    none.err_ = ENOENT;
    return none;
  }
  InodeFd dir = Fd(*parent);
  Release(*parent);
  return dir;
}

InodeFd InodeTable::Fd(Inode& inode) {
  if (&inode == root_.get()) {
    InodeFd out;
    out.fd_ = root_->fd;
    return out;
  }
  // The lease holds a reference: an operation may reply (after which the kernel may forget
  // the inode) before its InodeFd ends.
  Hold(inode);
  {
    std::lock_guard lock(fd_mu_);
    if (inode.fd >= 0) return LeaseLocked(inode);
  }
  int fd;
  {
    // As the daemon, whoever asked: open_by_handle_at needs CAP_DAC_READ_SEARCH, and the
    // recorded names may pass directories the caller cannot search. The kernel checked
    // the path the caller reached the inode by, and an O_PATH descriptor grants no access.
    AsDaemon as_daemon;
    fd = Reopen(inode);
  }
  if (fd < 0) {
    {
      std::lock_guard lock(fd_mu_);
      fd_stats_.stale += -fd == ESTALE;
    }
    Release(inode);
    InodeFd out;
    out.err_ = -fd;
    return out;
  }
  std::lock_guard lock(fd_mu_);
  fd_stats_.reopened++;
  if (inode.fd >= 0) {
    ::close(fd);  // another thread opened it first
    return LeaseLocked(inode);
  }
  inode.fd = fd;
  InodeFd out = LeaseLocked(inode);  // in use before the budget is enforced: not evicted
  InstallFdLocked(inode);
  return out;
}

InodeFd InodeTable::LeaseLocked(Inode& inode) {
  inode.fd_users++;
  inode.fd_recent = true;
  InodeFd out;
  out.table_ = this;
  out.inode_ = &inode;
  out.fd_ = inode.fd;
  return out;
}

void InodeTable::ReleaseFd(Inode& inode) {
  {
    std::lock_guard lock(fd_mu_);
    // Past the budget while descriptors were in use: back within it as they are let go.
    if (--inode.fd_users == 0 && ring_.size() > fd_budget_) EvictLocked(fd_budget_);
  }
  Release(inode);  // may free it, when the kernel forgot it meanwhile
}

int InodeTable::Reopen(Inode& inode) {
  // The handle is set once, before the descriptor was first evicted, and never changes.
  if (handles_ && inode.handle && IsHandle(inode.handle) && inode.dev == root_->dev &&
      !inode.opaque) {
    int fd = OpenHandle(handle_mount_fd_, inode.handle);
    if (fd < 0 && OutOfDescriptors(errno) && ShedFds())
      fd = OpenHandle(handle_mount_fd_, inode.handle);
    if (fd >= 0) {
      if (Is(fd, inode.dev, inode.ino)) return fd;
      ::close(fd);
      return -ESTALE;
    }
    // The handle's generation says the inode is gone, even where a new one took its number
    // (a recorded name would lead to that one).
    if (errno == ESTALE || errno == ENOENT) return -ESTALE;
    if (OutOfDescriptors(errno)) return -errno;
  }
  return ReopenByName(inode);
}

int InodeTable::ReopenByName(Inode& inode) {
  // A rename through the mount may move a name between reading it and opening it: the
  // names are read again, a few times, while they keep changing.
  std::vector<Link> names;  // each parent held while in use
  auto current = [&] {
    std::vector<Link> now;
    for (LinkRef l : inode.links()) now.push_back(Link{l.parent, l.name});
    return now;
  };
  auto same = [](const std::vector<Link>& a, const std::vector<Link>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const Link& x, const Link& y) {
      return x.parent == y.parent && x.name == y.name;
    });
  };
  int result = -ESTALE;
  for (int attempt = 0; attempt < 3; ++attempt) {
    {
      std::lock_guard lock(mu_);
      std::vector<Link> now = current();
      if (now.empty()) {  // removed (rmdir, the last unlink): gone, as tools expect it
        result = -ENOENT;
        break;
      }
      if (attempt > 0 && same(now, names)) break;  // nothing moved: the answer stands
      for (Link& l : names) UnrefLocked(l.parent, 1);
      names = std::move(now);
      for (Link& l : names) l.parent->refs++;
    }
    result = OpenByNames(inode, names);
    if (result != -ESTALE) break;
  }
  std::lock_guard lock(mu_);
  for (Link& l : names) UnrefLocked(l.parent, 1);
  return result;
}

int InodeTable::OpenByNames(Inode& inode, const std::vector<Link>& names) {
  int result = -ESTALE;
  for (const Link& l : names) {
    InodeFd dir = Fd(*l.parent);
    if (!dir) {
      if (OutOfDescriptors(dir.error())) result = -dir.error();
      continue;
    }
    const int fd = OpenAt(dir.get(), l.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (OutOfDescriptors(errno)) result = -errno;
      continue;
    }
    // The same number is not enough: a removed inode's number may have gone to a new one.
    if (Is(fd, inode.dev, inode.ino) &&
        (!inode.handle || SameIdentity(IdentityOf(fd), inode.handle)))
      return fd;
    ::close(fd);  // the name leads elsewhere now (changed beside the mount)
  }
  return result;
}

void InodeTable::InstallFdLocked(Inode& inode) {
  inode.fd_slot = static_cast<uint32_t>(ring_.size());
  inode.fd_recent = true;
  ring_.push_back(&inode);
  if (ring_.size() > fd_budget_) EvictLocked(fd_budget_);
}

void InodeTable::EvictLocked(size_t keep) {
  // Clock: an inode used since the hand last passed gets another round.
  for (size_t steps = 2 * ring_.size(); ring_.size() > keep && steps > 0; --steps) {
    if (hand_ >= ring_.size()) hand_ = 0;
    Inode* in = ring_[hand_];
    if (in->fd_users == 0 && !in->fd_recent && !in->unnamed) {
      CloseFdLocked(*in);  // moves the last one into hand_'s slot
      fd_stats_.evicted++;
    } else {
      in->fd_recent = false;
      hand_++;
    }
  }
}

void InodeTable::CloseFdLocked(Inode& inode) {
  if (!inode.handle) inode.handle = IdentityOf(inode.fd);
  ::close(inode.fd);
  inode.fd = -1;
  Inode* last = ring_.back();
  ring_[inode.fd_slot] = last;
  last->fd_slot = inode.fd_slot;
  ring_.pop_back();
}

void InodeTable::DropFd(Inode& inode) {
  std::lock_guard lock(fd_mu_);
  if (inode.fd < 0) return;
  Inode* last = ring_.back();
  ring_[inode.fd_slot] = last;
  last->fd_slot = inode.fd_slot;
  ring_.pop_back();
  ::close(inode.fd);
  inode.fd = -1;
}

int InodeTable::OpenAt(int dir_fd, const char* name, int flags, mode_t mode) {
  int fd = ::openat(dir_fd, name, flags, mode);
  if (fd < 0 && OutOfDescriptors(errno) && ShedFds()) fd = ::openat(dir_fd, name, flags, mode);
  return fd;
}

SourceHandle InodeTable::IdentityOf(int fd) const {
  return handles_ ? HandleOf(fd) : BirthTimeOf(fd);
}

bool InodeTable::IsReincarnationLocked(Inode& known, int fd) {
  // Only an evicted inode can be one: an open descriptor keeps the source inode, and with
  // it its number, alive.
  {
    std::lock_guard lock(fd_mu_);
    if (known.fd >= 0 || !known.handle) return false;
  }
  return !SameIdentity(IdentityOf(fd), known.handle);
}

void InodeTable::RetireLocked(Inode* old) {
  // The kernel may still hold it (its operations now answer ESTALE); the table forgets it
  // and its names, which are the new inode's now.
  inodes_.erase(old);
  if (old->is_dir) old->removed = true;
  const bool pinned = !old->is_dir && old->link_count() >= 2;
  DropLinksLocked(*old);
  if (pinned) UnrefLocked(old, 1);  // its pin as a hard-linked file
}

void InodeTable::DropLinksLocked(Inode& inode) {
  std::vector<Inode*> parents;
  for (LinkRef l : inode.links()) parents.push_back(l.parent);
  inode.parent = nullptr;
  std::string().swap(inode.name);
  inode.more_links.reset();
  for (Inode* p : parents) {
    Disown(*p, inode);
    UnrefLocked(p, 1);
  }
}

bool InodeTable::ShedFds() {
  std::lock_guard lock(fd_mu_);
  const size_t before = ring_.size();
  for (Inode* in : ring_) in->fd_recent = false;
  EvictLocked(0);
  return ring_.size() < before;
}

void InodeTable::SetFdBudget(size_t budget) {
  std::lock_guard lock(fd_mu_);
  fd_budget_ = std::max<size_t>(budget, 4);
  EvictLocked(fd_budget_);
}

InodeTable::FdStats InodeTable::GetFdStats() {
  std::lock_guard lock(fd_mu_);
  FdStats s = fd_stats_;
  s.open = ring_.size();
  return s;
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

HeldInode& HeldInode::operator=(HeldInode&& o) noexcept {
  if (this != &o) {
    Reset();
    table_ = std::exchange(o.table_, nullptr);
    inode_ = std::exchange(o.inode_, nullptr);
  }
  return *this;
}

void HeldInode::Reset() {
  if (inode_ != nullptr) table_->Release(*inode_);
  table_ = nullptr;
  inode_ = nullptr;
}

bool InodeTable::KnowsFile(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  const Inode* inode = FindLocked(dev, ino);
  return inode != nullptr && !inode->is_dir;
}

HeldInode InodeTable::FindHeld(dev_t dev, ino_t ino) {
  HeldInode held;
  std::lock_guard lock(mu_);
  if (Inode* inode = FindLocked(dev, ino)) {
    inode->refs++;
    held.table_ = this;
    held.inode_ = inode;
  }
  return held;
}

Inode* InodeTable::Find(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  return FindLocked(dev, ino);
}

Inode* InodeTable::FindLocked(dev_t dev, ino_t ino) {
  if (dev == root_->dev && ino == root_->ino) return root_.get();
  return inodes_.find(Key{dev, ino});
}

Inode* InodeTable::FindOrCreateLocked(int fd, const struct stat& st, const DirMount& mount,
                                      Inode& parent, const char* name, bool* created) {
  *created = false;
  if (st.st_dev == root_->dev && st.st_ino == root_->ino && !mount.opaque) return root_.get();
  Inode* inode = inodes_.find(Key{st.st_dev, st.st_ino, mount.opaque ? mount.mnt_id : 0});
  if (inode != nullptr && IsReincarnationLocked(*inode, fd)) {
    RetireLocked(inode);
    inode = nullptr;
  }
  if (inode == nullptr) {
    inode = new Inode();
    inode->fd = fd;
    inode->dev = st.st_dev;
    inode->ino = st.st_ino;
    inode->is_dir = S_ISDIR(st.st_mode);
    inode->mnt_id = mount.mnt_id;
    inode->opaque = mount.opaque;
    inode->accounted_size = inode->is_dir ? 0 : static_cast<uint64_t>(st.st_size);
    inodes_.insert(inode);
    *created = true;
    std::lock_guard fd_lock(fd_mu_);
    InstallFdLocked(*inode);
  }
  if (inode->is_dir) {
    if (inode == &parent) return inode;  // never its own parent (no path would end)
    if (inode->parent != &parent || inode->name != name || inode->removed) {
      // New, or renamed beside the mount: the kernel's view is the truth for its path.
      BreakCycleLocked(*inode, parent);
      if (inode->parent != nullptr) {
        Disown(*inode->parent, *inode);
        UnrefLocked(inode->parent, 1);
      }
      inode->parent = &parent;
      inode->name = name;
      inode->removed = false;
      parent.refs++;
      Adopt(parent, *inode);
    }
  } else if (!inode->HasLink(parent, name)) {
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
    int fd = -1;
    if (InodeFd dir = Fd(*cur)) {
      fd = OpenAt(dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } else {
      errno = dir.error();
    }
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
    for (LinkRef l : in->links()) {
      Disown(*l.parent, *in);
      work.emplace_back(l.parent, 1);
    }
    DropFd(*in);
    inodes_.erase(in);
    delete in;
    freed_++;
  }
}

InodeTable::Census InodeTable::GetCensus() {
  std::lock_guard lock(mu_);
  return Census{inodes_.size(), freed_};
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
  if (!dir.is_dir) return std::nullopt;
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

void InodeTable::BreakCycleLocked(Inode& dir, Inode& new_parent) {
  for (Inode* d = &new_parent; d != nullptr && d != root_.get(); d = d->parent) {
    if (d->parent != &dir) continue;
    Disown(dir, *d);
    d->parent = nullptr;  // its path is unknown until a lookup finds it again
    // The reference d held on its parent, given back without freeing dir: the caller is
    // about to make it a child (and holds, takes or gives back with UnrefLocked(dir, 0) its
    // own reference).
    dir.refs--;
    return;
  }
}

void InodeTable::MoveDir(Inode& dir, Inode& new_parent, const std::string& new_name) {
  std::lock_guard lock(mu_);
  if (&dir == &new_parent) return;
  BreakCycleLocked(dir, new_parent);
  new_parent.refs++;
  if (dir.parent != nullptr) {
    Disown(*dir.parent, dir);
    UnrefLocked(dir.parent, 1);
  }
  dir.parent = &new_parent;
  dir.name = new_name;
  dir.removed = false;
  Adopt(new_parent, dir);
}

void InodeTable::DetachDir(Inode& dir) {
  std::lock_guard lock(mu_);
  dir.removed = true;
  if (dir.parent != nullptr) {
    Disown(*dir.parent, dir);
    UnrefLocked(dir.parent, 1);
  }
  dir.parent = nullptr;
}

void InodeTable::AddLinkLocked(Inode& file, Inode& parent, const std::string& name, bool notify) {
  file.PushLink(parent, name);
  parent.refs++;
  Adopt(parent, file);
  const size_t links = file.link_count();
  if (links < 2) return;
  // A file with two known links pins itself: when the kernel forgets it, the table must
  // still know every name a later size change has to reach.
  if (links == 2) {
    file.refs++;
    if (listener_ != nullptr) listener_->OnPinned(file);
  }
  if (notify && listener_ != nullptr) listener_->OnLinksChanged();
}

void InodeTable::AddLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(mu_);
  if (!file.HasLink(parent, name)) AddLinkLocked(file, parent, name);
}

void InodeTable::RemoveLink(Inode& file, Inode& parent, const std::string& name) {
  std::lock_guard lock(mu_);
  RemoveLinkLocked(file, parent, name);
}

void InodeTable::RemoveLinkLocked(Inode& file, Inode& parent, const std::string& name) {
  if (file.is_dir) return;  // a directory's name goes with DetachDir
  const size_t links = file.link_count();
  if (!file.EraseLink(parent, name)) return;
  if (links >= 2 && listener_ != nullptr) listener_->OnLinksChanged();
  Disown(parent, file);
  UnrefLocked(&parent, 1);
  if (links == 2) UnrefLocked(&file, 1);  // back to one link: drop the pin
}

void InodeTable::MoveLink(Inode& file, Inode& from_parent, const std::string& from_name,
                          Inode& to_parent, const std::string& to_name) {
  std::lock_guard lock(mu_);
  if (file.is_dir) return;  // a directory moves with MoveDir
  if (file.HasLink(to_parent, to_name) || !file.HasLink(from_parent, from_name)) {
    if (!file.HasLink(to_parent, to_name)) AddLinkLocked(file, to_parent, to_name);
    RemoveLinkLocked(file, from_parent, from_name);
    return;
  }
  // One name changes in place: the file's pin stays as it is.
  to_parent.refs++;
  Disown(from_parent, file);
  file.RenameLink(from_parent, from_name, to_parent, to_name);
  Adopt(to_parent, file);
  UnrefLocked(&from_parent, 1);
  if (file.link_count() >= 2 && listener_ != nullptr) listener_->OnLinksChanged();
}

void InodeTable::Disown(Inode& parent, Inode& child) {
  if (!parent.children) return;
  parent.children->erase(&child);  // one occurrence: one name
  if (parent.children->empty()) parent.children.reset();
}

std::vector<std::pair<std::string, Inode*>> InodeTable::HoldChildren(Inode& dir) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, Inode*>> out;
  if (dir.children) {
    // A file with two names here is in the index twice: each child once, with all of them.
    std::vector<Inode*> children;
    children.reserve(dir.children->size());
    for (Inode* child : *dir.children) children.push_back(child);
    std::sort(children.begin(), children.end());
    children.erase(std::unique(children.begin(), children.end()), children.end());
    for (Inode* child : children)
      for (LinkRef l : child->links())
        if (l.parent == &dir) out.emplace_back(l.name, child);
  }
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
  for (Inode* inode : inodes_)
    if (!inode->is_dir && inode->link_count() >= 2) out.push_back(inode);
  return out;
}

bool Inode::HasLink(const Inode& dir, std::string_view entry) const {
  for (LinkRef l : links())
    if (l.parent == &dir && l.name == entry) return true;
  return false;
}

void Inode::PushLink(Inode& dir, std::string_view entry) {
  if (parent == nullptr) {
    parent = &dir;
    name = entry;
    return;
  }
  if (!more_links) more_links = std::make_unique<std::vector<Link>>();
  more_links->push_back(Link{&dir, std::string(entry)});
}

bool Inode::EraseLink(const Inode& dir, std::string_view entry) {
  if (parent == &dir && name == entry) {
    if (!more_links) {
      parent = nullptr;
      std::string().swap(name);
      return true;
    }
    // The next one known becomes the first: the order stays the order they became known.
    Link& next = more_links->front();
    parent = next.parent;
    name = std::move(next.name);
    more_links->erase(more_links->begin());
  } else {
    if (!more_links) return false;
    auto it = std::find_if(more_links->begin(), more_links->end(),
                           [&](const Link& l) { return l.parent == &dir && l.name == entry; });
    if (it == more_links->end()) return false;
    more_links->erase(it);
  }
  if (more_links->empty()) more_links.reset();
  return true;
}

bool Inode::RenameLink(const Inode& dir, std::string_view entry, Inode& to_dir,
                       std::string_view to_entry) {
  if (parent == &dir && name == entry) {
    parent = &to_dir;
    name = to_entry;
    return true;
  }
  if (!more_links) return false;
  for (Link& l : *more_links)
    if (l.parent == &dir && l.name == entry) {
      l.parent = &to_dir;
      l.name = to_entry;
      return true;
    }
  return false;
}

}  // namespace dtkfs::fs

namespace dtkfs::fs {

void KernelSizes::NoteReply(uint64_t size) {
  Ring* ring = ring_.load(std::memory_order_acquire);
  if (ring == nullptr) {
    uint64_t only = only_.load();
    if (only == size) return;
    if (only == kNone && only_.compare_exchange_strong(only, size)) return;
    if (only == size) return;
    // A second size: from now on the last kRing replies, the first one included.
    auto fresh = std::make_unique<Ring>();
    for (auto& s : fresh->sizes) s.store(kNone, std::memory_order_relaxed);
    fresh->sizes[0].store(only, std::memory_order_relaxed);
    fresh->next.store(1, std::memory_order_relaxed);
    if (ring_.compare_exchange_strong(ring, fresh.get())) ring = fresh.release();
  }
  ring->sizes[ring->next.fetch_add(1) % kRing].store(size);
}

void KernelSizes::NoteEnd(uint64_t end) {
  uint64_t cur = write_end_.load();
  while ((cur == kNone || cur < end) && !write_end_.compare_exchange_weak(cur, end)) {
  }
}

void KernelSizes::Reset(uint64_t size) {
  only_.store(size);
  if (Ring* ring = ring_.load(std::memory_order_acquire))
    for (auto& s : ring->sizes) s.store(size);
  write_end_.store(size);
}

bool KernelSizes::IsEnd(uint64_t off) const {
  if (off == write_end_.load()) return true;
  const Ring* ring = ring_.load(std::memory_order_acquire);
  if (ring == nullptr) return off == only_.load();
  for (const auto& s : ring->sizes)
    if (off == s.load()) return true;
  return false;
}

}  // namespace dtkfs::fs
