// Where a source's index lives, and the rules for it (DESIGN-BRIEF section 7):
// under $XDG_STATE_HOME/dtkfs/ (else ~/.local/state/dtkfs/), directory 0700, file 0600,
// named from the canonical source path; never inside the source; one daemon per index
// (a flock on PATH.lock).
// Pure functions plus filesystem look-ups; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "env/env.h"
#include "util/status.h"

namespace dtkfs {

// The canonical absolute path of an existing directory, or a Status naming it.
Result<std::string> CanonicalDirectory(const std::string& path);
// $XDG_STATE_HOME/dtkfs or ~/.local/state/dtkfs.
Result<std::string> StateDirectory();
// The default index file for a canonical source path: STATE/<basename>-<hash>.dtkidx.
Result<std::string> DefaultIndexPath(const std::string& canonical_source);
// Checks that index_path is not inside the source and makes its directory (0700 if new).
// Returns the absolute index path.
Result<std::string> PrepareIndexPath(Env& env, const std::string& canonical_source,
                                     const std::string& index_path);
// The lock that makes a daemon, a scan or a repair the only writer of an index.
Result<std::unique_ptr<FileLock>> LockIndex(Env& env, const std::string& index_path);

struct FoundIndex {
  std::string source_root;  // canonical
  std::string index_path;
  std::string relative;     // the queried path relative to source_root ("" for the root)
};
// For a canonical path, the nearest ancestor (or itself) that has a default index.
std::optional<FoundIndex> FindIndexFor(Env& env, const std::string& canonical_path);

}  // namespace dtkfs
