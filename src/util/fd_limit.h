// The process's descriptor budget. Pure syscall wrappers; thread-safe.
#pragma once

namespace dtkfs {

// Raises the soft RLIMIT_NOFILE to the hard limit (the scanner keeps a directory fd per worker
// and depth step; the daemon an fd per kernel-known inode). Failure leaves the limit as it was.
void RaiseFdLimit();

}  // namespace dtkfs
