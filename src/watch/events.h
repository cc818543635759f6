// Events: what the kernel says changed in the source tree, from whoever changed it
// (DESIGN-BRIEF section 9; facts and pitfalls in shared notes/watching-the-source.md).
//
// An EventSource turns the kernel's notifications into "this name in this directory may have
// changed" (a Change): that is all reconcile needs, so merged, reordered or doubled events
// are harmless. Two kinds:
//   - fanotify (OpenFanotify): a filesystem mark on each filesystem counted in the tree, with
//     directory handles and names (FAN_REPORT_DFID_NAME_TARGET). Needs CAP_SYS_ADMIN. Events
//     of the reading process itself (the mount's own syscalls) are dropped, and so are events
//     outside the tree (their directory's handle resolves to a path outside the root; such
//     answers are cached).
//   - inotify (OpenInotify): one watch per directory, for a daemon without the privilege.
//     Sees the mount's own changes too (inotify gives no pid); new directories need Watch,
//     and the number of watches is bounded by fs.inotify.max_user_watches.
// Either can overflow: then events were lost, and only a full verification is exact again.
//
// Thread-safety: one thread at a time reads (the caller serializes ReadAvailable and Watch).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace dtkfs::watch {

struct Change {
  std::string dir;      // store path of the directory ("" for the root)
  std::string name;     // a name in it
  bool is_dir = false;  // the name is (or was) a directory
  // A directory made or moved at this name: what the store holds at the name (if anything:
  // an exchange, a rename over an empty directory, a directory moved away and another made
  // in its place, all before the events were read) is another directory's.
  bool new_dir = false;
};

// A file changed that no name reached (written through a descriptor whose name was removed
// while the file keeps another name in the tree): its other names must be found.
struct InodeChange {
  dev_t dev = 0;
  ino_t ino = 0;
};

struct Batch {
  std::vector<Change> changes;
  std::vector<InodeChange> inodes;
  bool overflow = false;  // the kernel dropped events: verify everything
  uint64_t events = 0;    // events read (before filtering), for the status
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Readable (poll) when events wait.
  virtual int fd() const = 0;
  // Reads every event queued now, without blocking, and appends their changes to batch.
  virtual Status ReadAvailable(Batch* batch) = 0;
  // Whether the source needs Watch for each directory of the tree (inotify).
  virtual bool WatchesDirectories() const { return false; }
  // Directory dir (store path) is in the tree now: watch it, or follow its new path.
  virtual void Watch(const std::string& dir) { (void)dir; }
  // For `dtkfs status`: "fanotify", "inotify (N directories watched, M not)".
  virtual std::string Describe() const = 0;
  // Directories of the tree it could not watch (inotify's limit): their changes are not seen.
  virtual uint64_t Unwatched() const { return 0; }
};

// root: the source's canonical path; marks: the root and every nested mount counted inside
// it (one filesystem mark each).
Result<std::unique_ptr<EventSource>> OpenFanotify(const std::string& root,
                                                  const std::vector<std::string>& marks);
Result<std::unique_ptr<EventSource>> OpenInotify(const std::string& root);

}  // namespace dtkfs::watch
