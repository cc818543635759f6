#include "fs/source_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <deque>

#include "fs/credentials.h"
#include "fs/filesystem.h"
#include "scan/nested_mounts.h"
#include "util/beneath.h"
#include "util/log.h"
#include "util/mountinfo.h"
#include "util/path.h"

namespace dtkfs::fs {
namespace {

// Events are applied in batches: after a wake-up the drain thread waits this long for more,
// so a stream of writes to one directory costs one reconcile per batch, not one per write.
// A size query does not wait: it applies what is queued at once (Sync).
constexpr auto kCoalesce = std::chrono::milliseconds(5);
// Directories with at least this many entries have their names remembered once an event
// reaches them; smaller ones are listed again (cheaper than the bookkeeping).
constexpr size_t kRememberFrom = 512;
// At most this many names are remembered in all (the least recently used directories go).
constexpr size_t kMaxRemembered = 2'000'000;
// Events naming more names than this in one directory are applied by listing it.
constexpr size_t kMaxNamesByStat = 64;

// The root and every nested mount counted inside it: one fanotify filesystem mark each.
std::vector<std::string> MarkPaths(const std::string& root) {
  std::vector<std::string> marks{root};
  auto table = ReadMountInfo();
  auto nested = NestedMounts::Load(root);
  if (!table.ok() || !nested.ok()) return marks;
  for (const MountInfo& m : *table)
    if (m.mount_point != root && path::IsSameOrBelowAbsolute(m.mount_point, root) &&
        nested->Knows(m.id) && !nested->IsAlias(m.id))
      marks.push_back(m.mount_point);
  return marks;
}

// The verifier yields to everything else: lowest CPU priority, idle I/O class.
void LowerThreadPriority() {
  const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
  constexpr int kIoprioWhoProcess = 1, kIoprioClassIdle = 3, kIoprioClassShift = 13;
  ::syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, kIoprioClassIdle << kIoprioClassShift);
}

}  // namespace

Result<std::unique_ptr<watch::EventSource>> OpenEventSource(WatchMode mode,
                                                            const std::string& root) {
  if (mode == WatchMode::kOff) return std::unique_ptr<watch::EventSource>();
  if (mode == WatchMode::kInotify) return watch::OpenInotify(root);
  auto fan = watch::OpenFanotify(root, MarkPaths(root));
  if (fan.ok() || mode == WatchMode::kFanotify) return fan;
  log::Info("watching the source with inotify ({}; fanotify needs CAP_SYS_ADMIN)",
            fan.status().message());
  return watch::OpenInotify(root);
}

