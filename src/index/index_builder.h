// IndexBuilder: writes an index file (include/dtkfs/index_format.h) from entries given in
// path order. Streaming with bounded memory: each section is buffered 64 KiB at a time and
// written at its own offset, with its own running CRC32C.
//
// The entry count and path-pool length must be known up front (the seed header carries them
// first); WriteIndex gets them with a counting pass over the same source.
// Thread-safety: one thread per builder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dtkfs/totals.h"
#include "env/env.h"

namespace dtkfs {

struct IndexMeta {
  uint64_t generation = 1;
  uint64_t journal_generation = 0;
  std::string source_root;  // canonical path of the tree this index describes
  std::string link_table;   // EncodeLinkTable bytes (src/index/link_table.h); "" for none
};

class IndexBuilder {
 public:
  IndexBuilder(WritableFile& file, uint64_t count, uint64_t pool_length);
  // Paths must come in strictly increasing memcmp order, the root "" first.
  Status Add(std::string_view path, const Totals& totals);
  // Writes padding and trailer; fails if fewer or more entries were added than announced.
  Status Finish(const IndexMeta& meta);

 private:
  // One section being written: where its next bytes go, what is buffered, its CRC so far.
  struct Cursor {
    uint64_t offset = 0;
    std::string buf;
    uint32_t crc = 0;
  };
  Status Flush(Cursor& c);

  WritableFile& file_;
  uint64_t count_;
  uint64_t pool_length_;
  uint64_t added_ = 0;
  uint64_t pool_used_ = 0;
  std::string last_path_;
  Status error_;
  Cursor head_, pool_, aggregates_;
};

// Calls emit(path, totals) for every entry in order; returns the first failed emit's Status.
using EntryEmitter = std::function<Status(std::string_view, const Totals&)>;
using EntrySource = std::function<Status(const EntryEmitter&)>;

// Writes a whole index at path through InstallFile (tmp, fsync, rename, fsync dir).
// source is iterated twice: once to count, once to write.
Status WriteIndex(Env& env, const std::string& path, const IndexMeta& meta,
                  const EntrySource& source);

}  // namespace dtkfs
