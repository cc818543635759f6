// Reconcile: the one primitive that makes the size store agree with the source about one
// directory (DESIGN-BRIEF section 9). Changes made beside the mount, or while it was down,
// reach the store only through it; its triggers (a watcher, crash recovery, verification)
// come with the out-of-band issue.
//
// Reconcile(D) lists D on the source and makes the store's view of D's direct entries equal
// to it: D's own bytes and files (its total minus its subdirectories'), and the set of its
// subdirectories (new ones are scanned whole with the scanner's walk and added, vanished ones
// removed), adjusting every ancestor. It does not look inside subdirectories that exist on
// both sides (their own reconcile does). It is idempotent: a second run finds nothing to do.
// A D that is gone from the source is removed from the store.
//
// Thread-safety: each store change is atomic, but the listing and the changes are not one
// step: a caller that must not race other changes to D (the mount) holds its namespace lock.
// Counted sizes of inodes the mount knows are the mount's to update (fs layer).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "scan/scanner.h"
#include "store/size_store.h"
#include "util/status.h"

namespace dtkfs {

struct ReconcileReport {
  Delta own;                       // what D's own bytes and files changed by
  uint64_t dirs_added = 0;         // subdirectories scanned and added
  std::vector<std::string> added;  // their store paths
  std::vector<ScannedSize> sizes;  // wants_size's files, as the scans of added counted them
  uint64_t dirs_removed = 0;       // subdirectories gone from the source
  bool gone = false;               // D itself is gone from the source (and from the store)
  bool changed() const { return !own.empty() || dirs_added || dirs_removed || gone; }
};

// root: the source's canonical path; dir: the store path of a directory the store knows.
// NotFound when the store does not know dir (reconcile its parent instead).
Result<ReconcileReport> Reconcile(SizeStore& store, const std::string& root, std::string_view dir);
// The same with dir's listing already made (scanner.h ListDirectoryAt; NotFound: dir is gone).
// rescan: names of subdirectories to scan again whole even when the store has them (a
// directory moved over one of the same name).
// wants_size: files whose size the scans of new subtrees should report (ScanOptions).
// before_change: called once before the first change to the store (the mount's journal
// mark); its failure stops the reconcile with nothing changed.
Result<ReconcileReport> Reconcile(SizeStore& store, const std::string& root, std::string_view dir,
                                  const Result<DirListing>& listing,
                                  const std::set<std::string>& rescan = {},
                                  const std::function<bool(const struct stat&)>& wants_size = {},
                                  const std::function<Status()>& before_change = {});

}  // namespace dtkfs
