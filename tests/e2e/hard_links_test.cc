// End-to-end: hard links that exist before the mount (found by the scan, kept in the index's
// link table) or that an earlier mount made. A size change through any name must reach every
// directory that counts the file, even names the kernel never looked up, and an unlink must
// take off what was counted. After each step every directory's xattrs must equal a fresh
// reference walk of the source; after each unmount `dtkfs check` must find the index (totals
// and link table) equal to the source.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "support/mount_fixture.h"

using namespace dtkfs::testing;

namespace {

void Append(const std::string& p, size_t n) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  REQUIRE(fd >= 0);
  std::string data(n, 'h');
  REQUIRE(::write(fd, data.data(), n) == static_cast<ssize_t>(n));
  REQUIRE(::close(fd) == 0);
}

void MakeDirs(const std::string& root, std::initializer_list<const char*> dirs) {
  for (const char* d : dirs) REQUIRE(::mkdir((root + "/" + d).c_str(), 0755) == 0);
}

// The kernel forgets its dentries and inodes (root only), so the next access to any name is
// a fresh lookup: the daemon has to know the other names without the kernel's help.
void DropCaches() {
  std::ofstream drop("/proc/sys/vm/drop_caches");
  drop << "2" << std::endl;
  if (!drop) WARN("could not drop caches: first-meeting lookups not forced");
}

void CheckIndexMatchesSource(MountFixture& fx) {
  auto check = Run({DtkfsBinary(), "check", fx.src(), "--index", fx.index()});
  INFO(check.out << check.err);
  CHECK(check.status == 0);
}

#define EXACT(fx) \
  INFO(step);     \
  REQUIRE((fx).Differences() == "")

}  // namespace

TEST_CASE("hard links made before the mount: every name's directory stays exact", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string s = fx.src();
  MakeDirs(s, {"p", "q", "r", "r/s"});
  Append(s + "/p/f", 1000);  // three names
  REQUIRE(::link((s + "/p/f").c_str(), (s + "/q/g").c_str()) == 0);
  REQUIRE(::link((s + "/p/f").c_str(), (s + "/r/s/h").c_str()) == 0);
  Append(s + "/p/two", 50);  // two names
  REQUIRE(::link((s + "/p/two").c_str(), (s + "/r/two2").c_str()) == 0);
  Append(s + "/q/half", 30);  // its other name is outside the source
  REQUIRE(::link((s + "/q/half").c_str(), (s + "/../outside-name").c_str()) == 0);

  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  std::string step = "mounted (scanned)";
  EXACT(fx);

  step = "append through one name; the others were never looked up";
  Append(m + "/p/f", 111);
  EXACT(fx);
  step = "after the kernel forgets, append through another name";
  DropCaches();
  Append(m + "/q/g", 222);
  EXACT(fx);
  step = "unlink a name met for the first time";
  DropCaches();
  REQUIRE(::unlink((m + "/r/s/h").c_str()) == 0);
  EXACT(fx);
  step = "a file whose other name is outside the source";
  Append(m + "/q/half", 7);
  EXACT(fx);
  step = "rename the directory holding one name, and one name inside its directory";
  REQUIRE(::rename((m + "/r").c_str(), (m + "/r2").c_str()) == 0);
  REQUIRE(::rename((m + "/q/g").c_str(), (m + "/q/g-renamed").c_str()) == 0);
  EXACT(fx);
  REQUIRE(fx.Unmount().status == 0);
  CheckIndexMatchesSource(fx);

  step = "remounted from the index: a write through a name met first";
  REQUIRE(fx.Mount().status == 0);
  Append(m + "/p/two", 33);  // r2/two2 must grow: known only from the index
  EXACT(fx);
  Append(m + "/q/g-renamed", 44);  // p/f must grow
  EXACT(fx);

  step = "only a hard link's name changes, inside its directory, then unmount";
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(::rename((m + "/r2/two2").c_str(), (m + "/r2/two3").c_str()) == 0);
  EXACT(fx);
  REQUIRE(fx.Unmount().status == 0);
  CheckIndexMatchesSource(fx);  // the link table names r2/two3, not r2/two2

  step = "after that remount: grow through the renamed name, unlink the other";
  REQUIRE(fx.Mount().status == 0);
  Append(m + "/r2/two3", 5);
  EXACT(fx);
  DropCaches();
  REQUIRE(::unlink((m + "/p/two").c_str()) == 0);
  EXACT(fx);
  REQUIRE(fx.Unmount().status == 0);
  CheckIndexMatchesSource(fx);
}
