// Steps that `scan`, `check --repair` and the mount share: locate and lock a source's index,
// and (re)build it with a scan.
#pragma once

#include <memory>
#include <string>

#include "env/env.h"
#include "scan/scanner.h"

namespace dtkfs::cli {

struct IndexTarget {
  std::string source;  // canonical
  std::string index;   // absolute
};
// Canonicalises source, picks the default index unless one is given (index ""), checks it
// with PrepareIndexPath (refusing an index at or below the source or canonical_mountpoint,
// "" when there is none, or a file that is not a dtkfs index) and creates its directory.
Result<IndexTarget> LocateIndex(Env& env, const std::string& source, const std::string& index,
                                const std::string& canonical_mountpoint);

// Writes the index of a finished scan (InstallFile: tmp, fsync, rename, fsync dir).
Status InstallScan(Env& env, const IndexTarget& target, const ScanResult& scan,
                   uint64_t generation);

struct BuildReport {
  ScanResult scan;
  uint64_t generation = 0;
  double seconds = 0;
};
// Scans target.source (progress on stderr when it is a terminal) and installs a new index,
// one generation after any valid index already there. Unreadable directories are in
// report.scan.errors; the index is written regardless.
Result<BuildReport> BuildIndex(Env& env, const IndexTarget& target);

}  // namespace dtkfs::cli
