// SizeStore: the live totals of every directory of one source tree (DESIGN-BRIEF section 4).
//
//   reads:  active overlay -> frozen levels (newest first) -> base index (mmap)
//   writes: the changed directory and all its ancestors, into the active overlay, under one
//           exclusive lock, so a reader never sees a half-applied change.
//
// The frozen levels are overlays a compaction froze and rename maps (overlay.h). A rename
// or exchange of a big subtree does not rewrite its entries (paths are the keys): it freezes
// the active overlay, pushes a rename map and starts a new active overlay, so it holds the
// lock for O(depth) work whatever the subtree's size (plus counting the subtree up to the
// threshold). Lookups and merges read through the maps; compaction folds them into the next
// index. Small subtrees (SetRenameMapThreshold) are still rewritten in place, which keeps
// the levels few for everyday renames.
//
// Values in the overlays are absolute totals (not deltas), so an overlay entry stays right
// whatever base it is read over; tombstones hide deleted directories.
// Compaction (compactor.h) freezes the active overlay, merges base + frozen levels into a new
// file and publishes it; the store's meaning never changes along the way.
//
// Thread-safety: all public methods are safe from any thread. Lock: mu_ (shared for reads,
// exclusive for writes, freeze and publish; held for one update, never across I/O).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dtkfs/totals.h"
#include "index/index_reader.h"
#include "store/overlay.h"

namespace dtkfs {

class SizeStore {
 public:
  explicit SizeStore(std::shared_ptr<const IndexReader> base);

  // RenameDir and ExchangeDirs rewrite up to this many moved entries in place; more, and
  // they push a rename map instead. A rewrite costs about 1.6 us an entry (the 100k rename
  // in size_store_test), so this keeps an in-place rename within a few milliseconds.
  static constexpr size_t kDefaultRenameMapThreshold = 1024;
  // 0: every rename and exchange pushes a map (tests use it to exercise the maps).
  void SetRenameMapThreshold(size_t entries);

  std::optional<Totals> Lookup(std::string_view dir) const;
  // Whether what a crash now would leave for recovery to start from may hold dir: the
  // index on disk (the base), or the base merged with the frozen levels under a freeze (a
  // compaction in flight or failing), each read under its own names (dir itself, not mapped
  // through the rename maps above it nor hidden by a tombstone above it).
  bool Persisted(std::string_view dir) const;

  // A non-directory entry directly inside dir changed (created, removed, resized): applies
  // delta to dir and every ancestor. NotFound if dir is unknown.
  Status AddDelta(std::string_view dir, const Delta& delta);
  // A new empty directory. Its parent must exist and it must not.
  Status MakeDir(std::string_view path);
  // Removes path and everything recorded below it, taking their totals off the ancestors.
  Status RemoveDir(std::string_view path);
  // Moves the subtree at from to to (which must not exist); both ancestor chains adjust.
  // O(depth) under the lock for a subtree of any size (a rename map, see above).
  Status RenameDir(std::string_view from, std::string_view to);

  // A whole subtree found on the source (a directory made beside the mount, reconcile.h):
  // entries are the directory at path (first) and everything below it, with their totals,
  // keyed by store path (ScanTree's result for path). path must not exist; its parent must.
  Status AddSubtree(std::string_view path,
                    const std::vector<std::pair<std::string, Totals>>& entries);

  // Swaps the subtrees at a and b (rename with RENAME_EXCHANGE of two directories); like
  // RenameDir, O(depth) under the lock whatever their size.
  Status ExchangeDirs(std::string_view a, std::string_view b);

  // Entries strictly below dir, in path order (children only if max_depth == 1; 0 = all).
  // Copies under the shared lock, so fn may take its time.
  std::vector<std::pair<std::string, Totals>> ListBelow(std::string_view dir,
                                                        size_t max_depth) const;

  struct Stats {
    size_t base_entries = 0;
    size_t active_entries = 0;
    size_t frozen_entries = 0;  // in frozen overlays
    size_t rename_levels = 0;   // rename maps not yet compacted (rename_levels())
    size_t frozen_levels = 0;   // frozen overlays and rename maps
    uint64_t generation = 0;
    std::string base_path;
  };
  Stats GetStats() const;
  // The index being served (null before the first one).
  std::shared_ptr<const IndexReader> base() const;
  // True when a compaction has something to write: overlay entries, a changed multi-link
  // table (NoteLinksChanged), or a base whose file another process changed while mapped.
  bool dirty() const;
  // The mount's multi-link table changed (a link added, removed or renamed) in a way the
  // totals may not show: the next compaction must run even if no total changed.
  void NoteLinksChanged();
  size_t active_size() const;
  // Rename maps not yet folded into the index. Every lookup walks them, so the mount should
  // ask for a compaction when they pile up (as it does when active_size() grows).
  size_t rename_levels() const;

  // --- for the Compactor only ---
  struct Snapshot {
    std::shared_ptr<const IndexReader> base;
    std::vector<FrozenLevel> frozen;  // newest first: overlays and rename maps
    bool links_changed = false;       // a NoteLinksChanged came before this freeze
    Levels levels() const;
  };
  // Moves the active overlay (if not empty) to the frozen list and returns base + frozen.
  // When compactions keep failing (a full disk), each retry freezes one more overlay: past
  // kMaxFrozenLevels, adjacent frozen overlays are merged into one, so lookups do not walk
  // an unbounded list and memory holds each path once.
  Snapshot Freeze();
  static constexpr size_t kMaxFrozenLevels = 4;
  // Installs new_base, which must contain everything in snapshot, and drops the snapshot's
  // frozen levels (overlays and rename maps). Levels pushed since the freeze stay, above the
  // new base, which holds the namespace they were written over.
  void Publish(std::shared_ptr<const IndexReader> new_base, const Snapshot& snapshot);

 private:
  // The helpers below expect mu_ held (shared for reads, exclusive for writes).
  std::optional<Totals> LookupLocked(std::string_view dir) const;
  bool PersistedLocked(std::string_view dir) const;  // live in the levels under the active one
  void PutLocked(std::string_view dir, const OverlayValue& value);
  void EraseLocked(std::string_view dir);
  Status ApplyToChainLocked(std::string_view dir, const Delta& delta, std::string_view op);
  Levels LevelsLocked() const;
  // The entries of dir and everything below it (dir first), from all levels.
  std::vector<std::pair<std::string, Totals>> CollectSubtreeLocked(std::string_view dir) const;
  // Erases entries and re-puts them with the prefix from replaced by to.
  void MoveEntriesLocked(const std::vector<std::pair<std::string, Totals>>& entries,
                         std::string_view from, std::string_view to);
  // The number of entries of dir and below it, counted up to limit + 1 (enough to tell that
  // there are more than limit).
  size_t CountSubtreeLocked(std::string_view dir, size_t limit) const;
  // Freezes the active overlay (if not empty) under a rename map of entries and starts a new
  // one, so what is written from now on is named by the map.
  void PushRenameMapLocked(std::vector<RenameMap::Entry> entries);
  // Merges every run of adjacent frozen overlays (no rename map between) into one overlay.
  void MergeFrozenOverlaysLocked();

  mutable std::shared_mutex mu_;  // guards everything below
  std::shared_ptr<const IndexReader> base_;
  std::vector<FrozenLevel> frozen_;  // newest first: overlays and rename maps
  std::shared_ptr<Overlay> active_;
  size_t rename_map_threshold_ = kDefaultRenameMapThreshold;
  // NoteLinksChanged since the last freeze / frozen and not yet published (like the overlays).
  bool links_active_ = false;
  bool links_frozen_ = false;
};

}  // namespace dtkfs
