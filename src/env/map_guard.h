// MapGuard: keeps a read-only file mapping safe from the file being truncated or rewritten in
// place by another process (an operator's `truncate -s 0 INDEX`, an editor saving over it).
// Without it, the next read of a page past the new end raises SIGBUS and kills the daemon.
//
// How: the mapping's fd holds a read lease (fcntl F_SETLEASE, F_RDLCK). A process that opens
// the file for writing or truncates it is held by the kernel until the lease is given up
// (or /proc/sys/fs/lease-break-time passes, 45 s by default), and the holder gets a signal.
// The guard's thread then copies the mapped bytes into anonymous memory and moves that copy
// over the mapping's address (mremap), so readers keep the same pointers and the same bytes,
// then gives up the lease. The file is now free to change; the mapping no longer depends on
// it (MappedFile::detached()), and the size store rewrites the index at its next compaction.
// Where no lease can be had (the file is open for writing elsewhere, a filesystem without
// leases, a file of another user without CAP_LEASE), the mapping is a private copy from the
// start: the same safety, paid for with memory.
//
// Thread-safety: all functions are safe from any thread. Lock: MapGuard's mu_ guards the
// registry; the copy runs under it, so an unregistering mapping waits for it.
#pragma once

#include <cstddef>
#include <string>

namespace dtkfs {

class GuardedMapping {
 public:
  virtual ~GuardedMapping() = default;
  // Replaces the mapping with a private copy and lets go of the file. Called once, by the
  // guard's thread.
  virtual void Detach() = 0;
};

// Takes a read lease on fd (opened O_RDONLY, kept open by the caller) for mapping and
// registers it. False when no lease can be had (the caller then copies).
bool GuardMapping(int fd, GuardedMapping* mapping);
// Unregisters fd (before the caller closes it and unmaps).
void UnguardMapping(int fd);
// After fork (the daemon's fuse_daemonize): lease signals go to the process that took the
// lease, which is gone in the child. Re-points them at this process and restarts the thread.
void RearmMapGuards();

}  // namespace dtkfs
