#include "store/reconcile.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "util/path.h"

namespace dtkfs {

Result<ReconcileReport> Reconcile(SizeStore& store, const std::string& root, std::string_view dir) {
  if (!store.Lookup(dir))
    return Status::NotFound(fmt::format("reconcile {}: not in the size store", dir));
  return Reconcile(store, root, dir, ListOneDirectory(root, std::string(dir)));
}

Result<ReconcileReport> Reconcile(SizeStore& store, const std::string& root, std::string_view dir,
                                  const Result<DirListing>& listing,
                                  const std::set<std::string>& rescan,
                                  const std::function<bool(const struct stat&)>& wants_size,
                                  const std::function<Status()>& before_change) {
  ReconcileReport report;
  bool announced = false;
  auto announce = [&]() -> Status {
    if (announced || !before_change) return Status::Ok();
    announced = true;
    return before_change();
  };
  const auto stored = store.Lookup(dir);
  if (!stored) return Status::NotFound(fmt::format("reconcile {}: not in the size store", dir));
  if (!listing.ok()) {
    if (listing.status().code() != Status::Code::kNotFound) return listing.status();
    if (path::IsRoot(dir)) return listing.status();  // the source itself is gone: say so
    DTKFS_RETURN_IF_ERROR(announce());
    DTKFS_RETURN_IF_ERROR(store.RemoveDir(dir));
    report.gone = true;
    return report;
  }

  // The store's view of dir's direct entries: its subdirectories, and its own part (its total
  // minus what the subdirectories contribute).
  std::map<std::string, Totals> stored_subdirs;
  for (auto& [p, t] : store.ListBelow(dir, 1))
    stored_subdirs.emplace(std::string(path::Basename(p)), t);
  Delta own{static_cast<int64_t>(stored->bytes), static_cast<int64_t>(stored->files), 0};
  for (const auto& [name, t] : stored_subdirs) {
    const Delta c = SubtreeContribution(t);
    own.bytes -= c.bytes;
    own.files -= c.files;
  }

  std::map<std::string, bool> on_source;
  for (const std::string& name : listing->subdirs) on_source.emplace(name, true);
  // Subdirectories whose name stayed but whose directory may be another one.
  std::set<std::string> replaced;
  for (const std::string& name : rescan)
    if (on_source.count(name) != 0 && stored_subdirs.count(name) != 0) replaced.insert(name);
  for (const auto& [name, t] : stored_subdirs) {
    if (on_source.count(name) != 0 && replaced.count(name) == 0) continue;
    DTKFS_RETURN_IF_ERROR(announce());
    DTKFS_RETURN_IF_ERROR(store.RemoveDir(path::Join(dir, name)));
    ++report.dirs_removed;
  }
  for (const std::string& name : listing->subdirs) {
    if (stored_subdirs.count(name) != 0 && replaced.count(name) == 0) continue;
    const std::string sub = path::Join(dir, name);
    ScanOptions options;
    options.wants_size = wants_size;
    auto scan = ScanTree(root, sub, options);
    if (!scan.ok()) {
      const int err = scan.status().errno_value();
      if (scan.status().code() == Status::Code::kNotFound || err == ENOENT || err == ENOTDIR ||
          err == ELOOP)
        continue;  // gone (or no directory) again meanwhile: its own event says so
      return scan.status();
    }
    DTKFS_RETURN_IF_ERROR(announce());
    DTKFS_RETURN_IF_ERROR(store.AddSubtree(sub, scan->dirs));
    ++report.dirs_added;
    report.added.push_back(sub);
    report.sizes.insert(report.sizes.end(), scan->sizes.begin(), scan->sizes.end());
  }

  report.own = Delta{static_cast<int64_t>(listing->bytes) - own.bytes,
                     static_cast<int64_t>(listing->files) - own.files, 0};
  if (!report.own.empty()) {
    DTKFS_RETURN_IF_ERROR(announce());
    DTKFS_RETURN_IF_ERROR(store.AddDelta(dir, report.own));
  }
  return report;
}

}  // namespace dtkfs
