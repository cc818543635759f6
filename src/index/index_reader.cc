#include "index/index_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <thread>

#include "dtkfs/index_format.h"
#include "util/crc32c.h"
#include "util/path.h"

namespace dtkfs {
namespace {

// Length of the longest common prefix of a and b.
size_t SharedPrefix(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i + 8 <= n) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) {
      if constexpr (std::endian::native == std::endian::little)
        return i + static_cast<size_t>(std::countr_zero(x ^ y) / 8);
      break;  // the byte loop below finds the first difference
    }
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

Result<std::shared_ptr<const IndexReader>> IndexReader::Open(Env& env, const std::string& path) {
  auto file = env.MapReadOnly(path);
  if (!file.ok()) return file.status();
  return FromFile(std::move(file).value());
}

Result<std::shared_ptr<const IndexReader>> IndexReader::FromFile(
    std::shared_ptr<const MappedFile> file) {
  std::shared_ptr<IndexReader> reader(new IndexReader(std::move(file)));
  Status s = reader->Validate();
  if (!s.ok()) return s;
  return std::shared_ptr<const IndexReader>(std::move(reader));
}

Status IndexReader::Validate() {
  const char* data = file_->data();
  const uint64_t size = file_->size();
  auto bad = [&](std::string_view what) {
    return Status::Corruption(fmt::format("index {}: {}", file_->path(), what));
  };
  if (size < format::kHeaderSize)
    return bad(fmt::format("truncated: {} bytes, smaller than the {}-byte header", size,
                           format::kHeaderSize));
  if (std::string_view(data, 8) != format::kMagic) return bad("not a dtkfs index (bad magic)");
  const uint32_t version = format::LoadU32(data + 8);
  if (version == format::kSeedVersion)
    return bad("version 1 (seed layout without counts or checksum) is not supported; rescan");
  if (version != format::kVersion)
    return bad(fmt::format("unsupported format version {} (this dtkfs reads {})", version,
                           format::kVersion));
  const uint64_t count = format::LoadU32(data + 12);
  const uint64_t pool_len = format::LoadU32(data + 16);
  const uint64_t entries_end = format::kHeaderSize + count * format::kEntrySize;
  const uint64_t pool_end = entries_end + pool_len;
  const uint64_t aggregates_start = format::AlignUp8(pool_end);
  const uint64_t aggregates_end = aggregates_start + count * format::kAggregateRecordSize;
  if (size < format::kTrailerSize || aggregates_end > size - format::kTrailerSize)
    return bad(
        fmt::format("truncated: {} bytes, but header announces {} entries and {} pool "
                    "bytes (need at least {})",
                    size, count, pool_len, aggregates_end + format::kTrailerSize));

  namespace tr = format::trailer;
  const char* t = data + size - format::kTrailerSize;
  if (format::LoadU32(t + tr::kMagicField) != format::kTrailerMagic)
    return bad("truncated or corrupt: trailer magic missing");
  if (format::LoadU32(t + tr::kCrcTrailer) != crc32c::Value(t, tr::kCrcTrailer))
    return bad("trailer checksum mismatch");
  if (format::LoadU64(t + tr::kAggregatesOffset) != aggregates_start)
    return bad("aggregates offset in trailer disagrees with the header");
  if (format::LoadU32(t + tr::kAggregateRecord) != format::kAggregateRecordSize)
    return bad("unsupported aggregate record size");
  const uint64_t ext_offset = format::LoadU64(t + tr::kExtOffset);
  const uint64_t ext_len = format::LoadU64(t + tr::kExtLength);
  if (ext_offset != aggregates_end || ext_len > size - format::kTrailerSize - ext_offset ||
      ext_offset + ext_len != size - format::kTrailerSize)
    return bad("section offsets out of bounds (file size disagrees with the header)");

  // The checks that read every byte: the four checksums and the entry table (bounds, order,
  // syntax). They are independent, so a big index splits them over two threads.
  struct Part {
    const char* what;
    uint32_t field;
    uint64_t begin, end;
  };
  const Part parts[] = {{"header or entry table", tr::kCrcHeadEntries, 0, entries_end},
                        {"path pool", tr::kCrcPool, entries_end, aggregates_start},
                        {"aggregates", tr::kCrcAggregates, aggregates_start, aggregates_end},
                        {"extension section", tr::kCrcExt, ext_offset, ext_offset + ext_len}};
  auto check_sum = [&](const Part& part) {
    if (format::LoadU32(t + part.field) == crc32c::Value(data + part.begin, part.end - part.begin))
      return Status::Ok();
    return bad(fmt::format("checksum mismatch in {}", part.what));
  };
  if (count == 0) return bad("no entries (the root entry is required)");
  entries_ = data + format::kHeaderSize;
  pool_ = data + entries_end;
  aggregates_ = data + aggregates_start;
  auto check_entries = [&](uint64_t begin, uint64_t end) {
    std::string problem = CheckEntries(begin, end, pool_len);
    return problem.empty() ? Status::Ok() : bad(problem);
  };

  Status sums[4], halves[2];
  const uint64_t mid = count / 2;
  if (count >= kParallelValidateMin && std::thread::hardware_concurrency() >= 2) {
    // The pool is the largest section: it and the upper half of the entries go to a helper.
    std::thread helper([&] {
      sums[1] = check_sum(parts[1]);
      halves[1] = check_entries(mid, count);
    });
    sums[0] = check_sum(parts[0]);
    sums[2] = check_sum(parts[2]);
    sums[3] = check_sum(parts[3]);
    halves[0] = check_entries(0, mid);
    helper.join();
  } else {
    for (int i = 0; i < 4; ++i) sums[i] = check_sum(parts[i]);
    halves[0] = check_entries(0, count);
  }
  // Report what a sequential check would find first: checksums, then the extension records,
  // then the entries in file order.
  for (const Status& st : sums)
    if (!st.ok()) return st;

  for (uint64_t off = 0; off < ext_len;) {
    if (ext_len - off < 8) return bad("extension section: truncated record");
    const uint32_t tag = format::LoadU32(data + ext_offset + off);
    const uint64_t len = format::LoadU32(data + ext_offset + off + 4);
    if (len > ext_len - off - 8) return bad("extension section: record out of bounds");
    const std::string_view bytes(data + ext_offset + off + 8, len);
    if (tag == format::kExtSourceRoot) source_root_ = bytes;
    if (tag == format::kExtLinkTable) {
      if (!links_.bytes().empty() || bytes.empty())
        return bad("extension section: link table repeated or empty");
      std::string problem = LinkTableView::Check(bytes);
      if (!problem.empty()) return bad(problem);
      links_ = LinkTableView(bytes);
    }
    off += 8 + len;
  }
  for (const Status& st : halves)
    if (!st.ok()) return st;
  count_ = count;
  generation_ = format::LoadU64(t + tr::kIndexGeneration);
  journal_generation_ = format::LoadU64(t + tr::kJournalGeneration);
  return Status::Ok();
}

std::string IndexReader::CheckEntries(uint64_t begin, uint64_t end, uint64_t pool_len) const {
  auto entry_path = [&](uint64_t i) -> std::optional<std::string_view> {
    const char* e = entries_ + i * format::kEntrySize;
    const uint64_t off = format::LoadU32(e);
    const uint64_t len = format::LoadU32(e + 4);
    if (off > pool_len || len > pool_len - off) return std::nullopt;
    return std::string_view(pool_ + off, len);
  };
  std::string_view prev;
  if (begin > 0) {
    // The entry before the range is the other range's to report; here it is only compared.
    auto p = entry_path(begin - 1);
    if (!p) return "";
    prev = *p;
  }
  for (uint64_t i = begin; i < end; ++i) {
    auto maybe = entry_path(i);
    if (!maybe) return fmt::format("entry {} points outside the path pool", i);
    const std::string_view p = *maybe;
    if (i == 0) {
      if (!p.empty()) return "first entry is not the root";
    } else {
      // One pass does both checks: p must sort after prev, and only the part of p from the
      // component where it leaves prev needs the syntax check (prev's part passed already).
      const size_t common = SharedPrefix(prev, p);
      if (common == p.size() ||
          (common < prev.size() && uint8_t(p[common]) < uint8_t(prev[common])))
        return fmt::format("entries not strictly sorted at entry {}", i);
      const size_t slash = p.substr(0, common).rfind('/');
      const size_t from = slash == std::string_view::npos ? 0 : slash + 1;
      if (from == p.size() || !path::IsValidRelative(p.substr(from)))
        return fmt::format("entry {} has a malformed path", i);
    }
    prev = p;
  }
  return "";
}

std::string_view IndexReader::path_at(size_t i) const {
  const char* e = entries_ + i * format::kEntrySize;
  return std::string_view(pool_ + format::LoadU32(e), format::LoadU32(e + 4));
}

Totals IndexReader::totals_at(size_t i) const {
  const char* a = aggregates_ + i * format::kAggregateRecordSize;
  return Totals{format::LoadU64(entries_ + i * format::kEntrySize + 8), format::LoadU64(a),
                format::LoadU64(a + 8)};
}

size_t IndexReader::LowerBound(std::string_view key) const {
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (path_at(mid) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

std::optional<size_t> IndexReader::Find(std::string_view p) const {
  size_t i = LowerBound(p);
  if (i < count_ && path_at(i) == p) return i;
  return std::nullopt;
}

std::optional<Totals> IndexReader::Lookup(std::string_view p) const {
  auto i = Find(p);
  if (!i) return std::nullopt;
  return totals_at(*i);
}

std::pair<size_t, size_t> IndexReader::SubtreeRange(std::string_view dir) const {
  if (dir.empty()) return {count_ == 0 ? 0 : 1, count_};
  // Every path below dir starts with "dir/"; the first path after them starts with "dir0"
  // ('0' is the byte after '/').
  std::string key(dir);
  key.push_back('/');
  size_t first = LowerBound(key);
  key.back() = '0';
  return {first, LowerBound(key)};
}

}  // namespace dtkfs
