// A dtkfs mount's control channel as the CLI uses it (docs/control.md): the daemon's status
// read from the root's user.dtkfs.status xattr, and a compaction asked for through
// user.dtkfs.compact. Shared by status, compact, umount, verify and export.
//
// The status is text the mount serves: callers check what they act on (cmd_mount.cc checks
// the pid; live_index.cc checks the index it names). Pure functions plus xattr calls;
// thread-safe.
#pragma once

#include <map>
#include <string>

#include "util/status.h"

namespace dtkfs::cli {

struct MountStatus {
  std::string mnt;  // canonical mount point
  std::string raw;  // user.dtkfs.status as read
  // Each key's value, unescaped; the first line of a key counts (pid is the first line the
  // daemon writes, and values are escaped, so none can forge a later one).
  std::map<std::string, std::string> fields;
};

// Reads the status of the mount at canonical_mnt (not checked against the mount table here).
Result<MountStatus> ReadMountStatus(const std::string& canonical_mnt);

// Asks the daemon of canonical_mnt to compact now and waits for the run: when it returns Ok,
// the index file holds every change made through the mount before the call.
Status RequestCompaction(const std::string& canonical_mnt);

}  // namespace dtkfs::cli