SourceWatcher::SourceWatcher(Filesystem& fs, std::unique_ptr<watch::EventSource> source)
    : fs_(fs), source_(std::move(source)) {
  root_fd_ = ::open(fs_.source_root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (auto nested = NestedMounts::Load(fs_.source_root()); nested.ok())
    aliases_ = nested->alias_paths();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  report_.watch = source_ ? source_->Describe() : "off";
}

SourceWatcher::~SourceWatcher() {
  Stop();
  if (root_fd_ >= 0) ::close(root_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void SourceWatcher::WatchTree() {
  if (source_ && source_->WatchesDirectories()) {
    std::lock_guard apply(apply_mu_);
    source_->Watch("");
    for (auto& [dir, totals] : fs_.store().ListBelow("", 0)) source_->Watch(dir);
    std::lock_guard lock(mu_);
    report_.watch = source_->Describe();
    report_.unwatched = source_->Unwatched();
  }
}

void SourceWatcher::Start(KernelCache* cache) {
  cache_ = cache;
  drain_thread_ = std::thread([this] { DrainLoop(); });
  verify_thread_ = std::thread([this] { VerifyLoop(); });
}

void SourceWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
  if (drain_thread_.joinable()) drain_thread_.join();
  if (verify_thread_.joinable()) verify_thread_.join();
}

void SourceWatcher::FollowLinks(dev_t dev, ino_t ino) {
  {
    std::lock_guard lock(mu_);
    follow_.emplace(dev, ino);
  }
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

void SourceWatcher::Sync() {
  AsDaemon as_daemon;  // reconciling reads any directory, whoever asked for a size
  std::lock_guard apply(apply_mu_);
  DrainLocked();
}

void SourceWatcher::RequestVerify(const std::string& why) {
  log::Info("verifying every directory against the source ({})", why);
  {
    std::lock_guard lock(mu_);
    verify_requested_ = true;
  }
  cv_.notify_all();
}

SourceWatcher::Report SourceWatcher::GetReport() const {
  std::lock_guard lock(mu_);
  return report_;
}

void SourceWatcher::DrainLoop() {
  struct pollfd fds[2] = {{source_ ? source_->fd() : -1, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
      log::Error("watching the source: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof count);
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (fds[0].revents != 0) std::this_thread::sleep_for(kCoalesce);
    std::lock_guard apply(apply_mu_);
    DrainLocked();
  }
}

void SourceWatcher::DrainLocked() {
  ApplyMovesLocked();
  watch::Batch batch;
  if (source_)
    if (Status s = source_->ReadAvailable(&batch); !s.ok())
      log::Error("watching the source: {}", s.message());
  if (batch.overflow) {
    log::Warning("the event queue overflowed: changes beside the mount were lost");
    {
      std::lock_guard lock(mu_);
      ++report_.overflows;
    }
    RequestVerify("event queue overflow");
  }
  std::map<std::string, Pending> dirs;
  std::set<std::pair<dev_t, ino_t>> follow;
  std::set<std::string> unknown;
  {
    std::lock_guard lock(mu_);
    follow.swap(follow_);
    unknown.swap(unknown_);
  }
  for (const std::string& d : unknown) dirs[d].whole = true;
  for (const watch::InodeChange& i : batch.inodes) follow.emplace(i.dev, i.ino);
  for (const auto& key : follow) {
    auto it = multi_.find(key);
    if (it != multi_.end())
      for (const auto& [name, counted] : it->second.names)
        dirs[std::string(path::Parent(name))].whole = true;
    // The names the inode table knows (a file the mount follows), or the index's link table.
    for (const std::string& d : fs_.accounting().KnownLinkDirs(key.first, key.second))
      dirs[d].whole = true;
    if (auto record = fs_.links().UnclaimedRecord(key.first, key.second))
      for (const std::string& p : record->paths) dirs[std::string(path::Parent(p))].whole = true;
  }
  for (watch::Change& c : batch.changes) {
    Pending& p = dirs[std::move(c.dir)];
    if (c.new_dir) p.new_dirs.insert(c.name);
    p.names.insert(std::move(c.name));
  }
  bool changed = false;
  ApplyLocked(std::move(dirs), &changed);
  std::lock_guard lock(mu_);
  report_.events += batch.events;
  if (source_ && source_->WatchesDirectories()) {
    report_.watch = source_->Describe();
    report_.unwatched = source_->Unwatched();
  }
}

void SourceWatcher::ApplyLocked(std::map<std::string, Pending> dirs, bool* changed_any) {
  ApplyMovesLocked();
  std::set<std::string> done;
  while (!dirs.empty()) {
    auto node = dirs.extract(dirs.begin());
    const std::string& dir = node.key();
    if (!done.insert(dir).second) continue;  // a follow-up already reconciled this round
    std::map<std::string, Pending> follow;
    if (ReconcileDir(dir, node.mapped(), &follow)) {
      *changed_any = true;
      std::lock_guard lock(mu_);
      ++report_.corrected;
    }
    for (auto& [d, p] : follow)
      if (done.count(d) == 0) dirs[d].whole = true;
  }
}

bool SourceWatcher::ReconcileDir(const std::string& dir, const Pending& pending,
                                 std::map<std::string, Pending>* follow, bool verifying) {
  // An alias (a bind mount inside the tree) counts as one empty directory: nothing in it or
  // below it is looked at.
  for (std::string_view p = dir; !p.empty(); p = path::Parent(p))
    if (aliases_.count(std::string(p)) != 0) return false;
  // A directory the store does not know yet (made beside the mount): its nearest known
  // ancestor's reconcile scans it whole.
  std::string target = dir;
  std::set<std::string> target_names = pending.names;
  std::set<std::string> rescan = pending.new_dirs;
  while (!fs_.store().Lookup(target)) {
    if (path::IsRoot(target)) return false;
    target_names = {std::string(path::Basename(target))};
    rescan.clear();
    target = std::string(path::Parent(target));
  }
  // Names that are (or were) directories may have moved: what is remembered below them
  // belongs to whatever directory was there.
  if (remembering_.load())
    for (const std::string& name : pending.names) ForgetNamesBelow(path::Join(dir, name));
  // Single names in a large directory whose names are remembered: a stat each.
  // Only for names whose content changed (an appending writer): names made, removed or
  // moved are applied by the listing.
  if (!verifying && !pending.whole && rescan.empty() && target == dir && !target_names.empty() &&
      target_names.size() <= kMaxNamesByStat && remembering_.load()) {
    bool changed = false;
    Accounting::KernelStale stale;
    bool applied;
    {
      std::unique_lock ns(fs_.ns_mu());
      Filesystem::NamespaceChange change(fs_);
      applied = ApplyNames(target, target_names, &changed, &stale);
    }
    if (applied) {
      PostStale(stale);
      return changed;
    }
  }
  Accounting::KernelStale stale;
  Result<ReconcileReport> report = Status::Ok();
  Result<DirListing> listing = Status::Ok();
  // A reconcile fails when the tree changes under it (a directory it scans is gone or became
  // a file); what it did is consistent, and the next try sees the settled state.
  for (int attempt = 0; attempt < 3 && (attempt == 0 || !report.ok()); ++attempt) {
    std::unique_lock ns(fs_.ns_mu());
    Filesystem::NamespaceChange change(fs_);
    listing = ListDirectoryAt(root_fd_, target, aliases_, /*with_entries=*/true);
    // Multi-name files the index lists whose size moved: into the inode table with all
    // their names, so the accounting reaches every directory that counts them.
    if (listing.ok())
      for (const ListedEntry& e : listing->entries)
        if (!e.is_dir && e.nlink > 1)
          if (auto record = fs_.links().UnclaimedRecord(e.dev, e.ino);
              record && record->size != e.size)
            if (int err = fs_.links().Adopt(*record); err != 0)
              log::Warning("reconcile {}: following the names of {}: {}", target, e.name,
                           std::strerror(err));
    report = fs_.accounting().Reconcile(fs_.source_root(), target, listing, target_names, rescan,
                                        &stale);
    // What the store counts for each name is what this listing saw: a directory whose names
    // are remembered is remembered anew (also by a verification, which may have corrected
    // it), a large one that events reach starts to be.
    if (report.ok() && listing.ok() &&
        (IsRemembered(target) || (!verifying && listing->entries.size() >= kRememberFrom)))
      RememberNames(target, *listing);
  }
  if (!report.ok()) {
    // What the store holds for the directory may be off until it is reconciled again (the
    // next event there, or a verification): say so.
    log::Warning("reconcile {}: {}", target.empty() ? "/" : target, report.status().message());
    fs_.accounting().ReportStoreError(
        report.status().WithContext("reconcile " + (target.empty() ? "/" : target)));
    return false;
  }

  // Multi-name files the inode table does not follow: each directory seen holding one
  // counts the size it was seen with; one seen with another size now is out of date.
  // A file that gained a name the daemon has not seen (linked beside the mount: the other
  // names are not in any event) may be counted at an old size where those are: only a
  // verification finds them.
  std::map<std::pair<dev_t, ino_t>, uint64_t> seen;
  bool new_names = false;
  auto sighting = [&](dev_t dev, ino_t ino, const std::string& name, uint64_t size, nlink_t nlink) {
    auto [it, first] = multi_.try_emplace({dev, ino});
    LinkTracker::Observed& m = it->second;
    if (first)  // the names the index knows, counted at the index's size
      if (auto record = fs_.links().UnclaimedRecord(dev, ino))
        for (const std::string& p : record->paths) m.names.emplace(p, record->size);
    m.names[name] = size;
    if (nlink > m.nlink && m.names.size() < nlink) new_names = true;
    m.nlink = nlink;
    seen[{dev, ino}] = size;
  };
  for (const ScannedSize& s : report->sizes)
    if (s.nlink > 1) sighting(s.dev, s.ino, s.path, s.size, s.nlink);
  const auto base = fs_.store().base();
  const bool has_link_table = base && !base->links().empty();
  if (listing.ok()) {
    for (const ListedEntry& e : listing->entries) {
      if (!e.is_dir && e.nlink > 1) {
        sighting(e.dev, e.ino, path::Join(target, e.name), e.size, e.nlink);
      } else if (!e.is_dir && has_link_table &&
                 fs_.links().UnclaimedRecord(e.dev, e.ino).has_value()) {
        // The index lists names this file no longer has (removed while unmounted, or
        // beside the mount): its record goes at the next compaction.
        LinkTracker::ObservedLinks gone;
        gone[{e.dev, e.ino}].names[path::Join(target, e.name)] = e.size;
        gone[{e.dev, e.ino}].nlink = e.nlink;
        multi_.erase({e.dev, e.ino});
        fs_.links().NoteObserved(std::move(gone));
      }
    }
  }
  for (const auto& [key, size] : seen)
    for (const auto& [name, counted] : multi_[key].names)
      if (counted != size) (*follow)[std::string(path::Parent(name))].whole = true;
  if (new_names && !verifying) {
    {
      std::lock_guard lock(mu_);
      report_.links_incomplete = true;
    }
    RequestVerify("a file gained names beside the mount");
  }
  // For the next index's link table.
  if (!seen.empty()) {
    LinkTracker::ObservedLinks observed;
    for (const auto& [key, size] : seen) observed[key] = multi_[key];
    fs_.links().NoteObserved(std::move(observed));
  }

  // The kernel's caches, then the watches of new directories.
  PostStale(stale);
  if (source_ && source_->WatchesDirectories()) {
    // A directory's watch comes after the scan that found it: what changed in between
    // raised no event, so each newly watched directory is listed once more after its watch.
    for (const std::string& added : report->added)
      for (const std::string& d : WatchSubtree(added)) (*follow)[d].whole = true;
    for (const std::string& name : target_names) {
      const std::string child = path::Join(target, name);
      if (fs_.store().Lookup(child)) WatchSubtree(child);  // moved: its watches' new paths
    }
  }
  if (report->changed() && verifying)  // events' changes are counted in the status only
    log::Info("verification corrected {}: bytes {:+}, files {:+}, dirs +{} -{}",
              target.empty() ? "/" : target, report->own.bytes, report->own.files,
              report->dirs_added, report->dirs_removed);
  return report->changed();
}

void SourceWatcher::PostStale(const Accounting::KernelStale& stale) {
  if (cache_ == nullptr) return;
  auto id = [&](const Inode* i) {
    return i == &fs_.table().root() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(i);
  };
  std::vector<Invalidation> items;
  for (auto& [parent, name] : stale.entries) items.push_back({id(parent), name, 0});
  for (const Inode* i : stale.inodes) items.push_back({0, "", id(i)});
  cache_->Post(std::move(items));
}

bool SourceWatcher::ApplyNames(const std::string& dir, const std::set<std::string>& names,
                               bool* changed, Accounting::KernelStale* stale) {
  RememberedName self;
  {
    std::lock_guard lock(names_mu_);
    auto it = remembered_.find(dir);
    if (it == remembered_.end()) return false;
    self.dev = it->second.dev;
    self.ino = it->second.ino;
  }
  // Each name as it is now. A file with one name is applied by its size: from what the
  // store counts for the name, or, when the inode table knows it (a file open through the
  // mount) by this name, by the table's accounting. Anything else (a directory, several
  // names, an alias, a name the table knows for another file) needs the full reconcile.
  const int fd = OpenTreeDir(root_fd_, dir);
  if (fd < 0) return false;
  struct Now {
    const std::string* name;
    bool exists;
    struct stat st;
    Inode* known;  // held
  };
  std::vector<Now> now;
  struct stat st;
  bool plain = ::fstat(fd, &st) == 0 && st.st_dev == self.dev && st.st_ino == self.ino;
  for (const std::string& name : names) {
    if (!plain) break;
    Now n{&name, false, {}, nullptr};
    if (::fstatat(fd, name.c_str(), &n.st, AT_SYMLINK_NOFOLLOW) == 0)
      n.exists = true;
    else if (errno != ENOENT)
      plain = false;
    if (n.exists && (S_ISDIR(n.st.st_mode) || n.st.st_nlink > 1)) plain = false;
    if (n.exists && plain) {
      std::lock_guard lock(fs_.table().mu());
      Inode* k = fs_.table().FindLocked(n.st.st_dev, n.st.st_ino);
      if (k != nullptr) {
        const bool by_this_name = !k->is_dir && k->link_count() == 1 &&
                                  k->parent->dev == self.dev && k->parent->ino == self.ino &&
                                  k->name == name;
        if (by_this_name) {
          k->refs++;
          n.known = k;
        } else {
          plain = false;
        }
      }
    }
    if (!aliases_.empty() && aliases_.count(path::Join(dir, name)) != 0) plain = false;
    now.push_back(n);
  }
  ::close(fd);
  auto release = [&] {
    std::lock_guard lock(fs_.table().mu());
    for (const Now& n : now)
      if (n.known != nullptr) fs_.table().UnrefLocked(n.known, 1);
  };
  if (!plain) {
    release();
    return false;
  }
  Delta delta;
  std::vector<const std::string*> renamed;
  {
    std::lock_guard lock(names_mu_);
    auto it = remembered_.find(dir);
    if (it == remembered_.end()) {
      release();
      return false;
    }
    auto& known = it->second.names;
    for (const Now& n : now) {
      auto r = known.find(*n.name);
      if (n.known == nullptr && r != known.end() && !r->second.plain) {
        release();
        return false;
      }
    }
    for (const Now& n : now) {
      auto r = known.find(*n.name);
      // The kernel's entry for the name is stale only when the name now leads elsewhere
      // (made, removed, replaced); a file that only grew keeps its entry (and its inode in
      // the kernel, which the invalidation of its attributes is enough for).
      const bool was = r != known.end();
      if (was != n.exists ||
          (was && (r->second.dev != n.st.st_dev || r->second.ino != n.st.st_ino)))
        renamed.push_back(n.name);
      if (n.known != nullptr) {  // the table accounts for it (below)
        if (r == known.end()) ++remembered_names_;
        known[*n.name] = RememberedName{n.st.st_dev, n.st.st_ino, 0, false};
        continue;
      }
      if (r != known.end()) {
        delta.bytes -= static_cast<int64_t>(r->second.size);
        delta.files -= 1;
      }
      if (n.exists) {
        delta.bytes += n.st.st_size;
        delta.files += 1;
        if (r == known.end()) ++remembered_names_;
        known[*n.name] =
            RememberedName{n.st.st_dev, n.st.st_ino, static_cast<uint64_t>(n.st.st_size), true};
      } else if (r != known.end()) {
        known.erase(r);
        --remembered_names_;
      }
    }
    it->second.used = ++use_clock_;
  }
  fs_.accounting().ApplyOutOfBand(dir, delta);
  *changed = !delta.empty();
  for (const Now& n : now) {
    if (n.known == nullptr) continue;
    const uint64_t before = n.known->CountedSize();
    fs_.accounting().AccountTo(*n.known, static_cast<uint64_t>(n.st.st_size));
    if (n.known->CountedSize() != before) *changed = true;
    stale->inodes.push_back(n.known);
  }
  release();
  if (Inode* d = fs_.table().Find(self.dev, self.ino); d != nullptr && d->is_dir) {
    for (const std::string* name : renamed) stale->entries.emplace_back(d, *name);
    stale->inodes.push_back(d);
  }
  return true;
}

void SourceWatcher::RememberNames(const std::string& dir, const DirListing& listing) {
  RememberedDir rd;
  rd.dev = listing.dev;
  rd.ino = listing.ino;
  rd.names.reserve(listing.entries.size());
  for (const ListedEntry& e : listing.entries) {
    const bool plain = !e.is_dir && e.nlink == 1 && fs_.table().Find(e.dev, e.ino) == nullptr;
    rd.names.emplace(e.name, RememberedName{e.dev, e.ino, e.size, plain});
  }
  std::lock_guard lock(names_mu_);
  if (auto old = remembered_.find(dir); old != remembered_.end()) {
    remembered_names_ -= old->second.names.size();
    remembered_.erase(old);
  }
  rd.used = ++use_clock_;
  remembered_names_ += rd.names.size();
  remembered_.emplace(dir, std::move(rd));
  while (remembered_names_ > kMaxRemembered && remembered_.size() > 1) {
    auto oldest = remembered_.begin();
    for (auto it = remembered_.begin(); it != remembered_.end(); ++it)
      if (it->second.used < oldest->second.used) oldest = it;
    remembered_names_ -= oldest->second.names.size();
    remembered_.erase(oldest);
  }
  remembering_.store(true);
}

bool SourceWatcher::IsRemembered(const std::string& dir) {
  if (!remembering_.load()) return false;
  std::lock_guard lock(names_mu_);
  return remembered_.count(dir) != 0;
}

void SourceWatcher::ForgetNamesBelow(const std::string& dir) {
  std::lock_guard lock(names_mu_);
  for (auto it = remembered_.begin(); it != remembered_.end();) {
    const std::string& p = it->first;
    if (p == dir ||
        (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/')) {
      remembered_names_ -= it->second.names.size();
      it = remembered_.erase(it);
    } else {
      ++it;
    }
  }
  remembering_.store(!remembered_.empty());
}

void SourceWatcher::DirMoved(const std::string& from, const std::string& to, bool exchange) {
  // Called under the namespace lock: multi_ waits for the next applier (apply_mu_ comes
  // before the namespace lock); the link tracker's copy moves now.
  fs_.links().MoveObserved(from, to, exchange);
  std::lock_guard lock(mu_);
  moves_.push_back(Move{from, to, exchange});
}

void SourceWatcher::Unknown(const std::string& dir) {
  {
    std::lock_guard lock(mu_);
    unknown_.insert(dir);
  }
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

void SourceWatcher::ApplyMovesLocked() {
  std::vector<Move> moves;
  {
    std::lock_guard lock(mu_);
    moves.swap(moves_);
  }
  for (const Move& m : moves) LinkTracker::MovePaths(multi_, m.from, m.to, m.exchange);
}

void SourceWatcher::EntriesChanged(const std::string& dir) {
  if (!remembering_.load()) return;
  std::lock_guard lock(names_mu_);
  if (dir == "*") {
    remembered_.clear();
    remembered_names_ = 0;
  } else if (auto it = remembered_.find(dir); it != remembered_.end()) {
    remembered_names_ -= it->second.names.size();
    remembered_.erase(it);
  }
  remembering_.store(!remembered_.empty());
}

std::optional<uint64_t> SourceWatcher::CountedFor(const std::string& dir, const std::string& name,
                                                  dev_t dev, ino_t ino) {
  if (!remembering_.load()) return std::nullopt;
  std::lock_guard lock(names_mu_);
  auto it = remembered_.find(dir);
  if (it == remembered_.end()) return std::nullopt;
  auto r = it->second.names.find(name);
  if (r != it->second.names.end() && r->second.plain && r->second.dev == dev &&
      r->second.ino == ino) {
    r->second.plain = false;  // the inode table accounts for it from now on
    return r->second.size;
  }
  // A name the store does not count for this file (made, or replaced, beside the mount, its
  // event not applied yet): what is remembered of the directory cannot say what the store
  // counts, so the directory is listed at its next event.
  remembered_names_ -= it->second.names.size();
  remembered_.erase(it);
  remembering_.store(!remembered_.empty());
  return std::nullopt;
}

std::vector<std::string> SourceWatcher::WatchSubtree(const std::string& dir) {
  std::vector<std::string> dirs{dir};
  for (auto& [d, totals] : fs_.store().ListBelow(dir, 0)) dirs.push_back(d);
  for (const std::string& d : dirs) source_->Watch(d);
  return dirs;
}

void SourceWatcher::VerifyLoop() {
  LowerThreadPriority();
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || verify_requested_; });
      if (stop_) return;
      verify_requested_ = false;
    }
    if (!Verify(/*stoppable=*/true)) return;
  }
}

void SourceWatcher::VerifyBeforeExit() {
  bool needed;
  {
    std::lock_guard lock(mu_);
    needed = report_.links_incomplete;
  }
  cache_ = nullptr;  // the session is gone
  std::unique_lock apply(apply_mu_);
  ApplyMovesLocked();
  // A file with more names than the ones remembered that still lead to it (a name made
  // beside the mount, or moved through it while the inode table did not follow it).
  for (auto it = multi_.begin(); !needed && it != multi_.end(); ++it) {
    nlink_t valid = 0, nlink = 0;
    for (const auto& [p, counted] : it->second.names) {
      struct stat st;
      if (StatBeneath(root_fd_, p, &st) == 0 && st.st_dev == it->first.first &&
          st.st_ino == it->first.second) {
        ++valid;
        nlink = st.st_nlink;
      }
    }
    needed = valid > 0 && valid < nlink;
  }
  if (needed) {
    log::Info("looking for every name of files with several names before exit");
    apply.unlock();
    Verify(/*stoppable=*/false);
    apply.lock();
  }
  // The next index's link table gets every name found.
  fs_.links().NoteObserved(multi_);
}

bool SourceWatcher::Verify(bool stoppable) {
  bool links_looked_for;
  {
    std::lock_guard lock(mu_);
    report_.verifying = true;
    links_looked_for = report_.links_incomplete;
    report_.verify_done = 0;
    report_.verify_corrected = 0;
    const auto root = fs_.store().Lookup("");
    report_.verify_total = root ? root->dirs + 1 : 0;
  }
  const auto start = std::chrono::steady_clock::now();
  std::deque<std::string> queue{""};
  while (!queue.empty()) {
    {
      std::lock_guard lock(mu_);
      if (stoppable && stop_) break;
    }
    const std::string dir = std::move(queue.front());
    queue.pop_front();
    std::map<std::string, Pending> follow;
    bool changed;
    {
      std::lock_guard apply(apply_mu_);
      ApplyMovesLocked();
      changed = ReconcileDir(dir, Pending{}, &follow, /*verifying=*/true);
      bool more = false;
      if (!follow.empty()) ApplyLocked(std::move(follow), &more);
    }
    for (auto& [child, totals] : fs_.store().ListBelow(dir, 1)) queue.push_back(child);
    std::lock_guard lock(mu_);
    ++report_.verify_done;
    if (changed) ++report_.verify_corrected;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard lock(mu_);
  report_.verifying = false;
  report_.verify_seconds = seconds;
  if (stoppable && stop_) return false;
  // Every name was listed: those the run started for are known now (a name made during the
  // run set the flag again and asked for another run).
  if (links_looked_for && !verify_requested_) report_.links_incomplete = false;
  ++report_.verify_runs;
  log::Info("verification done: {} directories in {:.1f} s, {} corrected", report_.verify_done,
            seconds, report_.verify_corrected);
  return true;
}

}  // namespace dtkfs::fs
