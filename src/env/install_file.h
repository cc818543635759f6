// InstallFile: the one way dtkfs makes a file durable and visible at once. Used by scan,
// compaction and (later) recovery alike.
//
//   write PATH.tmp (mode) -> fsync -> close -> rename over PATH -> fsync the directory
//
// PATH.tmp is created by Env::NewWritableFile: any old one (or a symlink planted there) is
// removed first and the new one created with O_EXCL|O_NOFOLLOW, so nothing is written
// through a link.
//
// On any failure the tmp file is removed (best effort) and PATH is untouched: a reader sees
// either the old file or the new one, never a mix. Thread-safety: callers serialise writers
// of one PATH (the compactor runs one at a time; the daemon holds the index lock).
#pragma once

#include <functional>
#include <string>

#include "env/env.h"

namespace dtkfs {

// The temporary name InstallFile writes beside path.
std::string TempPathFor(const std::string& path);

Status InstallFile(Env& env, const std::string& path, mode_t mode,
                   const std::function<Status(WritableFile&)>& write_body);
// The same through the temporary name tmp (in path's directory), for writers that do not
// serialise: each picks a name of its own, so none renames another's half-written file.
Status InstallFileVia(Env& env, const std::string& path, const std::string& tmp, mode_t mode,
                      const std::function<Status(WritableFile&)>& write_body);

}  // namespace dtkfs
