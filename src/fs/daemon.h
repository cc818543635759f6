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
  double compact_interval = 60;   // seconds; compacts only when there are changes
  bool foreground = false;
  std::vector<std::string> options;  // -o values: dtkfs's own and libfuse's mount options
};

// Returns the process exit status (0 ok, 2 error). In daemon mode the calling process
// returns 0 once the mount is ready; the daemon child never returns to the caller's code.
int RunMount(MountArgs args);

// Files beside the index that tell how the last daemon ended.
std::string DirtyMarkerPath(const std::string& index);  // exists while a daemon may have changes
std::string ExitStatusPath(const std::string& index);   // "ok" or the final compaction's error

}  // namespace dtkfs::fs
