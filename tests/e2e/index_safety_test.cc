// End-to-end: what the daemon refuses at startup and what it keeps safe beside its index
// (issue 8): an index inside the mount point, planted symlinks beside the index, a second
// daemon on one source, out-of-range options, dtkfs commands on a subdirectory of a mount,
// the exit status on a full disk, and totals the daemon knows to be off.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "env/env.h"
#include "index/index_files.h"
#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/reference_walk.h"
#include "support/small_tmpfs.h"

using namespace dtkfs;
using namespace dtkfs::testing;

namespace {

void MakeTree(const std::string& root) {
  REQUIRE(Run({"mkdir", "-p", root + "/a/b", root + "/d"}).status == 0);
  std::ofstream(root + "/a/f1") << std::string(1000, 'a');
  std::ofstream(root + "/a/b/f2") << std::string(2345, 'b');
  std::ofstream(root + "/d/f3") << "hi";
}

bool IsSymlink(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

CommandResult MountWithIndex(const MountFixture& fx, const std::string& index,
                             std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", index};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Run(argv);
}

}  // namespace

TEST_CASE("regression: an index inside the mount point is refused", "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  TempDir t;
  REQUIRE(::symlink(fx.mnt().c_str(), (t / "alias").c_str()) == 0);
  for (const std::string& index : {fx.mnt() + "/x.idx", fx.mnt() + "/new/deeper/x.idx",
                                   t / "alias/x.idx", fx.mnt() + "/../mnt/x.idx"}) {
    INFO(index);
    auto r = MountWithIndex(fx, index);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("inside the mount point"));
    CHECK_FALSE(fx.mounted());
  }
  // Nothing was created in the mount point (it must stay an empty directory).
  CHECK(Run({"find", fx.mnt(), "-mindepth", "1"}).out == "");
  // And the same source mounts fine with its index elsewhere.
  REQUIRE(fx.Mount().status == 0);
  std::ofstream(fx.mnt() + "/a/new") << "new";
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: planted symlinks beside the index are not followed by the daemon",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  TempDir victims;
  const std::string tmp_victim = victims / "root-file-1", exit_victim = victims / "root-file-2",
                    dirty_victim = victims / "root-file-3";
  for (const auto& v : {tmp_victim, exit_victim, dirty_victim}) std::ofstream(v) << "precious\n";
  REQUIRE(::symlink(tmp_victim.c_str(), IndexTempPath(fx.index()).c_str()) == 0);
  REQUIRE(::symlink(exit_victim.c_str(), ExitStatusPath(fx.index()).c_str()) == 0);

