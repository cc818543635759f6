// The mount daemon: validates arguments, loads (or builds) the index, mounts, serves, and
// compacts on a timer, on overlay size, on request and at unmount. The process exits only
// after the final compaction is durable (or has failed, which it reports).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "scan/scanner.h"

namespace dtkfs::fs {

struct MountArgs {
  std::string source;
  std::string mountpoint;
  bool foreground = false;
  // The -o values in order (dtkfs's own and libfuse's mount options; fs/mount_options.h).
  // The CLI appends its long flags (--index, --compact-interval) as -o values after them.
  std::vector<std::string> options;
  // Progress of a scan at start-up (the CLI draws it on a terminal); null: none.
  std::function<void(const ScanProgress&)> on_scan_progress;
};

// Returns the process exit status (0 ok, 2 error). In daemon mode the calling process
// returns 0 once the mount is ready; the daemon child never returns to the caller's code.
// The files beside the index it uses are named in src/index/index_files.h.
int RunMount(MountArgs args);

}  // namespace dtkfs::fs
