// The extended attribute names dtkfs answers (README "What the numbers mean", docs/control.md):
// the one spelling shared by the FUSE layer, the CLI, tools and tests.
#pragma once

namespace dtkfs::xattr {

// On every directory (and, for a non-directory, its own size): decimal digits, read-only.
inline constexpr char kTotalBytes[] = "user.total_bytes";
inline constexpr char kTotalFiles[] = "user.total_files";
inline constexpr char kTotalDirs[] = "user.total_dirs";

// The daemon's control channel, on the mount's root only.
inline constexpr char kControlStatus[] = "user.dtkfs.status";    // get: "key: value" lines
inline constexpr char kControlCompact[] = "user.dtkfs.compact";  // set "1": compact now
inline constexpr char kControlVerify[] = "user.dtkfs.verify";    // set "1": verify every dir

}  // namespace dtkfs::xattr
