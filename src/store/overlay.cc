#include "store/overlay.h"

#include <algorithm>

#include "util/path.h"

namespace dtkfs {

KeyRange StrictlyBelow(std::string_view dir) {
  if (dir.empty()) return KeyRange{std::string(1, '\0'), std::nullopt};  // everything but ""
  KeyRange r{std::string(dir) + '/', std::string(dir) + '0'};            // '0' follows '/'
  return r;
}

RenameMap::RenameMap(std::vector<Entry> entries) : entries_(std::move(entries)) {
  regions_.reserve(2 * entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    const std::string& d = entries_[i].new_prefix;
    regions_.push_back(Region{d, d + '\0', i});  // d"\0" is the least key after d
    regions_.push_back(Region{d + '/', d + '0', i});
  }
  std::sort(regions_.begin(), regions_.end(),
            [](const Region& a, const Region& b) { return a.lo < b.lo; });
}

std::optional<std::string_view> RenameMap::MapDown(std::string_view p, std::string* buf) const {
  for (const Entry& e : entries_) {
    if (!path::IsSameOrBelow(p, e.new_prefix)) continue;
    if (!e.old_prefix) return std::nullopt;
    std::string below = *e.old_prefix;  // built aside: p may point into *buf
    below.append(p.substr(e.new_prefix.size()));
    *buf = std::move(below);
    return std::string_view(*buf);
  }
  return p;
}

std::optional<Totals> LookupBelow(const std::vector<FrozenLevel>& frozen, const IndexReader* base,
                                  std::string_view path) {
  return LookupBelow(frozen, 0, base, path);
}

std::optional<Totals> LookupBelow(const std::vector<FrozenLevel>& frozen, size_t first,
                                  const IndexReader* base, std::string_view path) {
  std::string renamed;
  for (size_t i = first; i < frozen.size(); ++i) {
    const FrozenLevel& level = frozen[i];
    if (level.overlay) {
      if (auto it = level.overlay->find(path); it != level.overlay->end()) {
        if (it->second.tombstone) return std::nullopt;
        return it->second.totals;
      }
    } else {
      auto below = level.renames->MapDown(path, &renamed);
      if (!below) return std::nullopt;
      path = *below;
    }
  }
  if (base != nullptr) return base->Lookup(path);
  return std::nullopt;
}

namespace {

using Bound = std::optional<std::string_view>;  // an upper bound; nullopt: none

// A sorted stream of live entries. key() stays valid until Next().
class Stream {
 public:
  virtual ~Stream() = default;
  virtual bool Valid() const = 0;
  virtual std::string_view key() const = 0;
  virtual const Totals& totals() const = 0;
  virtual void Next() = 0;
};

// The overlays from levels.levels[first] down to the next rename map, newest winning and
// tombstones hiding, over what lies below: the stream through that map, or the base. With no
// rename map (the common case, and a compaction of millions of entries) it calls nothing
// virtual.
class MergeStream final : public Stream {
 public:
  MergeStream(const Levels& levels, size_t first, std::string_view lo, Bound hi);
  bool Valid() const override { return from_ != From::kNone; }
  std::string_view key() const override { return key_; }
  const Totals& totals() const override { return totals_; }
  void Next() override {
    // An overlay would have won a tie, so a base or below_ entry is at no other input.
    if (from_ == From::kBase)
      ++base_i_;
    else if (from_ == From::kBelow)
      below_->Next();
    else
      Skip(key_);
    Settle();
  }

 private:
  struct Run {
    Overlay::const_iterator it, end;
  };
  enum class From { kNone, kOverlay, kBase, kBelow };
  // Moves to the first live entry at or after the current positions.
  void Settle();
  // Advances every input standing at k.
  void Skip(std::string_view k);

  std::vector<Run> overlays_;  // newest first
  const IndexReader* base_ = nullptr;
  size_t base_i_ = 0, base_n_ = 0;
  std::unique_ptr<Stream> below_;  // through a rename map (then there is no base_)
  From from_ = From::kNone;        // the input the current entry came from; kNone: past the end
  std::string_view key_;
  Totals totals_;
};

// What lies below a rename map, as named above it. [lo, hi) falls into pieces, in key order:
// stretches between the map's regions, whose names the map leaves alone (read below with
// the same bounds), and the renamed regions, read below under the old name with the prefix
// rewritten. A prefix rewrite keeps the order inside a region, so the pieces need no
// merging, only concatenation. Hidden regions yield no piece. Pieces are opened one at a
// time, as the stream reaches them.
class RemapStream final : public Stream {
 public:
  // lo and hi must outlive the stream.
  RemapStream(const RenameMap& map, const Levels& levels, size_t below, std::string_view lo,
              Bound hi)
      : map_(map), levels_(levels), below_(below), lo_(lo), hi_(hi), gap_(lo) {
    const auto& regions = map.regions();
    region_ = static_cast<size_t>(
        std::partition_point(regions.begin(), regions.end(),
                             [&](const RenameMap::Region& r) { return r.hi <= lo; }) -
        regions.begin());
    Settle();
  }
  bool Valid() const override { return part_ != nullptr; }
  std::string_view key() const override { return entry_ ? key_ : part_->key(); }
  const Totals& totals() const override { return part_->totals(); }
  void Next() override {
    part_->Next();
    Settle();
  }

 private:
  // Moves to the next entry, opening pieces until one has it.
  void Settle() {
    while (!part_ || !part_->Valid())
      if (!OpenNext()) return;
    if (entry_) {
      key_.assign(entry_->new_prefix);
      key_.append(part_->key().substr(entry_->old_prefix->size()));
    }
  }

