// IndexReader: a validated, read-only view of an index file over a shared mapping.
//
// Open() checks everything before the first lookup: size, magic, version, section bounds,
// every entry's pool bounds, strict sort order with the root first, and the CRC32C of every
// section. A file that fails gets a Status naming the file and what is wrong; no input can
// make the reader read out of bounds (tests/fuzz/index_reader_fuzz.cc).
// Lookups are a binary search over the mapped bytes and allocate nothing.
//
// Thread-safety: immutable after Open; any number of threads may read. The mapping lives as
// long as the last shared_ptr, so a reader survives the file being replaced by a rename.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "dtkfs/totals.h"
#include "env/env.h"
#include "index/link_table.h"

namespace dtkfs {

class IndexReader {
 public:
  static Result<std::shared_ptr<const IndexReader>> Open(Env& env, const std::string& path);
  // Validates bytes already mapped (or held in memory).
  static Result<std::shared_ptr<const IndexReader>> FromFile(
      std::shared_ptr<const MappedFile> file);

  size_t size() const { return count_; }
  std::string_view path_at(size_t i) const;
  Totals totals_at(size_t i) const;
  // Index of the first entry whose path is >= key (size() if none).
  size_t LowerBound(std::string_view key) const;
  std::optional<size_t> Find(std::string_view path) const;
  std::optional<Totals> Lookup(std::string_view path) const;
  // [first, last) of the entries strictly below dir (one contiguous range: they share the
  // prefix "dir/").
  std::pair<size_t, size_t> SubtreeRange(std::string_view dir) const;

  uint64_t generation() const { return generation_; }
  uint64_t journal_generation() const { return journal_generation_; }
  // The canonical source path recorded by the writer ("" if none).
  std::string_view source_root() const { return source_root_; }
  // The multi-link table (empty if the writer found no file with two names in the tree).
  const LinkTableView& links() const { return links_; }
  const std::string& file_path() const { return file_->path(); }
  size_t file_size() const { return file_->size(); }
  // The mapped file's last write (Unix time), read when it was opened (MappedFile).
  std::optional<double> file_modified_time() const { return file_->modified_time(); }
  // The file was changed by another process while mapped; this reader serves a private copy
  // of what it validated, and the file should be rewritten (MappedFile::detached).
  bool mapping_detached() const { return file_->detached(); }

  // Indexes with at least this many entries are validated on two threads.
  static constexpr uint64_t kParallelValidateMin = 1 << 16;

 private:
  explicit IndexReader(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {}
  Status Validate();
  // Bounds, strict order and path syntax of entries [begin, end); "" when they are fine,
  // else what is wrong. Reads entry begin-1 for the order check but leaves its faults to
  // the range that owns it, so ranges can be checked in parallel.
  std::string CheckEntries(uint64_t begin, uint64_t end, uint64_t pool_len) const;

  std::shared_ptr<const MappedFile> file_;
  const char* entries_ = nullptr;
  const char* pool_ = nullptr;
  const char* aggregates_ = nullptr;
  size_t count_ = 0;
  uint64_t generation_ = 0;
  uint64_t journal_generation_ = 0;
  std::string_view source_root_;
  LinkTableView links_;
};

}  // namespace dtkfs
