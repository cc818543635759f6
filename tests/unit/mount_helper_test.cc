// How mount(8) starts dtkfs (src/cli/mount_helper.h): the argument forms it uses, as seen
// on Debian 12 (util-linux 2.38) by a helper that printed its argv.
#include "cli/mount_helper.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace dtkfs::cli {
namespace {

using Args = std::vector<std::string>;

bool IsCommand(std::string_view word) { return word == "mount" || word == "du"; }

Result<Invocation> Read(const Args& argv) { return ReadInvocation(argv, IsCommand); }

TEST_CASE("regression: mount(8) runs mount.dtkfs SRC MNT [-sfnv] -o OPTIONS", "[cli]") {
  // `mount -t dtkfs SRC MNT`, an fstab line of type dtkfs (`mount -a`, `mount MNT`).
  auto plain = Read({"/sbin/mount.dtkfs", "/src", "/mnt", "-o", "rw"});
  REQUIRE(plain.ok());
  CHECK(plain->args == Args{"/sbin/mount.dtkfs", "mount", "/src", "/mnt", "-o", "rw"});
  CHECK_FALSE(plain->fake);
  // `user` in fstab: mount(8) adds noexec,nosuid,nodev and keeps user; nofail and _netdev
  // reach the helper too. -s -n -v come before -o.
  auto fstab = Read({"/sbin/mount.dtkfs", "/src", "/mnt", "-s", "-n", "-v", "-o",
                     "rw,noexec,nosuid,nodev,index=/x,user,_netdev,nofail"});
  REQUIRE(fstab.ok());
  CHECK(fstab->args == Args{"/sbin/mount.dtkfs", "mount", "/src", "/mnt", "-o",
                            "rw,noexec,nosuid,nodev,index=/x,user,_netdev,nofail"});
  // Flags clustered, -o glued to its value, -t given, several -o.
  auto odd = Read({"mount.dtkfs", "-snv", "/src", "-t", "dtkfs", "/mnt", "-oro", "-o", "x-a"});
  REQUIRE(odd.ok());
  CHECK(odd->args == Args{"mount.dtkfs", "mount", "/src", "/mnt", "-o", "ro", "-o", "x-a"});
}

TEST_CASE("mount helper: -f (fake) mounts nothing; -N and stray arguments are refused", "[cli]") {
  auto fake = Read({"/sbin/mount.dtkfs", "/src", "/mnt", "-f", "-o", "rw"});
  REQUIRE(fake.ok());
  CHECK(fake->fake);
  for (const Args& bad :
       {Args{"mount.dtkfs", "/src"}, Args{"mount.dtkfs", "/a", "/b", "/c"},
        Args{"mount.dtkfs", "/a", "/b", "-N", "1234"}, Args{"mount.dtkfs", "/a", "/b", "-x"},
        Args{"mount.dtkfs", "/a", "/b", "-o"}}) {
    auto r = Read(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::StartsWith("mount.dtkfs: "));
  }
  auto help = Read({"mount.dtkfs", "--help"});
  REQUIRE(help.ok());
  CHECK(help->args == Args{"mount.dtkfs", "mount", "--help"});
}

TEST_CASE("mount helper: mount.fuse3's dtkfs SRC MNT -o OPTIONS is dtkfs mount", "[cli]") {
  auto fuse3 = Read({"dtkfs", "/src", "/mnt", "-o", "rw,index=/x"});
  REQUIRE(fuse3.ok());
  CHECK(fuse3->args == Args{"dtkfs", "mount", "/src", "/mnt", "-o", "rw,index=/x"});
  // A command, an option or too few words: unchanged.
  for (const Args& same : {Args{"dtkfs", "du", "/x"}, Args{"dtkfs", "--help"},
                           Args{"dtkfs", "/src"}, Args{"/usr/bin/dtkfs", "-h", "x"}}) {
    auto r = Read(same);
    REQUIRE(r.ok());
    CHECK(r->args == same);
  }
}

}  // namespace
}  // namespace dtkfs::cli
