#include "index/link_table.h"

#include <fmt/format.h>

#include <algorithm>

#include "dtkfs/index_format.h"
#include "util/path.h"

namespace dtkfs {
namespace {
using format::link_table::kCountSize;
using format::link_table::kRecordSize;
namespace lt = format::link_table;
}  // namespace

std::string EncodeLinkTable(const std::vector<LinkRecord>& records) {
  if (records.empty()) return "";
  std::string out(kCountSize + records.size() * kRecordSize, '\0');
  format::StoreU64(out.data(), records.size());
  std::string names;
  for (size_t i = 0; i < records.size(); ++i) {
    const LinkRecord& r = records[i];
    char* rec = out.data() + kCountSize + i * kRecordSize;
    format::StoreU64(rec + lt::kDev, r.key.dev);
    format::StoreU64(rec + lt::kIno, r.key.ino);
    format::StoreU64(rec + lt::kSize, r.size);
    format::StoreU32(rec + lt::kFirstName, static_cast<uint32_t>(names.size()));
    format::StoreU32(rec + lt::kNameCount, static_cast<uint32_t>(r.paths.size()));
    for (const std::string& p : r.paths) {
      char len[lt::kNameLength];
      format::StoreU32(len, static_cast<uint32_t>(p.size()));
      names.append(len, sizeof len);
      names.append(p);
    }
  }
  out.append(names);
  return out;
}

std::vector<LinkRecord> GroupLinkSightings(std::vector<LinkSighting> sightings) {
  std::sort(sightings.begin(), sightings.end(), [](const LinkSighting& a, const LinkSighting& b) {
    return a.key != b.key ? a.key < b.key : a.path < b.path;
  });
  std::vector<LinkRecord> records;
  for (size_t i = 0; i < sightings.size();) {
    size_t j = i;
    while (j < sightings.size() && sightings[j].key == sightings[i].key) ++j;
    if (j - i >= 2) {
      LinkRecord r;
      r.key = sightings[i].key;
      r.size = sightings[i].size;
      for (size_t k = i; k < j; ++k) r.paths.push_back(std::move(sightings[k].path));
      records.push_back(std::move(r));
    }
    i = j;
  }
  return records;
}

std::string LinkTableView::Check(std::string_view bytes) {
  if (bytes.empty()) return "";
  if (bytes.size() < kCountSize) return "link table: truncated";
  const uint64_t count = format::LoadU64(bytes.data());
  if (count > (bytes.size() - kCountSize) / kRecordSize) return "link table: truncated records";
  const char* records = bytes.data() + kCountSize;
  const std::string_view names = bytes.substr(kCountSize + count * kRecordSize);
  // Each record's names follow the previous record's: one linear pass checks them all.
  uint64_t pos = 0;
  LinkKey prev;
  for (uint64_t i = 0; i < count; ++i) {
    const char* rec = records + i * kRecordSize;
    const LinkKey key{format::LoadU64(rec + lt::kDev), format::LoadU64(rec + lt::kIno)};
    if (i > 0 && !(prev < key)) return fmt::format("link table: record {} out of order", i);
    prev = key;
    if (format::LoadU32(rec + lt::kFirstName) != pos)
      return fmt::format("link table: record {} names are not contiguous", i);
    const uint32_t n = format::LoadU32(rec + lt::kNameCount);
    if (n == 0) return fmt::format("link table: record {} has no names", i);
    for (uint32_t k = 0; k < n; ++k) {
      if (names.size() - pos < lt::kNameLength)
        return fmt::format("link table: record {} out of bounds", i);
      const uint64_t len = format::LoadU32(names.data() + pos);
      pos += lt::kNameLength;
      if (len > names.size() - pos) return fmt::format("link table: record {} out of bounds", i);
      const std::string_view p = names.substr(pos, len);
      if (p.empty() || !path::IsValidRelative(p))
        return fmt::format("link table: record {} has a malformed path", i);
      pos += len;
    }
  }
  if (pos != names.size()) return "link table: trailing bytes after the names";
  return "";
}

LinkTableView::LinkTableView(std::string_view bytes) : bytes_(bytes) {
  if (bytes.empty()) return;
  count_ = format::LoadU64(bytes.data());
  records_ = bytes.data() + kCountSize;
  names_ = records_ + count_ * kRecordSize;
  names_len_ = bytes.size() - kCountSize - count_ * kRecordSize;
}

LinkKey LinkTableView::key_at(size_t i) const {
  const char* rec = records_ + i * kRecordSize;
  return LinkKey{format::LoadU64(rec + lt::kDev), format::LoadU64(rec + lt::kIno)};
}

LinkRecord LinkTableView::at(size_t i) const {
  const char* rec = records_ + i * kRecordSize;
  LinkRecord r;
  r.key = key_at(i);
  r.size = format::LoadU64(rec + lt::kSize);
  size_t pos = format::LoadU32(rec + lt::kFirstName);
  const uint32_t n = format::LoadU32(rec + lt::kNameCount);
  r.paths.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    const size_t len = format::LoadU32(names_ + pos);
    r.paths.emplace_back(names_ + pos + lt::kNameLength, len);
    pos += lt::kNameLength + len;
  }
  return r;
}

size_t LinkTableView::LowerBound(LinkKey key) const {
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (key_at(mid) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

std::optional<LinkRecord> LinkTableView::Find(LinkKey key) const {
  const size_t i = LowerBound(key);
  if (i < count_ && key_at(i) == key) return at(i);
  return std::nullopt;
}

bool LinkTableView::Contains(LinkKey key) const {
  const size_t i = LowerBound(key);
  return i < count_ && key_at(i) == key;
}

std::vector<size_t> LinkTableView::RecordsBelow(std::string_view dir) const {
  const std::string prefix = path::SubtreePrefix(dir);
  std::vector<size_t> found;
  size_t pos = 0;  // the names of record i start at pos: they are contiguous, in order
  for (size_t i = 0; i < count_; ++i) {
    const uint32_t n = format::LoadU32(records_ + i * kRecordSize + lt::kNameCount);
    bool below = false;
    for (uint32_t k = 0; k < n; ++k) {
      const size_t len = format::LoadU32(names_ + pos);
      const std::string_view name(names_ + pos + lt::kNameLength, len);
      below = below || name.substr(0, prefix.size()) == prefix;
      pos += lt::kNameLength + len;
    }
    if (below) found.push_back(i);
  }
  return found;
}

}  // namespace dtkfs
