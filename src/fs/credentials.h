// Credentials: whom a worker thread acts as on the source. Every request reaches the source
// as its caller (ops_table.cc wraps each operation in ActAsCaller), so the source filesystem
// itself enforces modes, ACLs, supplementary groups, reserved blocks and quotas, clears
// setuid and setgid on writes, and gives new files the caller's owner and group.
//
// Acting as a non-root caller means, on the calling thread only:
//   - fsuid and fsgid are the caller's (setfsuid also drops the file capabilities);
//   - the supplementary groups are the caller's, read from /proc/<tid>/status (setgroups by
//     raw syscall: glibc's setgroups would change every thread);
//   - no effective capability at all (capset by raw syscall, the permitted set kept), so
//     CAP_SYS_RESOURCE (reserved blocks, quotas), CAP_SYS_ADMIN (trusted.* xattrs) and the
//     others do not act for the caller;
//   - the umask is the caller's (each worker thread has its own fs_struct,
//     unshare(CLONE_FS)), for creations where the kernel left the umask to dtkfs
//     (FUSE_CAP_POSIX_ACL: the source applies a default ACL instead, as natively).
// A root caller gets the daemon's own capabilities, with its own fsgid and groups.
//
// The thread keeps acting as the last caller until the next request (switching costs up to
// five system calls; most requests come from the caller before). AsDaemon is the way back,
// for the daemon's own bookkeeping inside an operation. A thread's first request takes every
// step once: libfuse starts new workers from busy ones, which pass on whom they acted as.
//
// When the daemon is not root, all of this is a no-op: it acts as itself for everyone, as
// an unprivileged daemon must, and the kernel (default_permissions) checks the caller.
//
// Thread-safety: per thread; the group cache is shared and locked.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace dtkfs::fs {

// Records the daemon's own groups and capabilities; acting as callers is on from here when
// the daemon runs as root (euid 0). Call once, before the worker threads start.
void InitCredentials();

// Makes the calling thread act as req's caller on the source (see above). False (logged)
// when the kernel refused a step: the request must then fail, not run as the daemon.
bool ActAsCaller(fuse_req_t req);
// The same for a caller known by its ids (a request libfuse does not parse: tmpfile.h).
bool ActAsCaller(const fuse_ctx& ctx);

// Creations (mkdir, mknod, create): the caller's umask for the calling thread, which the
// source applies unless the parent directory has a default ACL, as natively.
// False (logged) when the thread cannot have its own umask: the creation must then fail.
bool UseCallerUmask(fuse_req_t req);
bool UseCallerUmask(mode_t umask);

struct Identity;  // credentials.cc

// For its lifetime, the calling thread acts as the daemon (its ids, groups and every
// capability it has); then as before. For the daemon's own work inside an operation: each
// use says why it must not be the caller's.
class AsDaemon {
 public:
  AsDaemon();
  ~AsDaemon();
  AsDaemon(const AsDaemon&) = delete;
  AsDaemon& operator=(const AsDaemon&) = delete;

 private:
  std::unique_ptr<Identity> saved_;  // whom the thread acted as before; null: the daemon
};

// The supplementary groups on a "Groups:" line of /proc/<pid>/status ("Groups:\t4 24 \n");
// nullopt when the text has no such line or it does not parse.
std::optional<std::vector<gid_t>> ParseStatusGroups(std::string_view status);

// Wraps a low-level operation so it runs as its caller: ops_table.cc lists every one.
template <auto Op>
struct AsCaller;
template <typename... Args, void (*Op)(fuse_req_t, Args...)>
struct AsCaller<Op> {
  static void Run(fuse_req_t req, Args... args) {
    if (!ActAsCaller(req)) return void(fuse_reply_err(req, EPERM));
    Op(req, args...);
  }
};

}  // namespace dtkfs::fs
