// A directory put, through the mount, at a path where the index a crash leaves still holds
// another one must be scanned whole at recovery (a "replaced" record), whatever the store's
// current levels say about that path: a rename map above the index hides it, and a
// tombstone frozen by a compaction that never landed hides it too. Found by the breaker.
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

// X with more subdirectories than a rename rewrites in place (1024): renaming it pushes a
// rename map.
void MakeBigDir(const std::string& x) {
  for (int i = 0; i < 1100; ++i) {
    const std::string d = x + "/d" + std::to_string(i);
    std::filesystem::create_directories(d);
    WriteFileBytes(d + "/f", "hello\n");
  }
}

}  // namespace

TEST_CASE("regression: a big directory renamed away, a new one made at its old path, crash",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  fx.UseBinary(KillableBinary());
  MakeBigDir(fx.src() + "/a/X");
  std::filesystem::create_directories(fx.src() + "/c");
  REQUIRE(fx.Mount({"-o", "verify=off"}).status == 0);
  REQUIRE(fx.Unmount().status == 0);  // the index holds a/X
  REQUIRE(fx.Mount({"-o", "verify=off"}).status == 0);
  std::filesystem::rename(fx.mnt() + "/a/X", fx.mnt() + "/c/X");
  std::filesystem::create_directory(fx.mnt() + "/a/X");
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());
  auto again = fx.Mount({"-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(fx.StatusField("recovery"), Catch::Contains("reconciled"));
  // Without the record, a/X kept the old subtree: counted there and at c/X.
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: a big directory renamed away and back with a write inside, crash",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  fx.UseBinary(KillableBinary());
  MakeBigDir(fx.src() + "/a/X");
  std::filesystem::create_directories(fx.src() + "/c");
  REQUIRE(fx.Mount({"-o", "verify=off"}).status == 0);
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(fx.Mount({"-o", "verify=off"}).status == 0);
  std::filesystem::rename(fx.mnt() + "/a/X", fx.mnt() + "/c/X");
  std::ofstream(fx.mnt() + "/c/X/d7/new") << std::string(12345, 'n');
  std::filesystem::rename(fx.mnt() + "/c/X", fx.mnt() + "/a/X");
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());
  auto again = fx.Mount({"-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  // Without the record, the write (marked as c/X/d7, a path the index never held) was lost.
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("regression: a directory re-made at a path whose removal a failed compaction froze",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts a tmpfs");
  fx.UseBinary(KillableBinary());
  TempDir t;
  SmallTmpfs small(t / "disk", "1m");
  REQUIRE(small.mounted());
  const std::string index = t / "disk/x.idx";
  std::filesystem::create_directories(fx.src() + "/a/X/s");
  std::filesystem::create_directories(fx.src() + "/c");
  WriteFileBytes(fx.src() + "/a/X/s/f", "data\n");
  // An index of a few hundred KiB, so a disk with some KiB free takes journal pages but
  // not a new index.
  for (int i = 0; i < 3000; ++i)
    std::filesystem::create_directories(fx.src() + "/bulk/directory-with-a-longish-name-" +
                                        std::to_string(i));
  REQUIRE(fx.Mount({"--index", index, "--compact-interval", "0", "-o", "verify=off"}).status == 0);
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(fx.Mount({"--index", index, "--compact-interval", "0", "-o", "verify=off"}).status == 0);
  const auto space = std::filesystem::space(t / "disk");
  REQUIRE(space.available > 64 * 1024);
  WriteFileBytes(t / "disk/filler", std::string(space.available - 40 * 1024, 'z'));
  std::filesystem::rename(fx.mnt() + "/a/X", fx.mnt() + "/c/X");  // a/X: a tombstone
  auto compact = Run({DtkfsBinary(), "compact", fx.mnt()});
  REQUIRE(compact.status != 0);  // ENOSPC: the tombstone stays frozen, the old index stays
  std::filesystem::create_directory(fx.mnt() + "/a/X");
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());
  REQUIRE(::unlink((t / "disk/filler").c_str()) == 0);
  auto again = fx.Mount({"--index", index, "-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK_THAT(fx.StatusField("recovery"), Catch::Contains("reconciled"));
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}
