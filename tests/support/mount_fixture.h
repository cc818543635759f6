// MountFixture: a real dtkfs mount for end-to-end tests, and the check every such test ends
// with: each directory's three xattrs, read through the mount, equal ReferenceWalk of the
// source.
//
// Needs /dev/fuse and fusermount3. Without them the fixture's available() is false and the
// test returns early with a warning, unless DTKFS_REQUIRE_FUSE=1 (CI), where it fails.
// The destructor unmounts (lazily if needed) whatever is still mounted, so a failing test
// never leaves a mount behind; it kills nothing.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "dtkfs/totals.h"
#include "support/temp_dir.h"

namespace dtkfs::testing {

struct CommandResult {
  int status = -1;  // exit status
  std::string out, err;
};
// Runs argv (argv[0] searched in PATH) and captures its output.
CommandResult Run(const std::vector<std::string>& argv);
// The dtkfs binary under test.
std::string DtkfsBinary();
// The same with kill points that act (util/kill_point.h): DTKFS_KILL_AT kills it.
std::string KillableBinary();

class MountFixture {
 public:
  MountFixture();
  ~MountFixture();

  // True when FUSE can be used here. With DTKFS_REQUIRE_FUSE=1 a false here fails the test.
  bool available() const { return available_; }
  std::string src() const { return dir_ / "src"; }
  std::string mnt() const { return dir_ / "mnt"; }
  std::string index() const { return dir_ / "state/tree.idx"; }
  std::string state() const { return dir_ / "state"; }

  // dtkfs mount SRC MNT --index INDEX extra...; returns the command's result.
  CommandResult Mount(const std::vector<std::string>& extra = {});
  // The same, run by launcher (e.g. {"prlimit", "--nofile=256:256"}: the daemon inherits it).
  CommandResult MountUnder(const std::vector<std::string>& launcher,
                           const std::vector<std::string>& extra = {});
  // dtkfs umount MNT.
  CommandResult Unmount();
  // kill -9 of the daemon, as a crash would: waits until it has let go of everything
  // (aborting its connection if a daemon thread stays stuck in the kernel, see
  // AbortConnection) and clears the dead mount (fusermount3 -uz). False if it would not die.
  bool CrashDaemon();
  // Aborts the mount's FUSE connection (/sys/fs/fuse/connections/N/abort): every request
  // waiting on a dead daemon ends. A killed daemon can keep its connection open when one of
  // its threads is stuck in a cache invalidation that waits for a directory lock held by a
  // request only the daemon could answer.
  void AbortConnection() const;
  // Mounts with binary from now on (KillableBinary for the crash tests).
  void UseBinary(std::string binary) { binary_ = std::move(binary); }
  bool mounted() const;

  // The daemon's pid, from its control channel (-1 if it does not answer).
  pid_t DaemonPid() const;
  // One "key: value" line of the daemon's status ("" if it does not answer or has no key).
  std::string StatusField(const std::string& key) const;
  // Waits (at most timeout_s) until the daemon has finished `runs` verifications and is not
  // running one; true if it has.
  bool WaitForVerify(uint64_t runs, int timeout_s) const;

  // Every directory of the source, its xattrs read through the mount.
  std::map<std::string, Totals> MountTotals() const;
  // "" when MountTotals() equals ReferenceWalk(src()), else the differences.
  std::string Differences() const;

 private:
  TempDir dir_;
  std::string binary_ = DtkfsBinary();
  bool available_ = false;
};

// Waits until process pid has exited (at most timeout_s seconds); true if it has.
bool WaitForExit(pid_t pid, int timeout_s);
// Whether pid runs: a zombie does not (a killed daemon whose last thread is stuck).
bool ProcessAlive(pid_t pid);
// Whether pid has let go of its descriptors, and with them its locks: gone, or a zombie
// with no thread left.
bool ProcessGone(pid_t pid);

// Reads the three size xattrs of path (nullopt-like zero Totals with ok=false on failure).
bool ReadTotals(const std::string& path, Totals* out);

}  // namespace dtkfs::testing

// Skips (with a warning) or fails, per DTKFS_REQUIRE_FUSE, when FUSE is unavailable.
#define DTKFS_REQUIRE_MOUNTABLE(fixture)                                                         \
  do {                                                                                           \
    if (!(fixture).available()) {                                                                \
      const char* req = std::getenv("DTKFS_REQUIRE_FUSE");                                       \
      if (req != nullptr && std::string(req) == "1")                                             \
        FAIL("FUSE is required (DTKFS_REQUIRE_FUSE=1) but /dev/fuse or fusermount3 is missing"); \
      WARN("FUSE unavailable: end-to-end test not run");                                         \
      return;                                                                                    \
    }                                                                                            \
  } while (0)

// Ends a test that needs root (mounts, other users, sysctls) with a warning when not root.
#define DTKFS_ROOT_ONLY(why)                \
  do {                                      \
    if (::geteuid() != 0) {                 \
      WARN("not root, not run: " << (why)); \
      return;                               \
    }                                       \
  } while (0)
