// Compaction that keeps failing (issue "the write-intent journal", part 3): the index lives
// on a small tmpfs that a filler file fills. Compactions fail (ENOSPC), the mount keeps
// serving exact totals, `dtkfs compact` says it failed, frozen overlays do not pile up, and
// once the filler is gone compaction succeeds, the journal works again, and a crash after
// that recovers exactly.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/small_tmpfs.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::testing;

namespace {

void MakeTree(const std::string& src) {
  for (int d = 0; d < 40; ++d) {
    const std::string dir = src + "/d" + std::to_string(d) + "/sub";
    std::filesystem::create_directories(dir);
    WriteFileBytes(dir + "/f", std::string(100 + d, 'x'));
  }
}

// Some changes of every kind through the mount.
void Change(const std::string& mnt, int round) {
  const std::string r = std::to_string(round);
  std::filesystem::create_directories(mnt + "/new" + r + "/deeper");
  std::ofstream(mnt + "/new" + r + "/deeper/file") << std::string(777 + round, 'n');
  std::ofstream(mnt + "/d" + r + "/sub/f", std::ios::app) << std::string(1000, 'a');
  std::filesystem::remove_all(mnt + "/d" + std::to_string(round + 20));
}

}  // namespace

TEST_CASE("full disk: compaction fails, totals stay exact, and it succeeds once space returns",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts a tmpfs");
  MakeTree(fx.src());
  TempDir t;
  SmallTmpfs small(t / "full", "1m");
  REQUIRE(small.mounted());
  const std::string index = t / "full/x.idx";
  auto mounted = fx.Mount({"--index", index, "--compact-interval", "1"});
  INFO(mounted.err);
  REQUIRE(mounted.status == 0);
  Change(fx.mnt(), 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);

  // The disk fills up: every compaction and journal write fails from now on.
  CHECK(Run({"sh", "-c", "cat /dev/zero > " + t / "full/filler"}).status != 0);
  for (int round = 1; round <= 8; ++round) {
    Change(fx.mnt(), round);
    REQUIRE(fx.Differences() == "");
    auto compact = Run({DtkfsBinary(), "compact", fx.mnt()});
    CHECK(compact.status != 0);
    CHECK_THAT(compact.err, Catch::Contains("No space left on device"));
  }
  CHECK_THAT(fx.StatusField("last_result"), Catch::Contains("No space left"));
  CHECK_THAT(fx.StatusField("journal"), Catch::Contains("broken"));
  // Eight failed compactions froze eight overlays: merged, not piled up.
  CHECK(std::stoul(fx.StatusField("frozen_levels")) <= 5);
  REQUIRE(fx.Differences() == "");

  // Space returns: the next compaction (the thread retries with backoff; `dtkfs compact`
  // asks at once) writes everything, and the journal works again.
  REQUIRE(::unlink((t / "full/filler").c_str()) == 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);
  CHECK(fx.StatusField("last_result") == "ok");
  CHECK(fx.StatusField("frozen_levels") == "0");
  CHECK_THAT(fx.StatusField("journal"), !Catch::Contains("broken"));

  // A crash now is recovered from the journal alone (no verification), exactly.
  Change(fx.mnt(), 9);
  REQUIRE(fx.Differences() == "");
  const pid_t pid = fx.DaemonPid();
  REQUIRE(pid > 0);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(WaitForExit(pid, 20));
  Run({"fusermount3", "-u", "-z", fx.mnt()});
  auto again = fx.Mount({"--index", index, "-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.err, Catch::Contains("recovered from journal"));
  CHECK_THAT(fx.StatusField("recovery"), Catch::Contains("reconciled"));
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("full disk at a crash: the broken journal makes the next mount rescan, exactly",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts a tmpfs");
  MakeTree(fx.src());
  TempDir t;
  SmallTmpfs small(t / "full", "1m");
  REQUIRE(small.mounted());
  const std::string index = t / "full/x.idx";
  REQUIRE(fx.Mount({"--index", index}).status == 0);
  CHECK(Run({"sh", "-c", "cat /dev/zero > " + t / "full/filler"}).status != 0);
  Change(fx.mnt(), 1);
  REQUIRE(fx.Differences() == "");
  const pid_t pid = fx.DaemonPid();
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(WaitForExit(pid, 20));
  Run({"fusermount3", "-u", "-z", fx.mnt()});
  REQUIRE(::unlink((t / "full/filler").c_str()) == 0);
  auto again = fx.Mount({"--index", index, "-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.err,
             Catch::Contains("journal could not be written") && Catch::Contains("scanning"));
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}
