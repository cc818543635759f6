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
#include <functional>
#include <string>

namespace dtkfs {

class GuardedMapping {
 public:
  virtual ~GuardedMapping() = default;
  // Replaces the mapping with a private copy and lets go of the file. Called once, by the
  // guard's thread.
  virtual void Detach() = 0;
};

// GuardAndMap's answer when no lease can be had (the caller then copies the file instead).
inline constexpr int kNoLease = -1;
// Takes a read lease on fd (opened O_RDONLY, kept open by the caller), then runs map() (which
// reads the size and maps: the lease keeps the file from shrinking meanwhile) and registers
// mapping, all before any lease break can be handled. Returns 0, map()'s errno (no lease
// kept), or kNoLease.
int GuardAndMap(int fd, GuardedMapping* mapping, const std::function<int()>& map);
// Unregisters fd (before the caller closes it and unmaps).
void UnguardMapping(int fd);
// After fork (the daemon's fuse_daemonize): lease signals go to the process that took the
// lease, which is gone in the child. Re-points them at this process, restarts the thread, and
// handles a break that arrived in between. Around fork itself (pthread_atfork) the registry
// is locked, so no thread is caught holding it. Leases belong to open files, which fork
// shares: the parent still answers breaks for its own memory but leaves those leases for the
// process that rearms to give up.
void RearmMapGuards();

}  // namespace dtkfs
