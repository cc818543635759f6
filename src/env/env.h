// Env: every OS effect of the index, the compactor and the scanner's output goes through
// this seam, so tests can inject ENOSPC, EIO and a crash between any two steps (see
// tests/support/fault_env.h). Passthrough data I/O in the FUSE layer does not use it.
//
// Thread-safety: Env implementations are safe to call from any thread. A WritableFile is
// used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dtkfs {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of data at offset (pwrite semantics: sections of a file can be filled
  // independently).
  virtual Status WriteAt(uint64_t offset, std::string_view data) = 0;
  virtual Status Sync() = 0;  // fsync
  virtual Status Close() = 0;
  virtual const std::string& path() const = 0;
};

// A read-only mapping of a whole file; unmapped when the last owner lets go, so readers that
// still hold it keep reading the old inode after a rename replaced the file.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual const char* data() const = 0;
  virtual size_t size() const = 0;
  virtual const std::string& path() const = 0;
  // True when another process changed the file while it was mapped and the mapping now
  // holds a private copy of what it read before (src/env/map_guard.h): the bytes are still
  // the ones validated, but the file on disk is no longer them.
  virtual bool detached() const { return false; }
  // The file's last modification (Unix time) as it was when mapped: read from the mapped
  // file itself, so a file renamed over the path since then does not change it. nullopt
  // when unknown (memory files).
  virtual std::optional<double> modified_time() const { return std::nullopt; }
};

// An exclusive advisory lock (flock) held until destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  // The process-wide POSIX Env.
  static Env& Default();

  // Creates path afresh for writing, with the given mode: removes whatever name is there
  // first (a stale file, or a symlink, which is never followed), then creates it with
  // O_EXCL|O_NOFOLLOW, so a file or link planted in between makes this fail rather than be
  // written through.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                                mode_t mode) = 0;
  // Opens an existing regular file of this user for writing in place (no truncation, no
  // new name; never follows a symlink). Overwriting blocks a file already has needs no free
  // space, which is how the exit status reaches `dtkfs umount` on a full disk.
  virtual Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) = 0;
  // The first max_bytes bytes of a regular file of this user (never follows a symlink;
  // NotFound if absent; a file of another owner, a directory or a fifo is refused).
  virtual Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) = 0;
  virtual Result<std::shared_ptr<const MappedFile>> MapReadOnly(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // fsync of a directory, so a rename in it is durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // syncfs on the filesystem holding path (compaction makes the source's data durable before
  // an index that counts it replaces the old one).
  virtual Status SyncFilesystem(const std::string& path) = 0;
  // mkdir -p with mode for directories it creates.
  virtual Status CreateDirs(const std::string& dir, mode_t mode) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // The names in dir (not "." or ".."), in no particular order (the journal's files).
  virtual Result<std::vector<std::string>> ListDirectory(const std::string& dir) = 0;
  // Takes an exclusive flock on path (created with mode 0600 if absent; never follows a
  // symlink; must be a regular file of this user); Busy if held, any other failure says what
  // failed.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
  // Takes an exclusive flock on the directory itself (an O_RDONLY|O_DIRECTORY fd, no file
  // created); Busy if held.
  virtual Result<std::unique_ptr<FileLock>> LockDirectory(const std::string& dir) = 0;
};

}  // namespace dtkfs

namespace dtkfs {
// A MappedFile over bytes in memory (tests, the fuzz target, tools reading from a buffer).
std::shared_ptr<const MappedFile> MakeMemoryFile(std::string bytes, std::string name);
}  // namespace dtkfs
