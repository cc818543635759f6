// Scanner: the one walk of a source tree, used by `dtkfs scan`, `dtkfs check`, the mount's
// first start and (later) recovery. It computes the Totals of every directory (brief
// section 2) with both cores.
//
// How it walks: relative to directory fds (openat with RESOLVE_NO_SYMLINKS beneath the root,
// getdents64, fstatat with AT_SYMLINK_NOFOLLOW), never following a symlink, without
// recursion (a shared stack of directories to list; any depth works, deep paths are opened
// relative to their parent's fd). Only non-directories are stat'ed.
// An unreadable directory is recorded in errors and counted as what could be read.
//
// Thread-safety: ScanTree is reentrant; it starts and joins its own threads.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dtkfs/totals.h"
#include "index/link_table.h"
#include "util/status.h"

namespace dtkfs {

struct ScanProgress {
  uint64_t entries = 0;
  uint64_t dirs = 0;
  double seconds = 0;
  bool done = false;  // the last report: the walk has finished
};

struct ScanOptions {
  unsigned threads = 2;
  // Called about every 200 ms from a helper thread while the scan runs (null: none).
  std::function<void(const ScanProgress&)> on_progress;
  // Non-directories whose size the caller wants as the walk counted it (ScanResult::sizes):
  // files the mount knows, met in a subtree reconcile scans. Called from the walk's threads.
  std::function<bool(const struct stat& st)> wants_size;
};

struct ScannedSize {
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;
  nlink_t nlink = 0;
  std::string path;  // the name it was met at, relative to the root
};

struct ScanError {
  std::string path;  // relative to the scanned root
  std::string op;    // "open", "read", "stat"
  int err = 0;
  std::string ToString(const std::string& root) const;
};

struct ScanResult {
  // Every directory (the start directory first, as ""-relative paths), sorted by path bytes.
  std::vector<std::pair<std::string, Totals>> dirs;
  std::vector<ScanError> errors;
  // Non-directories seen under two or more names in the walk (the multi-link table; keys
  // relative to root's st_dev).
  std::vector<LinkRecord> links;
  uint64_t entries = 0;            // every entry seen, directories included
  std::vector<ScannedSize> sizes;  // ScanOptions::wants_size's files
};

// One directory's direct entries, as the walk sees them (the same rules: no symlink followed,
// aliases of nested_mounts.h skipped): what reconcile (store/reconcile.h) compares the store
// with.
struct ListedEntry {
  std::string name;
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;  // st_size (non-directories)
  nlink_t nlink = 0;
  bool is_dir = false;
};
struct DirListing {
  dev_t dev = 0;  // the directory itself
  ino_t ino = 0;
  uint64_t bytes = 0;                // st_size of the non-directories directly inside
  uint64_t files = 0;                // how many there are
  std::vector<std::string> subdirs;  // names of the directories directly inside, sorted
  std::vector<ListedEntry> entries;  // every counted entry (ListDirectoryAt with entries)
};
// Lists root/dir (dir relative to root, "" for the root). NotFound when it does not exist (or
// is no longer a directory).
Result<DirListing> ListOneDirectory(const std::string& root, const std::string& dir);
// Opens the directory root_fd/dir (dir relative to the root, "" for the root) for reading,
// following no symlink on the way (util/beneath.h; any length of path). -1 and errno.
int OpenTreeDir(int root_fd, const std::string& dir);
// The same from an open root fd and the tree's alias paths (NestedMounts::alias_paths), for
// callers that list often; with_entries fills DirListing::entries.
Result<DirListing> ListDirectoryAt(int root_fd, const std::string& dir,
                                   const std::set<std::string>& aliases, bool with_entries);

// Walks root/start (start is relative to root, "" for the whole tree; no symlink on the way to
// it is followed, and it may be longer than PATH_MAX). Paths in the result are relative to
// root. Fails only when start is not a valid relative path or cannot be opened.
Result<ScanResult> ScanTree(const std::string& root, const std::string& start,
                            const ScanOptions& options);

}  // namespace dtkfs
