// The mount's options, read by one table (libfuse's fuse_opt) that serves every way they
// arrive: `-o` on the command line, the options field of an fstab line (mount.fuse3 hands it
// over as -o), and the long flags (the CLI turns `--index` and `--compact-interval` into -o
// values placed after every -o it was given).
//
// Precedence, the one rule: options apply in order and the last value of an option wins, so
// a long flag beats the same option given with -o.
//
// dtkfs's own options (README "Mount options"): index=PATH, compact_interval=S,
// compact_threshold=N, threads=N, fd_budget=N, entry_timeout=S, attr_timeout=S, list_totals,
// watch=auto|fanotify|inotify|off, verify=on|off, journal=on|off, track_sizes=on|off,
// kernel_cache=auto|on|off. Every number
// is range-checked (util/option_ranges.h). fstab's and mount(8)'s own words (defaults, auto,
// noauto, nofail, _netdev, user, users, x-*, comment=) are dropped; everything else goes to
// libfuse, which refuses what it does not know. allow_other brings default_permissions with it (the
// kernel then checks permissions against the source's modes).
//
// Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fs/filesystem.h"
#include "util/status.h"

namespace dtkfs::fs {

// How the daemon learns of changes made beside the mount (docs/design.md, "Changes beside
// the mount"): fanotify when it may (root), else inotify; or not at all.
enum class WatchMode { kAuto, kFanotify, kInotify, kOff };
// Whether the kernel keeps names, attributes, pages and listings long (ChooseKernelCaching).
enum class KernelCacheMode { kAuto, kOn, kOff };

struct MountOptions {
  Options fs;                    // what the Filesystem needs
  std::string index;             // "": the source's default index
  double compact_interval = 60;  // seconds; 0: no timer
  // FUSE worker threads. Few on purpose: the kernel hands each request to the reader that has
  // waited longest, so every extra idle reader is one more cold thread in the rotation
  // (docs/design.md, "Worker threads"). One per core, at least two.
  unsigned threads = 0;
  WatchMode watch = WatchMode::kAuto;
  KernelCacheMode kernel_cache = KernelCacheMode::kAuto;
  bool verify = true;  // verify every directory in the background after a mount from an index
  // The write-intent journal (store/journal.h): a crash costs a reconcile of what changed.
  // Off: a crash costs a rescan of the whole source (the benchmark measures the difference).
  bool journal = true;
  // -o entry_timeout= / attr_timeout= given (else the daemon chooses, daemon.cc).
  bool entry_timeout_given = false;
  bool attr_timeout_given = false;
  std::vector<std::string> fuse;  // for libfuse: "-o" "a,b,..." arguments
};

// What the kernel may cache (Options::kernel_keeps, entry and attribute timeouts), once it is
// known whether every change to the source reaches the daemon (fanotify: filesystem marks,
// no per-directory limit), where each event invalidates what the kernel caches of it. Then
// the kernel keeps names, attributes, pages and listings (timeouts kWatchedCacheTimeout);
// otherwise (inotify may run out of watches, or nothing watches) a change beside the mount
// shows through it within a second. -o kernel_cache=on|off overrides the choice (on: changes
// beside an unwatched mount may show late; for a benchmark of track_sizes=off against a
// watched mount); timeouts given with -o win.
inline constexpr double kWatchedCacheTimeout = 3600;
void ChooseKernelCaching(const MountOptions& options, bool whole_source_watched, Options* fs);

// o_values: the -o arguments in order (each may hold several comma-separated options).
Result<MountOptions> ParseMountOptions(const std::vector<std::string>& o_values);
// The options above, one table's rows as `dtkfs mount --help` prints them (names, then
// what they do, defaults and valid ranges).
std::string MountOptionsHelp();
// "key=value" as one -o option, with the commas and backslashes of value escaped (a path may
// hold them).
std::string MountOption(std::string_view key, std::string_view value);

}  // namespace dtkfs::fs
