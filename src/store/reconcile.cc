#include "store/reconcile.h"

#include <fmt/format.h>

#include <map>

#include "scan/scanner.h"
#include "util/path.h"

namespace dtkfs {

Result<ReconcileReport> Reconcile(SizeStore& store, const std::string& root, std::string_view dir) {
  ReconcileReport report;
  const auto stored = store.Lookup(dir);
  if (!stored) return Status::NotFound(fmt::format("reconcile {}: not in the size store", dir));
  auto listing = ListOneDirectory(root, std::string(dir));
  if (!listing.ok()) {
    if (listing.status().code() != Status::Code::kNotFound) return listing.status();
    if (path::IsRoot(dir)) return listing.status();  // the source itself is gone: say so
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
  for (const auto& [name, t] : stored_subdirs) {
    if (on_source.count(name) != 0) continue;
    DTKFS_RETURN_IF_ERROR(store.RemoveDir(path::Join(dir, name)));
    ++report.dirs_removed;
  }
  for (const std::string& name : listing->subdirs) {
    if (stored_subdirs.count(name) != 0) continue;
    const std::string sub = path::Join(dir, name);
    auto scan = ScanTree(root, sub, ScanOptions{});
    if (!scan.ok()) {
      if (scan.status().code() == Status::Code::kNotFound) continue;  // gone again meanwhile
      return scan.status();
    }
    DTKFS_RETURN_IF_ERROR(store.AddSubtree(sub, scan->dirs));
    ++report.dirs_added;
  }

  report.own = Delta{static_cast<int64_t>(listing->bytes) - own.bytes,
                     static_cast<int64_t>(listing->files) - own.files, 0};
  if (!report.own.empty()) DTKFS_RETURN_IF_ERROR(store.AddDelta(dir, report.own));
  return report;
}

}  // namespace dtkfs
