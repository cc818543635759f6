#include "fs/accounting.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/log.h"
#include "util/path.h"

namespace dtkfs::fs {

Accounting::Accounting(InodeTable& table, SizeStore& store, std::shared_mutex& ns_mu,
                       size_t compact_threshold, bool tracking)
    : table_(table),
      store_(store),
      ns_mu_(ns_mu),
      compact_threshold_(compact_threshold),
      tracking_(tracking) {}

namespace {

int JournalErrno(const Status& s) {
  if (s.ok()) return 0;
  log::Error("{}", s.message());
  return s.errno_value() != 0 ? s.errno_value() : EIO;
}

}  // namespace

int Accounting::MarkDirty(Inode& dir) {
  if (journal_ == nullptr) return 0;
  return JournalErrno(
      journal_->MarkDirty(DirKey{dir.dev, dir.ino}, [&] { return table_.DirPath(dir); }));
}

int Accounting::MarkDirtyPath(const std::string& dir) {
  if (journal_ == nullptr) return 0;
  return JournalErrno(journal_->MarkDirtyPath(dir));
}

int Accounting::MarkLinksLocked(Inode& file) {
  if (journal_ == nullptr) return 0;
  std::vector<Inode*> parents;
  {
    std::lock_guard lock(table_.mu());
    for (LinkRef l : file.links()) parents.push_back(l.parent);
  }
  for (Inode* p : parents)
    if (int err = MarkDirty(*p); err != 0) return err;
  return 0;
}

int Accounting::WillChangeEntries(Inode& dir) { return MarkDirty(dir); }

int Accounting::WillChangeSize(Inode& file, bool ns_held) {
  if (journal_ == nullptr || file.is_dir) return 0;
  std::shared_lock<std::shared_mutex> ns(ns_mu_, std::defer_lock);
  if (!ns_held) ns.lock();
  return MarkLinksLocked(file);
}

int Accounting::WillPlaceDir(Inode& parent, const std::string& name) {
  if (journal_ == nullptr) return 0;
  auto p = table_.DirPath(parent);
  if (!p) return 0;
  const std::string path = path::Join(*p, name);
  if (!store_.Persisted(path)) return 0;
  return JournalErrno(journal_->MarkReplaced(path));
}

void Accounting::MadeDir(const Inode& dir) {
  if (journal_ != nullptr) journal_->Cover(DirKey{dir.dev, dir.ino});
}

void Accounting::Account(Inode& inode, int fd, bool ns_held) {
  if (inode.is_dir || !tracking_) return;
  std::shared_lock<std::shared_mutex> ns(ns_mu_, std::defer_lock);
  if (!ns_held) ns.lock();
  InodeFd self;  // before size_mu: ending it takes the table's locks
  if (fd < 0) {
    self = table_.Fd(inode);
    if (!self) return;
    fd = self.get();
  }
  std::lock_guard size_lock(inode.size_mu);
  struct stat st;
  if (::fstat(fd, &st) == 0) AccountSizeLocked(inode, st);
}

void Accounting::SetCounted(Inode& file, uint64_t size) {
  std::lock_guard size_lock(file.size_mu);
  file.accounted_size = size;
}

void Accounting::ResetKernelSize(Inode& inode, uint64_t size) { inode.kernel_size.Reset(size); }

void Accounting::NoteKernelEnd(Inode& inode, uint64_t end) { inode.kernel_size.NoteEnd(end); }

void Accounting::AccountTo(Inode& inode, uint64_t size) {
  if (!tracking_) return;
  std::lock_guard size_lock(inode.size_mu);
  AccountToLocked(inode, size);
}

void Accounting::AccountSizeLocked(Inode& inode, const struct stat& st) {
  const uint64_t before = inode.accounted_size;
  AccountToLocked(inode, static_cast<uint64_t>(st.st_size));
  if (before == inode.accounted_size) return;
  // Names made beside the mount that the table does not know count the old size still.
  LinkFollower* follower = follower_.load();
  if (follower == nullptr || st.st_nlink == 0) return;
  size_t known;
  {
    std::lock_guard lock(table_.mu());
    known = inode.link_count();
  }
  if (known < st.st_nlink) follower->FollowLinks(inode.dev, inode.ino);
}

void Accounting::AccountToLocked(Inode& inode, uint64_t size) {
  const int64_t delta = static_cast<int64_t>(size) - static_cast<int64_t>(inode.accounted_size);
  if (delta == 0) return;
  // Marked already by WillChangeSize for an operation through the mount; a change found
  // beside it (the watcher) is marked here, before the store hears of it.
  MarkLinksLocked(inode);
  inode.accounted_size = size;
  std::vector<Inode*> parents;
  {
    std::lock_guard lock(table_.mu());
    for (LinkRef l : inode.links()) parents.push_back(l.parent);
  }
  for (Inode* p : parents) ApplyDelta(*p, Delta{delta, 0, 0});
}

void Accounting::ApplyDeltaAt(const std::string& dir_path, const Delta& delta) {
  if (delta.empty()) return;
  if (delta.files != 0) NoteEntriesChanged(dir_path);
  Status s = store_.AddDelta(dir_path, delta);
  // A directory the store does not have yet that the mount reached first (moved or made
  // beside the mount, its event still queued): its reconcile scans it as it is now, this
  // change included. The watcher is asked to make sure of it.
  if (s.code() == Status::Code::kNotFound)
    if (EntriesListener* l = entries_listener_.load()) {
      l->Unknown(dir_path);
      s = Status::Ok();
    }
  ReportStoreError(s);
  MaybeRequestCompaction();
}

void Accounting::ApplyOutOfBand(const std::string& dir, const Delta& delta) {
  if (delta.empty() || !tracking_) return;
  MarkDirtyPath(dir);
  ReportStoreError(store_.AddDelta(dir, delta));
  MaybeRequestCompaction();
}

void Accounting::ApplyDelta(Inode& dir, const Delta& delta) {
  if (delta.empty() || !tracking_) return;
  auto p = table_.DirPath(dir);
  if (!p) return;  // the directory is gone; nothing below it is counted any more
  MarkDirty(dir);  // done before the syscall by the operation; a no-op then
  ApplyDeltaAt(*p, delta);
}

void Accounting::MakeDir(Inode& parent, const std::string& name) {
  if (!tracking_) return;
  NoteEntriesChanged("*");
  if (auto p = table_.DirPath(parent)) ReportStoreError(store_.MakeDir(path::Join(*p, name)));
  MaybeRequestCompaction();
}

void Accounting::RemoveDir(Inode& parent, const std::string& name) {
  if (!tracking_) return;
  NoteEntriesChanged("*");
  if (auto p = table_.DirPath(parent)) ReportStoreError(store_.RemoveDir(path::Join(*p, name)));
}

void Accounting::RenameDir(const std::string& from, const std::string& to) {
  if (!tracking_) return;
  NoteEntriesChanged("*");
  if (EntriesListener* l = entries_listener_.load()) l->DirMoved(from, to, false);
  ReportStoreError(store_.RenameDir(from, to));
  MaybeRequestCompaction();  // a big subtree leaves a rename map
}

void Accounting::ExchangeDirs(const std::string& a, const std::string& b) {
  if (!tracking_) return;
  NoteEntriesChanged("*");
  if (EntriesListener* l = entries_listener_.load()) l->DirMoved(a, b, true);
  ReportStoreError(store_.ExchangeDirs(a, b));
  MaybeRequestCompaction();
}

namespace {

// Whether a is d or one of d's ancestors in the table. Caller holds the table's mu().
bool IsAncestorLocked(const Inode& a, const Inode& d) {
  for (const Inode* p = &d; p != nullptr; p = p->parent)
    if (p == &a) return true;
  return false;
}

}  // namespace

Result<ReconcileReport> Accounting::Reconcile(const std::string& root, const std::string& dir,
                                              const Result<DirListing>& listing,
                                              const std::set<std::string>& names,
                                              const std::set<std::string>& rescan,
                                              KernelStale* stale) {
  // The directory's inode, when the mount knows it at this path.
  Inode* d = nullptr;
  if (listing.ok()) {
    bool holds_known = false;  // an inode the mount knows is named in dir now
    {
      std::lock_guard lock(table_.mu());
      Inode* found = table_.FindLocked(listing->dev, listing->ino);
      if (found != nullptr && found->is_dir && !found->opaque &&
          table_.DirPathLocked(*found) == dir) {
        d = found;
        d->refs++;
      }
      for (size_t i = 0; d == nullptr && !holds_known && i < listing->entries.size(); ++i) {
        const ListedEntry& e = listing->entries[i];
        holds_known = table_.FindLocked(e.dev, e.ino) != nullptr;
      }
    }
    // The mount must learn those names (a file it knows, renamed or linked into dir beside
    // it, is written through the mount later): it needs dir's inode for that.
    if (holds_known) {
      int err = 0;
      d = table_.ResolveDir(dir, &err);
      if (d != nullptr && (d->dev != listing->dev || d->ino != listing->ino)) {
        table_.Release(*d);  // replaced meanwhile: the next event says so
        d = nullptr;
      }
    }
  }
  if (d != nullptr) {
    std::unordered_map<std::string_view, const ListedEntry*> on_source;
    for (const ListedEntry& e : listing->entries) on_source.emplace(e.name, &e);
    auto same = [](const ListedEntry* e, const Inode& i) {
      return e != nullptr && e->dev == i.dev && e->ino == i.ino && e->is_dir == i.is_dir;
    };
    // The names the mount knows in d, as they were.
    std::vector<std::pair<std::string, Inode*>> known = table_.HoldChildren(*d);
    std::set<std::pair<std::string_view, const Inode*>> known_names;
    for (auto& [name, child] : known) known_names.emplace(name, child);
    // Inodes the mount knows under another name (or none here) found in d now.
    std::vector<std::pair<const ListedEntry*, Inode*>> arrived;
    {
      std::lock_guard lock(table_.mu());
      for (const ListedEntry& e : listing->entries) {
        Inode* k = table_.FindLocked(e.dev, e.ino);
        if (k == nullptr || k == &table_.root() || k->opaque || k->is_dir != e.is_dir) continue;
        if (known_names.count({e.name, k}) != 0) continue;
        if (k->is_dir && IsAncestorLocked(*k, *d)) continue;  // stale paths; never a cycle
        k->refs++;
        arrived.emplace_back(&e, k);
      }
    }
    // Sizes first, at every link the mount knows, then the names.
    // A file still named here is counted at the listing's size (what the store's part below
    // uses; a write through the mount after the listing is accounted after this); one gone
    // from here at its size now, for the directories of its other names.
    for (auto& [name, child] : known) {
      if (child->is_dir) continue;
      const uint64_t before = child->CountedSize();
      auto it = on_source.find(name);
      if (it != on_source.end() && same(it->second, *child))
        AccountTo(*child, it->second->size);
      else
        Account(*child, -1, /*ns_held=*/true);
      if (child->CountedSize() != before || names.count(name) != 0) stale->inodes.push_back(child);
    }
    for (auto& [e, k] : arrived) {
      if (k->is_dir) continue;
      AccountTo(*k, e->size);
      stale->inodes.push_back(k);
    }
    for (auto& [name, child] : known) {
      if (child->opaque) continue;  // an alias shows nothing of its own
      auto it = on_source.find(name);
      if (same(it == on_source.end() ? nullptr : it->second, *child)) continue;
      stale->entries.emplace_back(d, name);
      stale->inodes.push_back(child);
      if (child->is_dir)
        table_.DetachDir(*child);  // gone, replaced or moved: a later listing may find it
      else
        table_.RemoveLink(*child, *d, name);
    }
    for (auto& [e, k] : arrived) {
      stale->entries.emplace_back(d, e->name);
      if (k->is_dir)
        table_.MoveDir(*k, *d, e->name);
      else
        table_.AddLink(*k, *d, e->name);
    }
    for (const std::string& name : names) stale->entries.emplace_back(d, name);
    stale->inodes.push_back(d);
    std::lock_guard lock(table_.mu());
    for (auto& [name, child] : known) table_.UnrefLocked(child, 1);
    for (auto& [e, k] : arrived) table_.UnrefLocked(k, 1);
  }
  // Files the mount knows (CountScanned), and files with other names (the watcher follows
  // their names).
  auto wants_size = [this](const struct stat& st) {
    if (st.st_nlink > 1) return true;
    return table_.KnowsFile(st.st_dev, st.st_ino);
  };
  // Found beside the mount: dir is marked before the store hears of a change in it (a crash
  // before the mark leaves it to the verification that follows every mount from an index).
  auto mark = [&]() -> Status {
    if (journal_ == nullptr) return Status::Ok();
    DTKFS_RETURN_IF_ERROR(journal_->MarkDirtyPath(dir));
    for (const std::string& name : rescan)
      DTKFS_RETURN_IF_ERROR(journal_->MarkReplaced(path::Join(dir, name)));
    return Status::Ok();
  };
  auto report = dtkfs::Reconcile(store_, root, dir, listing, rescan, wants_size, mark);
  // Subtrees scanned whole count their files at the scan's sizes: files the mount knows in
  // them (a known directory moved here) are counted at those sizes from now on, and their
  // names outside the subtree follow.
  if (report.ok() && d != nullptr && !report->added.empty()) CountScanned(*d, *report, stale);
  if (d != nullptr) table_.Release(*d);
  if (report.ok() && report->changed()) MaybeRequestCompaction();
  return report;
}

void Accounting::CountScanned(Inode& d, const ReconcileReport& report, KernelStale* stale) {
  std::map<std::pair<dev_t, ino_t>, uint64_t> scanned;
  for (const ScannedSize& s : report.sizes) scanned[{s.dev, s.ino}] = s.size;
  std::set<const Inode*> inside;  // the known directories of the added subtrees
  std::vector<Inode*> files;
  {
    std::lock_guard lock(table_.mu());
    std::vector<Inode*> dirs;
    if (d.children && !report.added.empty()) {
      std::set<std::string_view> added;
      for (const std::string& a : report.added) added.insert(path::Basename(a));
      for (Inode* child : *d.children)
        if (child->is_dir && added.count(child->name) != 0) dirs.push_back(child);
    }
    while (!dirs.empty()) {
      Inode* dir_inode = dirs.back();
      dirs.pop_back();
      inside.insert(dir_inode);
      if (!dir_inode->children) continue;
      for (Inode* child : *dir_inode->children) {
        if (child->is_dir) {
          dirs.push_back(child);
        } else {
          child->refs++;
          files.push_back(child);
        }
      }
    }
  }
  for (Inode* f : files) {
    auto it = scanned.find({f->dev, f->ino});
    if (it != scanned.end()) {
      std::lock_guard size_lock(f->size_mu);
      const int64_t delta =
          static_cast<int64_t>(it->second) - static_cast<int64_t>(f->accounted_size);
      f->accounted_size = it->second;
      std::vector<Inode*> outside;
      {
        std::lock_guard lock(table_.mu());
        for (LinkRef l : f->links())
          if (inside.count(l.parent) == 0) outside.push_back(l.parent);
      }
      for (Inode* p : outside) ApplyDelta(*p, Delta{delta, 0, 0});
    }
    stale->inodes.push_back(f);
  }
  std::lock_guard lock(table_.mu());
  for (Inode* f : files) table_.UnrefLocked(f, 1);
}

std::vector<std::string> Accounting::KnownLinkDirs(dev_t dev, ino_t ino) {
  std::vector<std::string> out;
  std::lock_guard lock(table_.mu());
  Inode* k = table_.FindLocked(dev, ino);
  if (k == nullptr || k->is_dir) return out;
  for (LinkRef l : k->links())
    if (auto p = table_.DirPathLocked(*l.parent)) out.push_back(*p);
  return out;
}

void Accounting::ReportStoreError(const Status& s) {
  if (!s.ok()) log::Error("size store: {}", s.message());
  suspect_.Record(s);
}

void Accounting::MaybeRequestCompaction() {
  CompactionWaker* waker = waker_.load();
  // Rename maps make every lookup and merge below them a little slower (the store's
  // rename_levels()): a few are folded in early, like a full overlay.
  constexpr size_t kRenameLevels = 8;
  if (waker != nullptr &&
      (store_.active_size() > compact_threshold_ || store_.rename_levels() >= kRenameLevels))
    waker->Wake();
}

}  // namespace dtkfs::fs
