// The ncdu export (`dtkfs export --format ncdu`): ncdu's JSON import format, major version 1,
// minor 2 (https://dev.yorhel.nl/ncdu/jsonfmt), built from directory totals alone, so a tree
// of any size exports without a walk of its files (docs/export.md).
//
// The index holds directories, not files, so the files directly in a directory are one entry
// of that directory: a file named kOwnFilesName whose asize and dsize are the directory's own
// bytes (its total minus its subdirectories' totals) and whose dtkfs_files key is their count.
// Directories carry no size of their own (dtkfs does not count them), so what ncdu adds up
// below a directory is exactly its user.total_bytes. No entry has an inode or a link count,
// so ncdu counts each aggregate in full: each name of a hard-linked file counts once, as in
// user.total_bytes.
//
// Names are written as ncdu writes them: raw bytes, with `"`, `\` and control bytes escaped,
// and bytes of 0x80 and above as they are (valid UTF-8 or not), which ncdu reads back as the
// same bytes. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/text_sink.h"
#include "dtkfs/totals.h"

namespace dtkfs::cli {

// The name of the entry that stands for a directory's own files (docs/export.md). A real file
// of that name shows beside it; the aggregate is the entry with a dtkfs_files key.
inline constexpr std::string_view kOwnFilesName = "<files>";

// One directory of the export.
struct NcduDir {
  std::string name;  // the last component; for the root, the path it was exported as
  Totals totals;
  // What the files directly in this directory add up to: totals minus the subdirectories'
  // totals (own.dirs is unused).
  Totals own;
  std::vector<size_t> children;  // indexes into NcduTree::dirs
};

struct NcduTree {
  std::vector<NcduDir> dirs;  // dirs[0] is the root
  // Directories whose subdirectories add up to more bytes or files than their own totals (a
  // live mount that changed during the export); their own entry counts 0 where it would be
  // negative.
  size_t inconsistent = 0;
};

// Builds the tree of root (relative path root_rel, shown as root_name) from the directories
// below it (relative paths, as TotalsSource::ListBelow returns them). A directory whose parent
// is not listed (its totals could not be read) is left out with its subtree; its bytes stay in
// the nearest listed ancestor's own entry, so the sums still add up.
NcduTree BuildNcduTree(std::string root_name, std::string_view root_rel, const Totals& root_totals,
                       const std::vector<std::pair<std::string, Totals>>& below);

// A JSON string literal as ncdu writes one (see above).
std::string NcduString(std::string_view name);

// The export's metadata object: ncdu's keys, then dtkfs's.
struct NcduMetadata {
  std::string progver;
  uint64_t timestamp = 0;  // Unix time of the export (ncdu's key)
  // Where the totals came from: "index" (offline), "compaction" (a live mount's index, read
  // right after a compaction) or "listing" (a live mount's directories listed).
  std::string source;
  std::optional<double> totals_time;  // Unix time the totals were exact for, if known
};

// Writes the whole export: [1,2,{metadata},[root ...]].
void WriteNcdu(const NcduTree& tree, const NcduMetadata& meta, TextSink& out);

}  // namespace dtkfs::cli
