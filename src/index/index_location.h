// Where a source's index lives, and the rules for it (DESIGN-BRIEF section 7, README "Where
// the index lives"): under $XDG_STATE_HOME/dtkfs/ (else ~/.local/state/dtkfs/), directory
// 0700, file 0600, named from the canonical source path; never at or below the source or the
// mount point; in a directory no other user can write (unless it is sticky); an existing file
// there is reused only if it is recognisably a dtkfs index of this user. One daemon per index
// (a flock on INDEX.lock) and one per source (a flock on the source directory).
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
// Checks index_path against the rules above, refusing before anything is created: an empty
// path, a last component that is not a file name ("DIR/", ".", ".."), a path at or below
// the source or the mount point (canonical_mountpoint; "" when there is none; both checked
// after resolving symlinks in the existing part of the path), a directory other users can
// write, and an existing file that is not a dtkfs index of this user (a directory, fifo,
// symlink, empty or foreign file: the file is left untouched). Then makes the index's
// directory (0700 if new). Returns the canonical absolute index path.
Result<std::string> PrepareIndexPath(Env& env, const std::string& canonical_source,
                                     const std::string& canonical_mountpoint,
                                     const std::string& index_path);
// The lock that makes a daemon, a scan or a repair the only writer of an index.
Result<std::unique_ptr<FileLock>> LockIndex(Env& env, const std::string& index_path);
// The lock that makes a daemon the only one serving a source (whatever index it uses), held
// for the daemon's life.
Result<std::unique_ptr<FileLock>> LockSource(Env& env, const std::string& canonical_source);

struct FoundIndex {
  std::string source_root;  // canonical
  std::string index_path;
  std::string relative;  // the queried path relative to source_root ("" for the root)
};
// For a canonical path, the nearest ancestor (or itself) that has a default index.
std::optional<FoundIndex> FindIndexFor(Env& env, const std::string& canonical_path);

}  // namespace dtkfs
