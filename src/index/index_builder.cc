#include "index/index_builder.h"

#include <fmt/format.h>

#include <cstring>

#include "dtkfs/index_format.h"
#include "env/install_file.h"
#include "util/crc32c.h"
#include "util/path.h"

namespace dtkfs {
namespace {
constexpr size_t kFlushAt = 64 * 1024;
}

IndexBuilder::IndexBuilder(WritableFile& file, uint64_t count, uint64_t pool_length)
    : file_(file), count_(count), pool_length_(pool_length) {
  if (count > UINT32_MAX || pool_length > UINT32_MAX) {
    error_ = Status::InvalidArgument(
        fmt::format("index {}: {} entries / {} pool bytes exceed the format's 32-bit limits",
                    file.path(), count, pool_length));
  }
  head_.offset = 0;
  pool_.offset = format::kHeaderSize + count * format::kEntrySize;
  aggregates_.offset = format::AlignUp8(pool_.offset + pool_length);
  char header[format::kHeaderSize];
  std::memcpy(header, format::kMagic.data(), 8);
  format::StoreU32(header + 8, format::kVersion);
  format::StoreU32(header + 12, static_cast<uint32_t>(count));
  format::StoreU32(header + 16, static_cast<uint32_t>(pool_length));
  head_.buf.assign(header, sizeof header);
  head_.crc = crc32c::Value(header, sizeof header);
  head_.offset = 0;
}

Status IndexBuilder::Flush(Cursor& c) {
  if (c.buf.empty()) return Status::Ok();
  Status s = file_.WriteAt(c.offset, c.buf);
  c.offset += c.buf.size();
  c.buf.clear();
  return s;
}

Status IndexBuilder::Add(std::string_view path, const Totals& totals) {
  if (!error_.ok()) return error_;
  if (added_ == count_) {
    return error_ = Status::InvalidArgument(
               fmt::format("index {}: more entries than the {} announced", file_.path(), count_));
  }
  if (!path::IsValidRelative(path)) {
    // The reader rejects such an index; refuse it here rather than install it.
    return error_ = Status::InvalidArgument(
               fmt::format("index {}: malformed path '{}'", file_.path(), path));
  }
  if (added_ == 0 ? !path.empty() : !(std::string_view(last_path_) < path)) {
    return error_ = Status::InvalidArgument(fmt::format(
               "index {}: entry '{}' out of order (after '{}')", file_.path(), path, last_path_));
  }
  if (pool_used_ + path.size() > pool_length_) {
    return error_ = Status::InvalidArgument(
               fmt::format("index {}: path pool overflows its announced length", file_.path()));
  }
  char entry[format::kEntrySize];
  format::StoreU32(entry, static_cast<uint32_t>(pool_used_));
  format::StoreU32(entry + 4, static_cast<uint32_t>(path.size()));
  format::StoreU64(entry + 8, totals.bytes);
  char agg[format::kAggregateRecordSize];
  format::StoreU64(agg, totals.files);
  format::StoreU64(agg + 8, totals.dirs);

  head_.buf.append(entry, sizeof entry);
  head_.crc = crc32c::Extend(head_.crc, entry, sizeof entry);
  pool_.buf.append(path);
  pool_.crc = crc32c::Extend(pool_.crc, path.data(), path.size());
  aggregates_.buf.append(agg, sizeof agg);
  aggregates_.crc = crc32c::Extend(aggregates_.crc, agg, sizeof agg);
  pool_used_ += path.size();
  ++added_;
  last_path_.assign(path);

  for (Cursor* c : {&head_, &pool_, &aggregates_}) {
    if (c->buf.size() >= kFlushAt) {
      Status s = Flush(*c);
      if (!s.ok()) return error_ = s;
    }
  }
  return Status::Ok();
}

Status IndexBuilder::Finish(const IndexMeta& meta) {
  if (!error_.ok()) return error_;
  if (count_ == 0) {
    return error_ = Status::InvalidArgument(
               fmt::format("index {}: no entries (the root entry is required)", file_.path()));
  }
  if (added_ != count_ || pool_used_ != pool_length_) {
    return error_ = Status::InvalidArgument(
               fmt::format("index {}: {} entries / {} pool bytes added, {} / {} announced",
                           file_.path(), added_, pool_used_, count_, pool_length_));
  }
  const uint64_t aggregates_start =
      format::AlignUp8(format::kHeaderSize + count_ * format::kEntrySize + pool_length_);
  const uint64_t pad =
      aggregates_start - (format::kHeaderSize + count_ * format::kEntrySize + pool_length_);
  static const char kZeros[8] = {};
  pool_.buf.append(kZeros, pad);
  pool_.crc = crc32c::Extend(pool_.crc, kZeros, pad);
  for (Cursor* c : {&head_, &pool_, &aggregates_}) {
    Status s = Flush(*c);
    if (!s.ok()) return error_ = s;
  }
  const uint64_t ext_offset = aggregates_start + count_ * format::kAggregateRecordSize;
  std::string ext;
  auto add_record = [&](uint32_t tag, std::string_view bytes) {
    char rec[8];
    format::StoreU32(rec, tag);
    format::StoreU32(rec + 4, static_cast<uint32_t>(bytes.size()));
    ext.append(rec, sizeof rec);
    ext.append(bytes);
  };
  if (meta.link_table.size() > UINT32_MAX) {
    return error_ = Status::InvalidArgument(fmt::format(
               "index {}: link table of {} bytes exceeds the format's 32-bit record limit",
               file_.path(), meta.link_table.size()));
  }
  if (!meta.source_root.empty()) add_record(format::kExtSourceRoot, meta.source_root);
  if (!meta.link_table.empty()) add_record(format::kExtLinkTable, meta.link_table);
  char t[format::kTrailerSize] = {};
  namespace tr = format::trailer;
  format::StoreU64(t + tr::kAggregatesOffset, aggregates_start);
  format::StoreU64(t + tr::kExtOffset, ext_offset);
  format::StoreU64(t + tr::kExtLength, ext.size());
  format::StoreU64(t + tr::kIndexGeneration, meta.generation);
  format::StoreU64(t + tr::kJournalGeneration, meta.journal_generation);
  format::StoreU32(t + tr::kCrcHeadEntries, head_.crc);
  format::StoreU32(t + tr::kCrcPool, pool_.crc);
  format::StoreU32(t + tr::kCrcAggregates, aggregates_.crc);
  format::StoreU32(t + tr::kCrcExt, crc32c::Value(ext.data(), ext.size()));
  format::StoreU32(t + tr::kAggregateRecord, format::kAggregateRecordSize);
  format::StoreU32(t + tr::kFlags, 0);
  format::StoreU64(t + tr::kReserved, 0);
  format::StoreU32(t + tr::kMagicField, format::kTrailerMagic);
  format::StoreU32(t + tr::kCrcTrailer, crc32c::Value(t, tr::kCrcTrailer));
  ext.append(t, sizeof t);
  Status s = file_.WriteAt(ext_offset, ext);
  if (!s.ok()) error_ = s;
  return s;
}

Status WriteIndex(Env& env, const std::string& path, const IndexMeta& meta,
                  const EntrySource& source) {
  uint64_t count = 0, pool = 0;
  DTKFS_RETURN_IF_ERROR(source([&](std::string_view p, const Totals&) {
    ++count;
    pool += p.size();
    return Status::Ok();
  }));
  return InstallFile(env, path, 0600, [&](WritableFile& file) {
    IndexBuilder builder(file, count, pool);
    DTKFS_RETURN_IF_ERROR(
        source([&](std::string_view p, const Totals& t) { return builder.Add(p, t); }));
    return builder.Finish(meta);
  });
}

}  // namespace dtkfs
