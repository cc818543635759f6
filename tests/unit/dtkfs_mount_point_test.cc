// Identifying a dtkfs mount from /proc/self/mountinfo (src/cli/mount_point.h), and the CLI
// refusing directories that only pretend to be one.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <string>

#include "cli/mount_point.h"
#include "support/mount_fixture.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::cli;
using dtkfs::testing::DtkfsBinary;
using dtkfs::testing::TempDir;

TEST_CASE("mountinfo: fields are decoded and optional fields skipped", "[cli][safety]") {
  CHECK(DecodeMountInfoField("/mnt/with\\040space") == "/mnt/with space");
  CHECK(DecodeMountInfoField("/a\\011tab\\012nl\\134bs") == "/a\ttab\nnl\\bs");
  CHECK(DecodeMountInfoField("/trailing\\04") == "/trailing\\04");  // not an escape
  CHECK(DecodeMountInfoField("/not\\9999") == "/not\\9999");

  const std::string text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "60 22 0:50 / /mnt/my\\040dtk rw,nosuid,nodev,relatime shared:30 master:2 - fuse.dtkfs "
      "dtkfs:/src rw,user_id=0,group_id=0\n"
      "61 22 0:51 / /tmp rw - tmpfs tmpfs rw\n"
      "garbage line\n"
      "62 61 0:52 / /tmp/x rw - fuse.dtkfs dtkfs:/y rw\n";
  auto table = ParseMountInfo(text);
  REQUIRE(table.size() == 4);
  CHECK(table[1].mount_point == "/mnt/my dtk");
  CHECK(table[1].fstype == "fuse.dtkfs");
  CHECK(table[2].fstype == "tmpfs");

  CHECK(CheckDtkfsMountPoint("/mnt/my dtk", table).ok());
  CHECK(CheckDtkfsMountPoint("/tmp/x", table).ok());
  CHECK_THAT(CheckDtkfsMountPoint("/mnt/my dtk/sub/dir", table).message(),
             Catch::Contains("not a dtkfs mount point") &&
                 Catch::Contains("inside the dtkfs mount /mnt/my dtk"));
  CHECK_THAT(CheckDtkfsMountPoint("/tmp", table).message(),
             Catch::Contains("not a dtkfs mount") && Catch::Contains("tmpfs"));
  CHECK_THAT(CheckDtkfsMountPoint("/home/me", table).message(),
             Catch::Contains("not a dtkfs mount") && Catch::Contains("ext4"));
  CHECK_FALSE(CheckDtkfsMountPoint("/mnt/my", table).ok());  // a prefix is not the mount
  // Something else mounted on top of a dtkfs mount hides it.
  auto stacked = ParseMountInfo(text + "63 60 0:53 / /mnt/my\\040dtk rw - tmpfs t rw\n");
  CHECK_FALSE(CheckDtkfsMountPoint("/mnt/my dtk", stacked).ok());
}

TEST_CASE(
    "regression: a forged user.dtkfs.status on a plain directory fools neither umount nor status",
    "[cli][safety]") {
  TempDir t;
  const std::string dir = t / "plain";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  // Where user xattrs are supported, forge the status the way the review did; either way
  // the directory is not a dtkfs mount.
  const bool forged = ::setxattr(dir.c_str(), "user.dtkfs.status", "hello", 5, 0) == 0;
  if (!forged) WARN("user xattrs unsupported here: testing without the forged status");
  for (const char* cmd : {"umount", "status", "compact"}) {
    INFO(cmd);
    auto r = testing::Run({DtkfsBinary(), cmd, dir});
    CHECK(r.status == 2);  // not 134 (an uncaught exception)
    CHECK_THAT(r.err, Catch::Contains(dir) && Catch::Contains("not a dtkfs mount"));
    CHECK(r.out.find("hello") == std::string::npos);
  }
  // A forged pid cannot reach kill() or a wait.
  if (forged) {
    const std::string fake = "pid: 1\nindex: /etc/passwd\n";
    REQUIRE(::setxattr(dir.c_str(), "user.dtkfs.status", fake.data(), fake.size(), 0) == 0);
    auto r = testing::Run({DtkfsBinary(), "umount", dir});
    CHECK(r.status == 2);
  }
  auto missing = testing::Run({DtkfsBinary(), "status", t / "missing"});
  CHECK(missing.status == 2);
  CHECK_THAT(missing.err, Catch::Contains(t / "missing"));
}
