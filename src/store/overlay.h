// Overlay: the in-memory level of the size store, an ordered map from directory path to its
// current totals or a tombstone. Ordered (not hashed) so a subtree is one range and
// compaction is a linear merge (LevelDB's memtable is a skiplist for the same reason).
//
// MergedRange walks base + overlays as one sorted stream, newest value winning and
// tombstones hiding older ones. It is the one merge in dtkfs: compaction, subtree renames,
// `top` and (later) recovery all use it.
//
// Thread-safety: an Overlay is mutated only under SizeStore's exclusive lock; a frozen
// overlay is immutable and may be read by any thread.
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

// The levels to merge: overlays newest first, then an optional base index.
struct Levels {
  std::vector<const Overlay*> overlays;
  const IndexReader* base = nullptr;
};

// Calls fn(path, totals) for every live entry with lo <= path < hi (hi == nullopt: no upper
// bound), in path order. fn returns false to stop early.
void MergedRange(const Levels& levels, std::string_view lo, std::optional<std::string_view> hi,
                 const std::function<bool(std::string_view, const Totals&)>& fn);

// The [lo, hi) keys of the entries strictly below dir.
struct KeyRange {
  std::string lo;
  std::optional<std::string> hi;
};
KeyRange StrictlyBelow(std::string_view dir);

}  // namespace dtkfs
