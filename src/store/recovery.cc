#include "store/recovery.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "index/index_reader.h"
#include "scan/nested_mounts.h"
#include "scan/scanner.h"
#include "store/reconcile.h"
#include "util/kill_point.h"
#include "util/path.h"

namespace dtkfs {

std::string RecoveryReport::Summary() const {
  return fmt::format(
      "recovered from journal generations {}..{}: {} directories reconciled ({} changed, {} "
      "scanned whole, {} gone) in {:.3f} s{}",
      first_generation, last_generation, reconciled, changed, rescanned, removed, seconds,
      torn ? "; a torn record at a journal's end was ignored" : "");
}

Result<RecoveryReport> RecoverFromJournal(SizeStore& store, const std::string& root,
                                          const JournalSet& journals) {
  const auto t0 = std::chrono::steady_clock::now();
  RecoveryReport report;
  // Each marked directory once, with the names below it to scan whole.
  std::map<std::string, std::set<std::string>> dirs;
  for (const JournalFile& f : journals.pending) {
    if (report.first_generation == 0) report.first_generation = f.generation;
    report.last_generation = f.generation;
    report.records += f.records.size();
    report.torn |= f.torn;
    for (const JournalRecord& r : f.records) {
      if (r.type == JournalRecord::Type::kDirty) {
        dirs[r.path];
      } else if (!path::IsRoot(r.path)) {
        dirs[std::string(path::Parent(r.path))].insert(std::string(path::Basename(r.path)));
      }
    }
  }
  // Shallow first: a directory gone or replaced takes what was recorded below it along, and
  // a deeper one found again afterwards is reconciled against what is there now.
  std::vector<const std::pair<const std::string, std::set<std::string>>*> order;
  for (const auto& d : dirs) order.push_back(&d);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    const size_t da = path::Depth(a->first), db = path::Depth(b->first);
    return da != db ? da < db : a->first < b->first;
  });
  const int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Status::FromErrno(errno, "open", root);
  struct stat root_st;
  if (::fstat(root_fd, &root_st) != 0) {
    ::close(root_fd);
    return Status::FromErrno(errno, "stat", root);
  }
  std::set<std::string> aliases;
  if (auto mounts = NestedMounts::Load(root); mounts.ok()) aliases = mounts->alias_paths();
  const std::shared_ptr<const IndexReader> base = store.base();
  // Whether the link table holds every name of a file listed at path with nlink names.
  auto links_known = [&](const ListedEntry& e, const std::string& path) {
    if (e.is_dir || e.nlink <= 1) return true;
    if (!base) return false;
    auto rec = base->links().Find(
        LinkKey{static_cast<uint64_t>(e.dev ^ root_st.st_dev), static_cast<uint64_t>(e.ino)});
    return rec && rec->paths.size() == e.nlink &&
           std::find(rec->paths.begin(), rec->paths.end(), path) != rec->paths.end();
  };
  auto several_names = [](const struct stat& st) { return st.st_nlink > 1; };
  for (const auto* d : order) {
    // Not in the store: made after the index was written, under a directory whose own
    // mark (reconciled before it) scanned it whole; or gone with an ancestor.
    if (!store.Lookup(d->first)) continue;
    auto listing = ListDirectoryAt(root_fd, d->first, aliases, /*with_entries=*/true);
    if (listing.ok())
      for (const ListedEntry& e : listing->entries)
        report.links_unknown |= !links_known(e, path::Join(d->first, e.name));
    auto r = Reconcile(store, root, d->first, listing, d->second, several_names);
    if (!r.ok()) {
      ::close(root_fd);
      return r.status().WithContext("recovery");
    }
    report.links_unknown |= !r->sizes.empty();  // a new subtree holds a file of several names
    ++report.reconciled;
    report.changed += r->changed() ? 1 : 0;
    report.rescanned += r->dirs_added;
    report.removed += r->dirs_removed + (r->gone ? 1 : 0);
  }
  ::close(root_fd);
  DTKFS_KILL_POINT("recovery.after-reconcile");
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace dtkfs
