// The names of the files dtkfs keeps beside an index, in one place (as LevelDB's filename.h
// does for its files). Everything that opens one of them takes its name from here.
//
//   INDEX            the index (docs/format.md)
//   INDEX.tmp        the next index while InstallFile writes it (removed on failure)
//   INDEX.lock       flock: one daemon, scan or repair per index; never removed
//   INDEX.dirty      exists while a daemon may hold changes INDEX lacks, or after a daemon
//                    met changes it could not apply; its text says why. The next mount
//                    rescans when it is there.
//   INDEX.last-exit  how the last daemon ended: "running" while it runs, then "ok" or
//                    "error: ..." (and "warning: ..." lines); read by `dtkfs umount`
//
// All of them are opened without following symlinks and must belong to the effective user
// (src/env/env.h). Pure functions; thread-safe.
#pragma once

#include <string>

#include "env/install_file.h"

namespace dtkfs {

inline std::string IndexTempPath(const std::string& index) { return TempPathFor(index); }
inline std::string IndexLockPath(const std::string& index) { return index + ".lock"; }
inline std::string DirtyMarkerPath(const std::string& index) { return index + ".dirty"; }
inline std::string ExitStatusPath(const std::string& index) { return index + ".last-exit"; }

}  // namespace dtkfs
