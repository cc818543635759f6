// The levels of the size store and the one merge over them.
//
// Overlay: the in-memory level, an ordered map from directory path to its current totals or
// a tombstone. Ordered (not hashed) so a subtree is one range and compaction is a linear
// merge (LevelDB's memtable is a skiplist for the same reason).
//
// RenameMap: a subtree rename recorded as a level of its own instead of a rewrite of every
// path below it (the paths are the keys). A path in the levels above the map is found in the
// levels below it under its old name, or not at all when the map hides it. It costs O(1)
// however big the subtree; compaction folds it into the next index.
//
// MergedRange walks the levels (overlays and rename maps, newest first, then the base) as
// one sorted stream, newest value winning, tombstones hiding older ones and rename maps
// renaming what lies below them. It is the one merge in dtkfs: compaction, subtree removal
// and renames, listings and `top` all use it. LookupBelow is its point-lookup twin.
//
// Thread-safety: an Overlay is mutated only under SizeStore's exclusive lock; a frozen
// overlay and a RenameMap are immutable and may be read by any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dtkfs/totals.h"
#include "index/index_reader.h"

namespace dtkfs {

struct OverlayValue {
  Totals totals;
  bool tombstone = false;
};

using Overlay = std::map<std::string, OverlayValue, std::less<>>;

// rename from -> to:  {to <- from, from <- hidden}
// exchange a <-> b:   {a <- b, b <- a}
class RenameMap {
 public:
  struct Entry {
    std::string new_prefix;                 // a directory as named above the map, never ""
    std::optional<std::string> old_prefix;  // its name below the map; nullopt: hidden
  };
  // entries must be disjoint: no new_prefix the same as, or below, another. Paths outside
  // every new_prefix keep their name.
  explicit RenameMap(std::vector<Entry> entries);

  const std::vector<Entry>& entries() const { return entries_; }

  // Where path p (named above the map) is found below it: p itself, a name written to *buf
  // (p may point into *buf), or nowhere (nullopt).
  std::optional<std::string_view> MapDown(std::string_view p, std::string* buf) const;

  // The keys the map renames or hides, as disjoint ranges [lo, hi) in key order: for each
  // entry its directory [d, d"\0") and, apart from it ("d!" sorts between), the range below
  // it [d"/", d"0").
  struct Region {
    std::string lo, hi;
    size_t entry;  // index into entries()
  };
  const std::vector<Region>& regions() const { return regions_; }

 private:
  std::vector<Entry> entries_;
  std::vector<Region> regions_;
};

// A level under the active overlay: exactly one of the two is set.
struct FrozenLevel {
  std::shared_ptr<const Overlay> overlay;
  std::shared_ptr<const RenameMap> renames;
  friend bool operator==(const FrozenLevel&, const FrozenLevel&) = default;
};

// The levels to merge, newest first (each an overlay or a rename map), then an optional
// base index.
struct Levels {
  struct Level {
    const Overlay* overlay = nullptr;
    const RenameMap* renames = nullptr;
  };
  std::vector<Level> levels;
  const IndexReader* base = nullptr;
};

// Calls fn(path, totals) for every live entry with lo <= path < hi (hi == nullopt: no upper
// bound), in path order. fn returns false to stop early. Streams: memory does not grow with
// the range.
void MergedRange(const Levels& levels, std::string_view lo, std::optional<std::string_view> hi,
                 const std::function<bool(std::string_view, const Totals&)>& fn);

// The totals of path (named above all of frozen) in frozen (newest first) over base, or
// nullopt when absent, deleted or hidden by a rename.
std::optional<Totals> LookupBelow(const std::vector<FrozenLevel>& frozen, const IndexReader* base,
                                  std::string_view path);
// The same over frozen[first..] only (path named above frozen[first]).
std::optional<Totals> LookupBelow(const std::vector<FrozenLevel>& frozen, size_t first,
                                  const IndexReader* base, std::string_view path);

// The [lo, hi) keys of the entries strictly below dir. Not contiguous with dir itself:
// "dir!" sorts between dir and "dir/".
struct KeyRange {
  std::string lo;
  std::optional<std::string> hi;
};
KeyRange StrictlyBelow(std::string_view dir);

}  // namespace dtkfs
