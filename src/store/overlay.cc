#include "store/overlay.h"

namespace dtkfs {

KeyRange StrictlyBelow(std::string_view dir) {
  if (dir.empty()) return KeyRange{std::string(1, '\0'), std::nullopt};  // everything but ""
  KeyRange r{std::string(dir) + '/', std::string(dir) + '0'};            // '0' follows '/'
  return r;
}

void MergedRange(const Levels& levels, std::string_view lo, std::optional<std::string_view> hi,
                 const std::function<bool(std::string_view, const Totals&)>& fn) {
  // One cursor per level; levels[0] is the newest. K is 1 to 3 in practice, so a linear scan
  // for the minimum beats a heap.
  struct Cursor {
    const Overlay* ov = nullptr;
    Overlay::const_iterator it, end;
    size_t i = 0, n = 0;
    bool done() const { return ov ? it == end : i >= n; }
  };
  std::vector<Cursor> cursors;
  cursors.reserve(levels.overlays.size() + 1);
  for (const Overlay* ov : levels.overlays) {
    Cursor c;
    c.ov = ov;
    c.it = ov->lower_bound(lo);
    c.end = hi ? ov->lower_bound(*hi) : ov->end();
    cursors.push_back(c);
  }
  if (levels.base != nullptr) {
    Cursor c;
    c.i = levels.base->LowerBound(lo);
    c.n = hi ? levels.base->LowerBound(*hi) : levels.base->size();
    cursors.push_back(c);
  }
  auto key = [&](const Cursor& c) -> std::string_view {
    return c.ov ? std::string_view(c.it->first) : levels.base->path_at(c.i);
  };
  while (true) {
    int best = -1;
    std::string_view best_key;
    for (size_t k = 0; k < cursors.size(); ++k) {
      if (cursors[k].done()) continue;
      std::string_view kk = key(cursors[k]);
      if (best < 0 || kk < best_key) {  // strict: the newer level wins ties
        best = static_cast<int>(k);
        best_key = kk;
      }
    }
    if (best < 0) return;
    const Cursor& winner = cursors[static_cast<size_t>(best)];
    bool live;
    Totals totals;
    if (winner.ov) {
      live = !winner.it->second.tombstone;
      totals = winner.it->second.totals;
    } else {
      live = true;
      totals = levels.base->totals_at(winner.i);
    }
    if (live && !fn(best_key, totals)) return;
    // best_key points into a map node or the mapping; advancing iterators leaves it valid.
    for (auto& c : cursors) {
      if (!c.done() && key(c) == best_key) {
        if (c.ov)
          ++c.it;
        else
          ++c.i;
      }
    }
  }
}

}  // namespace dtkfs