  auto first = fx.Mount();
  INFO(first.err);
  REQUIRE(first.status == 0);
  std::ofstream(fx.mnt() + "/a/more") << std::string(500, 'm');
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);  // writes INDEX.tmp
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  CHECK(ReadFileBytes(tmp_victim) == "precious\n");
  CHECK(ReadFileBytes(exit_victim) == "precious\n");
  CHECK_FALSE(IsSymlink(ExitStatusPath(fx.index())));
  CHECK_FALSE(Env::Default().FileExists(IndexTempPath(fx.index())));

  // A link at INDEX.dirty: the daemon refuses it (naming it) rather than read or replace it.
  REQUIRE(::symlink(dirty_victim.c_str(), DirtyMarkerPath(fx.index()).c_str()) == 0);
  auto refused = fx.Mount();
  CHECK(refused.status == 2);
  CHECK_THAT(refused.err,
             Catch::Contains(DirtyMarkerPath(fx.index())) && Catch::Contains("symbolic link"));
  CHECK_FALSE(fx.mounted());
  CHECK(ReadFileBytes(dirty_victim) == "precious\n");

  REQUIRE(::unlink(DirtyMarkerPath(fx.index()).c_str()) == 0);
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: a second daemon on the same source is refused, whatever its index",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  MountFixture other;  // its mount point, and its destructor should the refusal fail
  TempDir state;
  auto second =
      Run({DtkfsBinary(), "mount", fx.src(), other.mnt(), "--index", state / "another.idx"});
  CHECK(second.status == 2);
  CHECK_THAT(second.err, Catch::Contains(fx.src()) && Catch::Contains("already mounted"));
  CHECK_FALSE(other.mounted());
  CHECK_FALSE(Env::Default().FileExists(state / "another.idx"));
  // Also through another path to the same directory.
  REQUIRE(::symlink(fx.src().c_str(), (state / "alias").c_str()) == 0);
  auto aliased =
      Run({DtkfsBinary(), "mount", state / "alias", other.mnt(), "--index", state / "third.idx"});
  CHECK(aliased.status == 2);
  CHECK_FALSE(other.mounted());

  // The first mount stays exact.
  REQUIRE(Run({"cp", "-r", fx.mnt() + "/a", fx.mnt() + "/a2"}).status == 0);
  REQUIRE(Run({"rm", "-rf", fx.mnt() + "/d"}).status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  // Once it is gone, the source can be mounted again.
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: out-of-range compact intervals and -o numbers are refused",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  for (const std::vector<std::string>& extra :
       std::vector<std::vector<std::string>>{{"--compact-interval", "1e10"},
                                             {"--compact-interval", "inf"},
                                             {"--compact-interval", "nan"},
                                             {"--compact-interval", "-1"},
                                             {"-o", "compact_interval=inf"},
                                             {"-o", "compact_interval=1e10"},
                                             {"-o", "compact_interval=nan"},
                                             {"-o", "entry_timeout=1e300"},
                                             {"-o", "attr_timeout=-1"},
                                             {"-o", "compact_threshold=0"},
                                             {"-o", "compact_threshold=1e12"},
                                             {"-o", "threads=1.5"}}) {
    INFO(extra[0] << " " << extra[1]);
    auto r = fx.Mount(extra);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("valid:"));
    CHECK_FALSE(fx.mounted());
  }
  // The largest interval is accepted, and the daemon idles (no spinning wait).
  REQUIRE(fx.Mount({"--compact-interval", "604800"}).status == 0);
  std::ofstream(fx.mnt() + "/a/x") << "x";
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: umount, status and compact on a subdirectory say it is not the mount point",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  for (const char* cmd : {"umount", "status", "compact"}) {
    INFO(cmd);
    auto r = Run({DtkfsBinary(), cmd, fx.mnt() + "/a/b"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("not a dtkfs mount point") && Catch::Contains(fx.mnt()));
    CHECK(fx.mounted());
  }
  // The mount point itself, also through a relative path, works.
  auto status = Run({"sh", "-c", "cd " + fx.mnt() + "/.. && " + DtkfsBinary() + " status mnt"});
  CHECK(status.status == 0);
  CHECK_THAT(status.out, Catch::Contains("totals: exact"));
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: a final compaction failing on a full disk reaches dtkfs umount",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  TempDir t;
  SmallTmpfs small(t / "full", "1m");
  if (!small.mounted()) {
    const char* req = std::getenv("DTKFS_REQUIRE_FUSE");
    if (req != nullptr && std::string(req) == "1")
      FAIL("cannot mount a tmpfs for the full-disk test: " << small.error());
    WARN("cannot mount a tmpfs (" << small.error() << "): full-disk test not run");
    return;
  }
  const std::string index = t / "full/x.idx";
  auto mounted = MountWithIndex(fx, index);
  INFO(mounted.err);
  REQUIRE(mounted.status == 0);
  // Fill the index's filesystem, then change the tree so the final compaction must write.
  auto fill = Run({"sh", "-c", "cat /dev/zero > " + t / "full/filler"});
  CHECK(fill.status != 0);
  CHECK_THAT(fill.err, Catch::Contains("No space left"));
  std::ofstream(fx.mnt() + "/a/late") << std::string(3000, 'l');
  REQUIRE(fx.Differences() == "");

  auto um = fx.Unmount();
  INFO(um.err);
  CHECK(um.status == 2);
  CHECK_THAT(um.err, Catch::Contains("final compaction error") &&
                         Catch::Contains("No space left on device"));
  CHECK(um.err.find("result unknown") == std::string::npos);
  CHECK_FALSE(fx.mounted());
  // The journal beside the index could not be written either: INDEX.last-exit says so.
  CHECK_THAT(ReadFileBytes(ExitStatusPath(index)), Catch::Contains("journal: "));

  // With room again, the next mount rescans (the journal could not say where to look) and is
  // exact.
  REQUIRE(::unlink((t / "full/filler").c_str()) == 0);
  auto again = MountWithIndex(fx, index);
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.err, Catch::Contains("scanning"));
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: an index on a read-only filesystem is not reported as 'in use'",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  TempDir t;
  SmallTmpfs small(t / "ro", "1m");
  if (!small.mounted()) {
    const char* req = std::getenv("DTKFS_REQUIRE_FUSE");
    if (req != nullptr && std::string(req) == "1")
      FAIL("cannot mount a tmpfs for the read-only test: " << small.error());
    WARN("cannot mount a tmpfs (" << small.error() << "): read-only test not run");
    return;
  }
  const std::string index = t / "ro/x.idx";
  REQUIRE(Run({DtkfsBinary(), "scan", fx.src(), "--index", index}).status == 0);
  REQUIRE(::mount(nullptr, (t / "ro").c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", index},
           {DtkfsBinary(), "scan", fx.src(), "--index", index}}) {
    INFO(argv[1]);
    auto r = Run(argv);
    CHECK(r.status == 2);
    CHECK_THAT(r.err,
               Catch::Contains(IndexLockPath(index)) && Catch::Contains("Read-only file system"));
    CHECK(r.err.find("in use") == std::string::npos);
    CHECK_FALSE(fx.mounted());
  }
  REQUIRE(fx.Mount().status == 0);  // with its index elsewhere it mounts
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: changes the size store cannot apply leave the index marked for a rescan",
          "[e2e][safety]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  std::ofstream(fx.src() + "/d/grows") << std::string(10, 'g');
  // Not watching the source, so a change beside the mount stays unknown to the store (with
  // the watcher this sequence is exact: out_of_band_test.cc).
  REQUIRE(fx.Mount({"-o", "watch=off"}).status == 0);
  // Beside the mount: the file grows in the source, then goes through the mount. The store
  // counted 10 bytes in d; the unlink takes off 5000: "would go negative".
  std::ofstream(fx.src() + "/d/grows", std::ios::app) << std::string(4990, 'g');
  REQUIRE(::unlink((fx.mnt() + "/d/grows").c_str()) == 0);

  auto status = Run({DtkfsBinary(), "status", fx.mnt()});
  CHECK_THAT(status.out, Catch::Contains("totals: suspect (") && Catch::Contains("negative"));
  auto um = fx.Unmount();
  INFO(um.err);
  CHECK(um.status == 0);  // unmounted, index written: a warning, not an error
  CHECK_THAT(um.err, Catch::Contains("warning") && Catch::Contains("suspect"));
  REQUIRE(Env::Default().FileExists(DirtyMarkerPath(fx.index())));
  CHECK_THAT(ReadFileBytes(DirtyMarkerPath(fx.index())), Catch::StartsWith("suspect: "));

  auto again = fx.Mount();
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.err, Catch::Contains("scanning") && Catch::Contains("could not apply"));
  REQUIRE(fx.Differences() == "");
  auto clean = fx.Unmount();
  CHECK(clean.status == 0);
  CHECK(clean.err.find("warning") == std::string::npos);
  CHECK_FALSE(Env::Default().FileExists(DirtyMarkerPath(fx.index())));
}
