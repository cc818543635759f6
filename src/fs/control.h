// The daemon's control channel: extended attributes on the mount's root (docs/control.md).
//
//   getfattr -n user.dtkfs.status MNT     "key: value" lines (pid, index, entries, overlay,
//                                          generation, last compaction, uptime)
//   setfattr -n user.dtkfs.compact -v 1 MNT   compacts now; fails (EIO) if it fails
//
// Chosen over a socket: nothing to find, no second server thread, the kernel already checks
// who may reach the mount, and `dtkfs status`/`compact`/`umount` need only the mount path.
#pragma once

#include <string>
#include <string_view>

#include "dtkfs/xattr_names.h"

namespace dtkfs::fs {

class Filesystem;

inline constexpr std::string_view kControlStatus = xattr::kControlStatus;
inline constexpr std::string_view kControlCompact = xattr::kControlCompact;
inline constexpr std::string_view kControlVerify = xattr::kControlVerify;

bool IsControlName(std::string_view name);
// Status values are one line each: a backslash and a newline inside a value (a path may hold
// them) are written as "\\\\" and "\\n", so no value can add a line of its own (a forged
// "pid:"). UnescapeStatusValue reverses it.
std::string EscapeStatusValue(std::string_view value);
std::string UnescapeStatusValue(std::string_view value);
// Returns 0 and fills value, or an errno.
int ControlGet(Filesystem& fs, std::string_view name, std::string* value);
int ControlSet(Filesystem& fs, std::string_view name, std::string_view value);

}  // namespace dtkfs::fs
