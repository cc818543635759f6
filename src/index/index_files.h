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
//                    "error: ..." (and "warning: ..." lines); read by `dtkfs umount`.
//                    "running" followed by a "journal: ..." line: the journal broke, and a
//                    crash now means a rescan (store/journal.h)
//   INDEX.journal.N  the write-intent journal of generation N (store/journal.h)
//
// All of them are opened without following symlinks and must belong to the effective user
// (src/env/env.h). Pure functions; thread-safe.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "env/install_file.h"

namespace dtkfs {

inline std::string IndexTempPath(const std::string& index) { return TempPathFor(index); }
inline std::string IndexLockPath(const std::string& index) { return index + ".lock"; }
inline std::string DirtyMarkerPath(const std::string& index) { return index + ".dirty"; }
inline std::string ExitStatusPath(const std::string& index) { return index + ".last-exit"; }
inline std::string JournalPath(const std::string& index, uint64_t generation) {
  return index + ".journal." + std::to_string(generation);
}
// The generation of a journal file named name (a file name in the index's directory), or
// nullopt if name is not one of index_name's journal files.
inline std::optional<uint64_t> JournalGeneration(std::string_view index_name,
                                                 std::string_view name) {
  const std::string prefix = std::string(index_name) + ".journal.";
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view digits = name.substr(prefix.size());
  uint64_t g = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), g);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits[0] == '0')
    return std::nullopt;
  return g;
}

}  // namespace dtkfs
