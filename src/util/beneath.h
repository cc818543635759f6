// Resolving a path below a tree's root without leaving it: no symlink is followed on the way
// (O_NOFOLLOW alone guards only the last component), so a directory swapped for a symlink
// beside the mount cannot lead a listing or a stat outside the source.
#pragma once

#include <sys/stat.h>

#include <string>

namespace dtkfs {

// Opens root_fd/rel (rel relative to the root, "" for the root itself; any length) with
// flags, refusing a symlink anywhere on the way (ELOOP, or ENOTDIR on the last component
// with O_DIRECTORY) and a ".." that would leave the root (the component walk refuses every
// ".."). openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel
// has it and the path fits, else one component at a time. The root gets a new open file
// description ("."), not a dup. -1 with errno on failure.
int OpenBeneath(int root_fd, const std::string& rel, int flags);

// lstat of root_fd/rel, resolved as OpenBeneath does. 0 or an errno value.
int StatBeneath(int root_fd, const std::string& rel, struct stat* st);

}  // namespace dtkfs
