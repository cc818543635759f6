// The two ways mount(8) starts dtkfs, turned into the `dtkfs mount` command line, so that
// one parser (cli/args.h) and one option table (fs/mount_options.h) serve every way in:
//
//   fstab type fuse.dtkfs: mount.fuse3 runs   dtkfs SRC MNT -o OPTIONS
//   fstab type dtkfs:      mount(8) runs      mount.dtkfs SRC MNT [-sfnv] [-o OPTIONS] [-t TYPE]
//                          (mount.dtkfs: a link to dtkfs; the name tells the form)
//
// Both become `dtkfs mount SRC MNT -o OPTIONS`. The helper's flags: -f (fake: do everything
// but mount) does nothing; -n (no mtab), -s (sloppy) and -v (verbose) are accepted and change
// nothing (unknown -o options are still refused); -N (another mount namespace) is refused.
// Any other command line is passed on unchanged. Pure; thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dtkfs::cli {

struct Invocation {
  std::vector<std::string> args;  // what the command-line parser reads (args[0]: the program)
  bool fake = false;              // mount -f: nothing to do
};

// argv: as main received it; is_command: whether a word names a dtkfs command. An error
// names the problem with the helper's arguments (mount.dtkfs form only).
Result<Invocation> ReadInvocation(const std::vector<std::string>& argv,
                                  const std::function<bool(std::string_view)>& is_command);

}  // namespace dtkfs::cli
