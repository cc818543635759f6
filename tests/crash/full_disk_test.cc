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
#include <memory>
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

// A mount of a small tree whose index lives on a 1 MiB tmpfs (filled by Fill).
struct SmallIndexDisk {
  MountFixture fx;
  TempDir t;
  std::unique_ptr<SmallTmpfs> small;
  std::string index = t / "full/x.idx";
  std::string filler = t / "full/filler";

  // False (with the test's warning or failure given) when FUSE or root is missing.
  bool Set() {
    if (!fx.available() || ::geteuid() != 0) return false;
    MakeTree(fx.src());
    small = std::make_unique<SmallTmpfs>(t / "full", "1m");
    return small->mounted();
  }
  void Fill() { Run({"sh", "-c", "cat /dev/zero > " + filler}); }
};

}  // namespace

TEST_CASE("full disk: compaction fails, totals stay exact, and it succeeds once space returns",
          "[crash]") {
  SmallIndexDisk d;
  MountFixture& fx = d.fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts a tmpfs");
  REQUIRE(d.Set());
  const std::string& index = d.index;
  auto mounted = fx.Mount({"--index", index, "--compact-interval", "1"});
  INFO(mounted.err);
  REQUIRE(mounted.status == 0);
  Change(fx.mnt(), 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);

  // The disk fills up: every compaction and journal write fails from now on.
  d.Fill();
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
  REQUIRE(::unlink(d.filler.c_str()) == 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);
  CHECK(fx.StatusField("last_result") == "ok");
  CHECK(fx.StatusField("frozen_levels") == "0");
  CHECK_THAT(fx.StatusField("journal"), !Catch::Contains("broken"));

  // A crash now is recovered from the journal alone (no verification), exactly.
  Change(fx.mnt(), 9);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());
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
  SmallIndexDisk d;
  MountFixture& fx = d.fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts a tmpfs");
  REQUIRE(d.Set());
  const std::string& index = d.index;
  REQUIRE(fx.Mount({"--index", index}).status == 0);
  d.Fill();
  Change(fx.mnt(), 1);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());
  REQUIRE(::unlink(d.filler.c_str()) == 0);
  auto again = fx.Mount({"--index", index, "-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.err,
             Catch::Contains("journal could not be written") && Catch::Contains("scanning"));
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}
