#include "fs/link_tracker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "fs/credentials.h"
#include "util/beneath.h"
#include "util/path.h"

namespace dtkfs::fs {
namespace {

// Errors that mean a name from the link table no longer leads where it did (changed beside
// the mount), as opposed to failures to look (EMFILE, EACCES, ENOMEM, ...), which must not be
// mistaken for a vanished name.
bool Vanished(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP || err == ESTALE; }

}  // namespace

LinkTracker::LinkTracker(InodeTable& table, SizeStore& store) : table_(table), store_(store) {}

LinkKey LinkTracker::TableKey(dev_t dev, ino_t ino) const {
  return LinkKey{static_cast<uint64_t>(dev) ^ static_cast<uint64_t>(table_.root().dev),
                 static_cast<uint64_t>(ino)};
}

LinkTracker::FileKey LinkTracker::KeyOf(const LinkKey& k) const {
  return FileKey{static_cast<dev_t>(k.dev ^ static_cast<uint64_t>(table_.root().dev)),
                 static_cast<ino_t>(k.ino)};
}

void LinkTracker::OnPinned(const Inode& file) { claimed_.insert(FileKey{file.dev, file.ino}); }

void LinkTracker::OnLinksChanged() { store_.NoteLinksChanged(); }

std::optional<LinkRecord> LinkTracker::UnclaimedRecord(dev_t dev, ino_t ino) {
  {
    std::lock_guard lock(table_.mu());
    if (table_.FindLocked(dev, ino) != nullptr || claimed_.count(FileKey{dev, ino}) != 0)
      return std::nullopt;
  }
  auto base = store_.base();
  if (!base) return std::nullopt;
  return base->links().Find(TableKey(dev, ino));
}

int LinkTracker::ResolveRecord(const LinkRecord& record, TableLinks* found) {
  // As the daemon: the index's recorded names are its bookkeeping, and lead through
  // directories the caller of the operation that met the file may not search.
  AsDaemon as_daemon;
  found->size = record.size;
  const FileKey key = KeyOf(record.key);
  for (const std::string& p : record.paths) {
    int err = 0;
    Inode* dir = table_.ResolveDir(path::Parent(p), &err);
    if (dir == nullptr) {
      if (Vanished(err)) continue;
      return err;
    }
    found->held.push_back(dir);
    std::string name(path::Basename(p));
    InodeFd dir_fd = table_.Fd(*dir);
    if (!dir_fd) {
      if (Vanished(dir_fd.error())) continue;
      return dir_fd.error();
    }
    struct stat now;
    if (::fstatat(dir_fd.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
      if (Vanished(errno)) continue;
      return errno;
    }
    if (now.st_dev == key.dev && now.st_ino == key.ino)
      found->links.push_back(Link{dir, std::move(name)});
  }
  return 0;
}

void LinkTracker::ReleaseLocked(TableLinks& found) {
  for (Inode* dir : found.held) table_.UnrefLocked(dir, 1);
  found.held.clear();
}

void LinkTracker::ClaimLocked(Inode& inode, bool created, TableLinks& found) {
  if (created) {
    // First meeting: the table knows every name and what the store counts for each.
    claimed_.insert(FileKey{inode.dev, inode.ino});
    inode.accounted_size = found.size;
    for (Link& l : found.links)
      if (!inode.HasLink(*l.parent, l.name))
        table_.AddLinkLocked(inode, *l.parent, l.name, /*notify=*/false);
  }
  ReleaseLocked(found);
}

int LinkTracker::AdoptLinksBelow(Inode& parent, const std::string& name) {
  auto base = store_.base();
  if (!base || base->links().empty()) return 0;
  auto dir = table_.DirPath(parent);
  if (!dir) return 0;
  const LinkTableView& table = base->links();
  for (size_t i : table.RecordsBelow(path::Join(*dir, name))) {
    const FileKey key = KeyOf(table.key_at(i));
    if (auto record = UnclaimedRecord(key.dev, key.ino))
      if (int err = Adopt(*record); err != 0) return err;
  }
  return 0;
}

int LinkTracker::Adopt(const LinkRecord& record) {
  // As the daemon: the recorded names may pass directories the caller of the operation that
  // moves them (a rename of an ancestor) may not search, which natively does not matter.
  AsDaemon as_daemon;
  const FileKey key = KeyOf(record.key);
  TableLinks found;
  int err = ResolveRecord(record, &found);
  int fd = -1;
  struct stat st;
  if (err == 0 && !found.links.empty()) {
    const Link& first = found.links.front();
    if (InodeFd dir = table_.Fd(*first.parent)) {
      fd = table_.OpenAt(dir.get(), first.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    } else {
      errno = dir.error();
    }
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
  std::lock_guard lock(table_.mu());
  if (err != 0) {
    ReleaseLocked(found);
    return err;
  }
  if (fd < 0) {
    // No recorded name leads to the file any more (changed beside the mount): there is
    // nothing left to follow.
    claimed_.insert(key);
    ReleaseLocked(found);
    return 0;
  }
  bool created;
  const Link first = found.links.front();
  Inode* inode =
      table_.FindOrCreateLocked(fd, st, DirMount{}, *first.parent, first.name.c_str(), &created);
  ClaimLocked(*inode, created, found);
  if (!created) ::close(fd);
  table_.UnrefLocked(inode, 0);  // kept only while pinned (two or more names)
  return 0;
}

void LinkTracker::MovePaths(ObservedLinks& links, const std::string& from, const std::string& to,
                            bool exchange) {
  auto below = [](const std::string& p, const std::string& dir) {
    return p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/';
  };
  for (auto& [key, seen] : links) {
    std::map<std::string, uint64_t> moved;
    for (auto& [p, counted] : seen.names) {
      if (below(p, from))
        moved.emplace(to + p.substr(from.size()), counted);
      else if (exchange && below(p, to))
        moved.emplace(from + p.substr(to.size()), counted);
      else
        moved.emplace(p, counted);
    }
    seen.names.swap(moved);
  }
}

void LinkTracker::NoteObserved(ObservedLinks observed) {
  std::lock_guard lock(observed_mu_);
  for (auto& [key, seen] : observed) observed_[key] = std::move(seen);
}

LinkTracker::Captured LinkTracker::Capture(const IndexReader* base) {
  const LinkTableView* table = base != nullptr ? &base->links() : nullptr;
  Captured out;
  std::vector<Inode*> pinned;
  {
    std::lock_guard lock(table_.mu());
    pinned = table_.PinnedLocked();
    // A claim only hides the index's record: without one (and not pinned, so not written
    // below) it means nothing, in this index or the one written now.
    std::erase_if(claimed_, [&](const FileKey& k) {
      const Inode* inode = table_.FindLocked(k.dev, k.ino);
      if (inode != nullptr && inode->link_count() >= 2) return false;
      return table == nullptr || !table->Contains(TableKey(k.dev, k.ino));
    });
    for (size_t i = 0; table != nullptr && i < table->size(); ++i)
      if (claimed_.count(KeyOf(table->key_at(i))) == 0) out.carried.push_back(i);
  }
  // Files seen beside the mount: the names that still lead to them, when two or more do and
  // the store counts one size at each; either way the index's record for them goes.
  ObservedLinks observed;
  {
    std::lock_guard lock(observed_mu_);
    observed.swap(observed_);
  }
  std::set<LinkKey> replaced;
  for (auto& [file, seen] : observed) {
    {
      std::lock_guard lock(table_.mu());
      const Inode* inode = table_.FindLocked(file.first, file.second);
      if (inode != nullptr && inode->link_count() >= 2) continue;  // pinned: written below
    }
    LinkRecord r;
    r.key = TableKey(file.first, file.second);
    replaced.insert(r.key);
    // The size the store counts at each name once the watcher applied what it saw: the
    // size now (a timer compaction may run ahead of queued events; the final one, after
    // them all, is the one the next mount reads).
    for (const auto& [p, counted] : seen.names) {
      struct stat st;
      if (StatBeneath(table_.root().fd, p, &st) != 0 || st.st_dev != file.first ||
          st.st_ino != file.second)
        continue;
      r.size = static_cast<uint64_t>(st.st_size);
      r.paths.push_back(p);
    }
    if (r.paths.size() < 2) continue;
    out.records.push_back(std::move(r));
  }
  std::erase_if(out.carried, [&](size_t i) { return replaced.count(table->key_at(i)) != 0; });
  for (Inode* inode : pinned) {
    LinkRecord r;
    r.key = TableKey(inode->dev, inode->ino);
    r.size = inode->CountedSize();
    std::lock_guard lock(table_.mu());
    for (LinkRef l : inode->links())
      if (auto dir = table_.DirPathLocked(*l.parent)) r.paths.push_back(path::Join(*dir, l.name));
    std::sort(r.paths.begin(), r.paths.end());
    if (r.paths.size() >= 2) out.records.push_back(std::move(r));
  }
  return out;
}

std::string LinkTracker::Encode(Captured captured, const IndexReader* base) {
  std::vector<LinkRecord>& records = captured.records;
  for (size_t i : captured.carried) records.push_back(base->links().at(i));
  std::sort(records.begin(), records.end(),
            [](const LinkRecord& a, const LinkRecord& b) { return a.key < b.key; });
  return EncodeLinkTable(records);
}

}  // namespace dtkfs::fs
