// The mount daemon: validates arguments, loads (or builds) the index, mounts, serves, and
// compacts on a timer, on overlay size, on request and at unmount. The process exits only
// after the final compaction is durable (or has failed, which it reports).
#pragma once

#include <string>
#include <vector>

namespace dtkfs::fs {

struct MountArgs {
  std::string source;
  std::string mountpoint;
  std::string index;              // empty: the default index of source
  double compact_interval = 60;   // seconds (util/option_ranges.h); only when there are changes
  bool foreground = false;
  std::vector<std::string> options;  // -o values: dtkfs's own and libfuse's mount options
};

// Returns the process exit status (0 ok, 2 error). In daemon mode the calling process
// returns 0 once the mount is ready; the daemon child never returns to the caller's code.
// The files beside the index it uses are named in src/index/index_files.h.
int RunMount(MountArgs args);

// INDEX.last-exit is created at mount time with exactly this many bytes ("running" padded)
// and overwritten in place at exit, so the result fits without new blocks on a full disk.
inline constexpr size_t kExitStatusSize = 4096;

}  // namespace dtkfs::fs
