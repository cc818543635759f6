// Named kill points: places where a test build can make the process die on the spot
// (SIGKILL, as kill -9 or an OOM kill would), to prove that a crash between any two steps of
// the journal or of a compaction loses nothing (tests/crash/).
//
//   DTKFS_KILL_POINT("journal.after-sync");
//
// They do something only in the test builds: the `dtkfs-killable` binary and the test
// binaries link kill_point.cc; the installed `dtkfs` links kill_point_off.cc, where Reach is
// empty and no environment is read. In a test build, the environment variable
// DTKFS_KILL_AT=NAME[:N] kills the process the N-th time (default the first) it passes NAME. Every
// name is listed in kKillPoints, so a test can go through all of them and a misspelled name is
// caught at startup.
//
// Thread-safety: safe from any thread (an atomic counter; the variable is read once).
#pragma once

#include <array>
#include <string_view>

namespace dtkfs::kill_point {

inline constexpr std::array<std::string_view, 13> kKillPoints = {
    "journal.before-append",     // a new mark is about to be written
    "journal.after-append",      // written, not yet synced
    "journal.after-sync",        // durable; the operation has not run yet
    "compact.after-freeze",      // overlays frozen, new journal generation begun
    "compact.before-tmp",        // about to write INDEX.tmp
    "compact.after-tmp",         // INDEX.tmp written, not synced
    "compact.after-fsync",       // INDEX.tmp synced
    "compact.after-rename",      // renamed over INDEX, directory not synced
    "compact.after-dir-sync",    // the new index is durable, not yet published
    "compact.after-publish",     // served from the new index, journal not retired
    "journal.after-retire",      // old journal generations removed
    "recovery.after-reconcile",  // the marked directories reconciled, nothing written yet
    "recovery.after-compact",    // the recovered index installed and the journal retired
};

// While it lives, the steps of InstallFile on this thread are kill points named
// "PREFIX.STEP" (the compactor names them "compact": compact.after-tmp, ...).
class Scope {
 public:
  explicit Scope(const char* prefix);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* previous_;
};
// A step of a scoped sequence: the kill point "PREFIX.step" if a Scope is active.
void ReachStep(std::string_view step);

// True when this build has kill points.
bool Enabled();
// Dies with SIGKILL if DTKFS_KILL_AT names this point (and its count is reached).
void Reach(std::string_view name);

}  // namespace dtkfs::kill_point

#define DTKFS_KILL_POINT(name) ::dtkfs::kill_point::Reach(name)
