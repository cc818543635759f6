// A live mount's totals without listing it: ask its daemon to compact, then read the index
// file the compaction wrote, exactly as an offline export does (docs/export.md, "Live
// exports"). The totals are then exact as of the compaction request: every change made
// through the mount before it is in the file.
//
// Only the mount's own user can do this (the index is the daemon's file, and dtkfs reads
// only its own user's index files, src/env/env.h); for anyone else, or when the daemon's
// status is odd, the caller lists the mount instead. The index is opened once, after the
// compaction returned: the reader maps it under a lease (src/env/map_guard.h), so a later
// compaction renaming a newer index over it changes nothing this reader sees.
//
// Thread-safety: plain function; call from one thread at a time per mount.
#pragma once

#include <memory>
#include <string>

#include "env/env.h"
#include "index/index_reader.h"

namespace dtkfs::cli {

struct LiveIndex {
  std::shared_ptr<const IndexReader> reader;  // null: list the mount instead (why_not says why)
  double exact_at = 0;  // Unix time of the compaction request: the totals' freshness
  std::string why_not;
  // why_not is a failure the user should hear about even without --verbose (a compaction
  // failed: a full disk, an I/O error), not a normal reason to list (another user's mount).
  bool failed = false;
};

// mount_root: the canonical mount point of a dtkfs mount (from the mount table).
LiveIndex CompactAndOpenIndex(Env& env, const std::string& mount_root);

}  // namespace dtkfs::cli
