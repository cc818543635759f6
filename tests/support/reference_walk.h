// ReferenceWalk: the tests' independent answer to "what should the totals be" (DESIGN-BRIEF
// section 2), written plainly and separately from src/scan so a bug in the scanner cannot hide
// in both. Unit tests compare ScanTree with it; the end-to-end FUSE tests compare the mount's
// xattrs with it.
//
// It recurses with openat/fdopendir/fstatat relative to directory fds (one fd per level), so
// depth and path length are not limited by PATH_MAX. It never follows a symlink. It throws
// std::runtime_error (naming the path and the operation) on any error: a reference that could
// not read everything is no reference.
//
// Thread-safety: reentrant; it reads the filesystem only.
#pragma once

#include <map>
#include <string>

#include "dtkfs/totals.h"

namespace dtkfs::testing {

// Every directory at or below root, keyed by its path relative to root ("" is root itself,
// "a/b" below it), with its Totals: bytes = sum of lstat st_size of every non-directory entry
// below it at any depth (each hard link once per link), files = how many of those,
// dirs = how many directories strictly below it.
std::map<std::string, dtkfs::Totals> ReferenceWalk(const std::string& root);

// "" when expected == actual; otherwise one line per difference (missing, unexpected, or
// different totals), paths shown with unprintable bytes escaped and very long paths
// shortened, at most 50 lines. Meant for test failure messages.
std::string DescribeDifferences(const std::map<std::string, dtkfs::Totals>& expected,
                                const std::map<std::string, dtkfs::Totals>& actual);

}  // namespace dtkfs::testing
