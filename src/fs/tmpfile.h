// O_TMPFILE through the mount. The kernel asks for an unnamed file with FUSE_TMPFILE
// (protocol 7.37), which libfuse 3.14 does not know: it would answer ENOSYS, and the kernel
// would then answer EOPNOTSUPP to every O_TMPFILE open. dtkfs reads the requests itself
// (libfuse's custom I/O hooks, RequestIo) and answers FUSE_TMPFILE before libfuse sees it;
// every other request passes through unchanged.
//
// The file is made on the source with O_TMPFILE in the parent directory, as the caller. It
// enters the inode table with no name (InodeTable::AddUnnamed): its writes count nowhere,
// as natively, until linkat(2) gives it a name (FUSE_LINK, ops_dir.cc), which counts it in
// that directory like any new link.
//
// Reading requests with read(2) also means no splice reads: a write's data arrives in the
// request buffer instead of through a pipe. Replies still splice (splice_send).
//
// Thread-safety: the hooks run on every worker thread, each on its own cloned descriptor.
#pragma once

#include <fuse_lowlevel.h>

namespace dtkfs::fs {

// The hooks for fuse_session_custom_io; the session's userdata is the Filesystem.
const fuse_custom_io& RequestIo();

}  // namespace dtkfs::fs