  // [a, b) clamped to [lo_, hi_); false when that is empty.
  bool Clamp(std::string_view a, Bound b, std::string_view* from, Bound* to) const {
    *from = std::max(a, lo_);
    *to = !b ? hi_ : !hi_ ? b : Bound(std::min(*b, *hi_));
    return !*to || *from < **to;
  }

  // Opens the next piece that is not empty by its bounds; false (and part_ null) when none.
  bool OpenNext() {
    part_.reset();  // before the bounds it reads change
    const auto& regions = map_.regions();
    std::string_view from;
    Bound to;
    while (true) {
      if (in_gap_) {  // the stretch from gap_ to the next region
        in_gap_ = false;
        const bool last = region_ == regions.size();
        if (Clamp(gap_, last ? Bound() : Bound(regions[region_].lo), &from, &to)) {
          entry_ = nullptr;
          part_ = std::make_unique<MergeStream>(levels_, below_, from, to);
          return true;
        }
        if (last) return false;
        continue;
      }
      if (region_ == regions.size()) return false;
      const RenameMap::Region& r = regions[region_++];
      if (hi_ && *hi_ <= r.lo) return false;  // this region and all after it lie past hi
      in_gap_ = true;
      gap_ = r.hi;
      const RenameMap::Entry& e = map_.entries()[r.entry];
      if (!e.old_prefix || !Clamp(r.lo, Bound(r.hi), &from, &to)) continue;
      // Both bounds lie in the region, so they start with new_prefix.
      const size_t n = e.new_prefix.size();
      piece_lo_.assign(*e.old_prefix);
      piece_lo_.append(from.substr(n));
      piece_hi_.assign(*e.old_prefix);
      piece_hi_.append(to->substr(n));
      entry_ = &e;
      part_ = std::make_unique<MergeStream>(levels_, below_, piece_lo_, Bound(piece_hi_));
      return true;
    }
  }

  const RenameMap& map_;
  const Levels& levels_;
  const size_t below_;  // the first level under the map
  const std::string_view lo_;
  const Bound hi_;
  size_t region_ = 0;                        // the next region of the map to visit
  bool in_gap_ = true;                       // the stretch before it comes first
  std::string_view gap_;                     // where that stretch starts
  const RenameMap::Entry* entry_ = nullptr;  // the open piece's rename; null: names unchanged
  std::string piece_lo_, piece_hi_;          // the open renamed piece's bounds below the map
  std::unique_ptr<MergeStream> part_;        // the open piece; null when all are spent
  std::string key_;                          // part_'s key renamed, when entry_ is set
};

MergeStream::MergeStream(const Levels& levels, size_t first, std::string_view lo, Bound hi) {
  size_t i = first;
  for (; i < levels.levels.size() && levels.levels[i].overlay != nullptr; ++i) {
    const Overlay& ov = *levels.levels[i].overlay;
    Run r{ov.lower_bound(lo), hi ? ov.lower_bound(*hi) : ov.end()};
    if (r.it != r.end) overlays_.push_back(r);
  }
  if (i < levels.levels.size()) {
    below_ = std::make_unique<RemapStream>(*levels.levels[i].renames, levels, i + 1, lo, hi);
  } else if (levels.base != nullptr) {
    base_ = levels.base;
    base_i_ = base_->LowerBound(lo);
    base_n_ = hi ? base_->LowerBound(*hi) : base_->size();
  }
  Settle();
}

void MergeStream::Settle() {
  while (true) {
    // One input per level and K is 1 to 3 in practice, so a linear scan for the minimum
    // beats a heap. Strict <: the newer level wins ties.
    From from = From::kNone;
    const Run* winner = nullptr;
    std::string_view k;
    for (const Run& r : overlays_) {
      if (r.it == r.end) continue;
      if (from == From::kNone || r.it->first < k) {
        from = From::kOverlay;
        winner = &r;
        k = r.it->first;
      }
    }
    if (base_i_ < base_n_) {
      const std::string_view bk = base_->path_at(base_i_);
      if (from == From::kNone || bk < k) {
        from = From::kBase;
        k = bk;
      }
    }
    if (below_ && below_->Valid()) {
      const std::string_view bk = below_->key();
      if (from == From::kNone || bk < k) {
        from = From::kBelow;
        k = bk;
      }
    }
    switch (from) {
      case From::kNone:
        from_ = from;
        return;
      case From::kOverlay:
        if (winner->it->second.tombstone) {
          Skip(k);
          continue;
        }
        totals_ = winner->it->second.totals;
        break;
      case From::kBase:
        totals_ = base_->totals_at(base_i_);
        break;
      case From::kBelow:
        totals_ = below_->totals();
        break;
    }
    from_ = from;
    key_ = k;
    return;
  }
}

void MergeStream::Skip(std::string_view k) {
  // k points into a map node, the mapping or below_'s key: below_ moves last.
  for (Run& r : overlays_)
    if (r.it != r.end && r.it->first == k) ++r.it;
  if (base_i_ < base_n_ && base_->path_at(base_i_) == k) ++base_i_;
  if (below_ && below_->Valid() && below_->key() == k) below_->Next();
}

}  // namespace

void MergedRange(const Levels& levels, std::string_view lo, std::optional<std::string_view> hi,
                 const std::function<bool(std::string_view, const Totals&)>& fn) {
  if (hi && *hi <= lo) return;
  for (MergeStream s(levels, 0, lo, hi); s.Valid(); s.Next())
    if (!fn(s.key(), s.totals())) return;
}

}  // namespace dtkfs
