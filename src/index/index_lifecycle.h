// An index's life around the programs that use it: where it is (LocateIndex, with the rules of
// index_location.h), how it is built (a scan installed with InstallFile), how a daemon starts
// from it (LoadOrScan), and the markers beside it that say how the last daemon ended
// (index_files.h names them). `dtkfs scan`, `check --repair` and the mount share these steps.
//
// Every file is reached through the Env, so tests inject faults into all of them. Progress is
// reported through the caller's callback (the CLI draws it on a terminal).
// Thread-safety: functions of their arguments; safe from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "env/env.h"
#include "index/index_reader.h"
#include "scan/scanner.h"

namespace dtkfs {

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
// Scans target.source and installs a new index, one generation after any valid index already
// there. Unreadable directories are in report.scan.errors; the index is written regardless.
Result<BuildReport> BuildIndex(Env& env, const IndexTarget& target, const ScanOptions& options);

// A daemon's start: maps the index, or (no index, another source's, unreadable, or INDEX.dirty
// left by the last daemon) logs why not and builds it with a scan. *scanned (optional) says
// which: a mapped index may miss changes made while no daemon watched.
Result<std::shared_ptr<const IndexReader>> LoadOrScan(Env& env, const IndexTarget& target,
                                                      const ScanOptions& options,
                                                      bool* scanned = nullptr);

// The markers beside the index.
// INDEX.dirty's text from a daemon mounted with -o track_sizes=off (it counted nothing).
inline constexpr std::string_view kUntrackedMarker = "untracked: mounted with track_sizes=off";
// INDEX.last-exit is created at mount time with exactly this many bytes ("running" padded)
// and overwritten in place at exit, so the result fits without new blocks on a full disk.
inline constexpr size_t kExitStatusSize = 4096;
// Installs a small marker file durably (InstallFile: tmp, fsync, rename, fsync dir).
Status WriteMarker(Env& env, const std::string& path, std::string_view text);
// INDEX.last-exit at mount time: "running", at its full size.
Status StartExitStatus(Env& env, const std::string& index);
// Overwrites INDEX.last-exit in place with text (the daemon's result, one or more lines).
Status WriteExitStatus(Env& env, const std::string& index, const std::string& text);
// Why the last daemon left INDEX.dirty (its first line), or nullopt if there is none.
Result<std::optional<std::string>> ReadDirtyMarker(Env& env, const std::string& index);
// Removes every journal file beside index (INDEX.journal.N, store/journal.h): a scan made
// the index exact, so nothing they say is needed.
Status RemoveJournals(Env& env, const std::string& index);
// Why the journal of the last daemon broke, if INDEX.last-exit has a "journal: why" line
// (written in place while that daemon ran, or at its exit after a failed final compaction;
// store/journal.h), or why INDEX.last-exit cannot be read: the next mount must rescan.
Result<std::optional<std::string>> ReadJournalBroken(Env& env, const std::string& index);
// Writes INDEX.dirty with "suspect: why": in place when it exists (no space needed), else
// installed.
Status MarkSuspect(Env& env, const std::string& index, const std::string& why);

}  // namespace dtkfs
