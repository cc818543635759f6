#include "store/size_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "util/path.h"

namespace dtkfs {

namespace {

void AddLevels(const std::vector<FrozenLevel>& frozen, Levels* l) {
  for (const FrozenLevel& f : frozen) l->levels.push_back({f.overlay.get(), f.renames.get()});
}

}  // namespace

SizeStore::SizeStore(std::shared_ptr<const IndexReader> base)
    : base_(std::move(base)), active_(std::make_shared<Overlay>()) {}

void SizeStore::SetRenameMapThreshold(size_t entries) {
  std::unique_lock lock(mu_);
  rename_map_threshold_ = entries;
}

Levels SizeStore::Snapshot::levels() const {
  Levels l;
  AddLevels(frozen, &l);
  l.base = base.get();
  return l;
}

Levels SizeStore::LevelsLocked() const {
  Levels l;
  l.levels.push_back({active_.get(), nullptr});
  AddLevels(frozen_, &l);
  l.base = base_.get();
  return l;
}

std::optional<Totals> SizeStore::LookupLocked(std::string_view dir) const {
  if (auto it = active_->find(dir); it != active_->end()) {
    if (it->second.tombstone) return std::nullopt;
    return it->second.totals;
  }
  return LookupBelow(frozen_, base_.get(), dir);
}

bool SizeStore::PersistedLocked(std::string_view dir) const {
  return LookupBelow(frozen_, base_.get(), dir).has_value();
}

void SizeStore::PutLocked(std::string_view dir, const OverlayValue& value) {
  auto it = active_->find(dir);
  if (it == active_->end())
    active_->emplace(std::string(dir), value);
  else
    it->second = value;
}

void SizeStore::EraseLocked(std::string_view dir) {
  // A tombstone is only needed when an older level still has the path.
  if (PersistedLocked(dir)) {
    PutLocked(dir, OverlayValue{Totals{}, /*tombstone=*/true});
  } else if (auto it = active_->find(dir); it != active_->end()) {
    active_->erase(it);
  }
}

Status SizeStore::ApplyToChainLocked(std::string_view dir, const Delta& delta,
                                     std::string_view op) {
  // Check the whole chain first, so a failure changes nothing.
  std::vector<std::pair<std::string_view, Totals>> chain;
  chain.reserve(path::Depth(dir) + 1);
  Status missing;
  path::ForSelfAndAncestors(dir, [&](std::string_view a) {
    if (!missing.ok()) return;
    auto t = LookupLocked(a);
    if (!t) {
      missing =
          Status::NotFound(fmt::format("{} {}: directory '{}' not in the size store", op, dir, a));
      return;
    }
    chain.emplace_back(a, *t);
  });
  DTKFS_RETURN_IF_ERROR(missing);
  // The store disagrees with the source when a total would go negative (changed beside the
  // mount, not yet reconciled): the change is cut to what the directory holds, and the same
  // cut change goes to every ancestor, so each total still sums its subdirectories (a later
  // reconcile of the directory then makes the whole chain right). Said, not hidden.
  Delta applied = delta;
  Status underflow;
  for (auto& [a, t] : chain) {
    auto cut = [](uint64_t before, int64_t* d) {
      if (*d < 0 && static_cast<uint64_t>(-*d) > before) *d = -static_cast<int64_t>(before);
    };
    const Delta wanted = applied;
    cut(t.bytes, &applied.bytes);
    cut(t.files, &applied.files);
    cut(t.dirs, &applied.dirs);
    if (!(applied == wanted) && underflow.ok())
      underflow = Status::Corruption(
          fmt::format("{} {}: totals of '{}' would go negative; run dtkfs check", op, dir, a));
  }
  for (auto& [a, t] : chain) PutLocked(a, OverlayValue{Apply(t, applied)});
  return underflow;
}

bool SizeStore::Persisted(std::string_view dir) const {
  std::shared_lock lock(mu_);
  // A crash now leaves recovery to start from the index on disk (the base), or from the
  // one a compaction of the frozen levels under its freeze is writing: the base merged with
  // a suffix of frozen_. Recovery reads each under its own names, so dir is looked up in
  // each candidate as it is: not through the rename maps above it (a directory renamed
  // away keeps its old path in the base), and not stopped by a tombstone in a frozen level
  // (the base under it still holds the path if that compaction never lands).
  for (size_t first = 0; first <= frozen_.size(); ++first)
    if (LookupBelow(frozen_, first, base_.get(), dir)) return true;
  return false;
}

std::optional<Totals> SizeStore::Lookup(std::string_view dir) const {
  std::shared_lock lock(mu_);
  return LookupLocked(dir);
}

Status SizeStore::AddDelta(std::string_view dir, const Delta& delta) {
  std::unique_lock lock(mu_);
  return ApplyToChainLocked(dir, delta, "update");
}

Status SizeStore::MakeDir(std::string_view p) {
  if (path::IsRoot(p)) return Status::InvalidArgument("mkdir: the root always exists");
  std::unique_lock lock(mu_);
  if (LookupLocked(p))
    return Status::InvalidArgument(fmt::format("mkdir {}: already in the size store", p));
  std::string_view parent = path::Parent(p);
  if (!LookupLocked(parent))
    return Status::NotFound(fmt::format("mkdir {}: parent not in the size store", p));
  // The parent chain is known to exist, so this cannot fail half way.
  PutLocked(p, OverlayValue{});
  return ApplyToChainLocked(parent, Delta{0, 0, 1}, "mkdir");
}

Status SizeStore::AddSubtree(std::string_view p,
                             const std::vector<std::pair<std::string, Totals>>& entries) {
  if (path::IsRoot(p)) return Status::InvalidArgument("add subtree: the root always exists");
  if (entries.empty() || entries.front().first != p)
    return Status::InvalidArgument(fmt::format("add subtree {}: its own entry must come first", p));
  for (const auto& [q, t] : entries)
    if (!path::IsSameOrBelow(q, p))
      return Status::InvalidArgument(fmt::format("add subtree {}: {} is not below it", p, q));
  std::unique_lock lock(mu_);
  if (LookupLocked(p))
    return Status::InvalidArgument(fmt::format("add subtree {}: already in the size store", p));
  if (!LookupLocked(path::Parent(p)))
    return Status::NotFound(fmt::format("add subtree {}: parent not in the size store", p));
  for (const auto& [q, t] : entries) PutLocked(q, OverlayValue{t});
  return ApplyToChainLocked(path::Parent(p), SubtreeContribution(entries.front().second),
                            "add subtree");
}

Status SizeStore::RemoveDir(std::string_view p) {
  if (path::IsRoot(p)) return Status::InvalidArgument("rmdir: cannot remove the root");
  std::unique_lock lock(mu_);
  auto t = LookupLocked(p);
  if (!t) return Status::NotFound(fmt::format("rmdir {}: not in the size store", p));
  std::vector<std::string> below;
  KeyRange r = StrictlyBelow(p);
  MergedRange(LevelsLocked(), r.lo, r.hi, [&](std::string_view q, const Totals&) {
    below.emplace_back(q);
    return true;
  });
  for (const auto& q : below) EraseLocked(q);
  EraseLocked(p);
  return ApplyToChainLocked(path::Parent(p), -SubtreeContribution(*t), "rmdir");
}

Status SizeStore::RenameDir(std::string_view from, std::string_view to) {
  if (path::IsRoot(from) || path::IsRoot(to))
    return Status::InvalidArgument("rename: the root cannot be renamed");
  if (path::IsSameOrBelow(to, from))
    return Status::InvalidArgument(fmt::format("rename {} to {}: target inside source", from, to));
  std::unique_lock lock(mu_);
  auto t = LookupLocked(from);
  if (!t) return Status::NotFound(fmt::format("rename {}: not in the size store", from));
  if (LookupLocked(to))
    return Status::InvalidArgument(fmt::format("rename {} to {}: target exists", from, to));
  if (!LookupLocked(path::Parent(to)))
    return Status::NotFound(fmt::format("rename {} to {}: target parent unknown", from, to));

  if (CountSubtreeLocked(from, rename_map_threshold_) > rename_map_threshold_) {
    // The ancestor chains adjusted below lie outside from and to (checked above), so the
    // map leaves their names alone; their new totals go to the new active overlay.
    PushRenameMapLocked({{std::string(to), std::string(from)}, {std::string(from), std::nullopt}});
  } else {
    const auto moved = CollectSubtreeLocked(from);
    for (const auto& [q, qt] : moved) EraseLocked(q);
    MoveEntriesLocked(moved, from, to);
  }
  const Delta contribution = SubtreeContribution(*t);
  Status a = ApplyToChainLocked(path::Parent(from), -contribution, "rename");
  Status b = ApplyToChainLocked(path::Parent(to), contribution, "rename");
  return a.ok() ? b : a;
}

std::vector<std::pair<std::string, Totals>> SizeStore::CollectSubtreeLocked(
    std::string_view dir) const {
  std::vector<std::pair<std::string, Totals>> out;
  auto t = LookupLocked(dir);
  if (!t) return out;
  out.emplace_back(std::string(dir), *t);
  KeyRange r = StrictlyBelow(dir);
  MergedRange(LevelsLocked(), r.lo, r.hi, [&](std::string_view q, const Totals& qt) {
    out.emplace_back(std::string(q), qt);
    return true;
  });
  return out;
}

size_t SizeStore::CountSubtreeLocked(std::string_view dir, size_t limit) const {
  if (!LookupLocked(dir)) return 0;
  size_t n = 1;
  if (n > limit) return n;
  KeyRange r = StrictlyBelow(dir);
  MergedRange(LevelsLocked(), r.lo, r.hi,
              [&](std::string_view, const Totals&) { return ++n <= limit; });
  return n;
}

void SizeStore::PushRenameMapLocked(std::vector<RenameMap::Entry> entries) {
  if (!active_->empty()) {
    frozen_.insert(frozen_.begin(), FrozenLevel{std::move(active_), nullptr});
    active_ = std::make_shared<Overlay>();
  }
  frozen_.insert(frozen_.begin(),
                 FrozenLevel{nullptr, std::make_shared<const RenameMap>(std::move(entries))});
}

void SizeStore::MoveEntriesLocked(const std::vector<std::pair<std::string, Totals>>& entries,
                                  std::string_view from, std::string_view to) {
  std::string target;
  for (const auto& [q, qt] : entries) {
    target.assign(to);
    target.append(q, from.size(), std::string::npos);
    PutLocked(target, OverlayValue{qt});
  }
}

Status SizeStore::ExchangeDirs(std::string_view a, std::string_view b) {
  if (path::IsRoot(a) || path::IsRoot(b) || path::IsSameOrBelow(a, b) || path::IsSameOrBelow(b, a))
    return Status::InvalidArgument(fmt::format("exchange {} and {}: nested or root", a, b));
  std::unique_lock lock(mu_);
  auto ta = LookupLocked(a);
  auto tb = LookupLocked(b);
  if (!ta || !tb)
    return Status::NotFound(fmt::format("exchange {} and {}: not in the size store", a, b));
  const size_t limit = rename_map_threshold_;
  if (CountSubtreeLocked(a, limit) + CountSubtreeLocked(b, limit) > limit) {
    // As in RenameDir, the ancestor chains lie outside a and b.
    PushRenameMapLocked({{std::string(a), std::string(b)}, {std::string(b), std::string(a)}});
  } else {
    const auto sub_a = CollectSubtreeLocked(a);
    const auto sub_b = CollectSubtreeLocked(b);
    for (const auto& [q, qt] : sub_a) EraseLocked(q);
    for (const auto& [q, qt] : sub_b) EraseLocked(q);
    MoveEntriesLocked(sub_a, a, b);
    MoveEntriesLocked(sub_b, b, a);
  }
  const Delta ca = SubtreeContribution(*ta), cb = SubtreeContribution(*tb);
  const Delta a_to_b{cb.bytes - ca.bytes, cb.files - ca.files, cb.dirs - ca.dirs};
  Status s1 = ApplyToChainLocked(path::Parent(a), a_to_b, "exchange");
  Status s2 = ApplyToChainLocked(path::Parent(b), -a_to_b, "exchange");
  return s1.ok() ? s2 : s1;
}

std::vector<std::pair<std::string, Totals>> SizeStore::ListBelow(std::string_view dir,
                                                                 size_t max_depth) const {
  std::vector<std::pair<std::string, Totals>> out;
  const size_t base_depth = path::Depth(dir);
  std::shared_lock lock(mu_);
  KeyRange r = StrictlyBelow(dir);
  MergedRange(LevelsLocked(), r.lo, r.hi, [&](std::string_view q, const Totals& t) {
    if (max_depth == 0 || path::Depth(q) - base_depth <= max_depth) out.emplace_back(q, t);
    return true;
  });
  return out;
}

SizeStore::Stats SizeStore::GetStats() const {
  std::shared_lock lock(mu_);
  Stats s;
  s.base_entries = base_ ? base_->size() : 0;
  s.active_entries = active_->size();
  for (const FrozenLevel& f : frozen_) {
    if (f.overlay) s.frozen_entries += f.overlay->size();
    if (f.renames) s.rename_levels++;
  }
  s.frozen_levels = frozen_.size();
  s.generation = base_ ? base_->generation() : 0;
  s.base_path = base_ ? base_->file_path() : std::string();
  return s;
}

std::shared_ptr<const IndexReader> SizeStore::base() const {
  std::shared_lock lock(mu_);
  return base_;
}

bool SizeStore::dirty() const {
  std::shared_lock lock(mu_);
  return !active_->empty() || !frozen_.empty() || links_active_ || links_frozen_ ||
         (base_ && base_->mapping_detached());
}

void SizeStore::NoteLinksChanged() {
  std::unique_lock lock(mu_);
  links_active_ = true;
}

size_t SizeStore::active_size() const {
  std::shared_lock lock(mu_);
  return active_->size();
}

size_t SizeStore::rename_levels() const {
  std::shared_lock lock(mu_);
  return static_cast<size_t>(std::count_if(
      frozen_.begin(), frozen_.end(), [](const FrozenLevel& f) { return f.renames != nullptr; }));
}

SizeStore::Snapshot SizeStore::Freeze() {
  std::unique_lock lock(mu_);
  if (!active_->empty()) {
    frozen_.insert(frozen_.begin(), FrozenLevel{std::move(active_), nullptr});
    active_ = std::make_shared<Overlay>();
  }
  if (frozen_.size() > kMaxFrozenLevels) MergeFrozenOverlaysLocked();
  links_frozen_ = links_frozen_ || links_active_;
  links_active_ = false;
  return Snapshot{base_, frozen_, links_frozen_};
}

void SizeStore::MergeFrozenOverlaysLocked() {
  std::vector<FrozenLevel> merged;
  for (FrozenLevel& level : frozen_) {
    // frozen_ is newest first: an older overlay goes under the newer one merged so far.
    if (level.overlay && !merged.empty() && merged.back().overlay) {
      auto combined = std::make_shared<Overlay>(*level.overlay);
      for (const auto& [path, value] : *merged.back().overlay) (*combined)[path] = value;
      merged.back().overlay = std::move(combined);
    } else {
      merged.push_back(std::move(level));
    }
  }
  frozen_ = std::move(merged);
}

void SizeStore::Publish(std::shared_ptr<const IndexReader> new_base, const Snapshot& snapshot) {
  std::shared_ptr<const IndexReader> old;  // unmapped after the lock is released
  std::unique_lock lock(mu_);
  old = std::move(base_);
  base_ = std::move(new_base);
  if (snapshot.links_changed) links_frozen_ = false;
  std::erase_if(frozen_, [&](const FrozenLevel& f) {
    return std::find(snapshot.frozen.begin(), snapshot.frozen.end(), f) != snapshot.frozen.end();
  });
}

}  // namespace dtkfs
