// Decisions that need no mount: when the kernel may skip FLUSH at close, and how long it may
// keep a file's attributes.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "fs/ops.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::fs;

TEST_CASE("FLUSH is skipped for read-only opens, and write-only ones where close cannot fail",
          "[fs]") {
  dtkfs::testing::TempDir dir;
  const std::string path = dir / "f";
  std::ofstream(path) << "x";
  auto flush_useless = [&](int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const bool useless = FlushUseless(fd, flags);
    ::close(fd);
    return useless;
  };
  CHECK(flush_useless(O_RDONLY));
  // May be mmap'ed: the kernel writes dirty pages back at FLUSH.
  CHECK_FALSE(flush_useless(O_RDWR));
  struct statfs sfs;
  REQUIRE(::statfs(path.c_str(), &sfs) == 0);
  const bool local = sfs.f_type == EXT4_SUPER_MAGIC || sfs.f_type == XFS_SUPER_MAGIC ||
                     sfs.f_type == BTRFS_SUPER_MAGIC || sfs.f_type == TMPFS_MAGIC;
  CHECK(flush_useless(O_WRONLY) == local);
  // /proc's files have no ->flush either, but dtkfs knows only the filesystems it names.
  const int proc = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  REQUIRE(proc >= 0);
  CHECK_FALSE(FlushUseless(proc, O_WRONLY));
  ::close(proc);
}

TEST_CASE("a setuid or setgid file's attributes are kept 1 s at most, whatever attr_timeout",
          "[fs]") {
  Options options;
  options.attr_timeout = 3600;
  struct stat st {};
  st.st_mode = S_IFREG | 0755;
  CHECK(AttrTimeoutFor(options, st) == 3600);
  st.st_mode = S_IFREG | S_ISUID | 0755;
  CHECK(AttrTimeoutFor(options, st) == 1.0);
  st.st_mode = S_IFREG | S_ISGID | 0755;
  CHECK(AttrTimeoutFor(options, st) == 1.0);
  st.st_mode = S_IFDIR | S_ISGID | 0755;  // a setgid directory: its bit is not cleared
  CHECK(AttrTimeoutFor(options, st) == 3600);
  options.attr_timeout = 0.5;
  st.st_mode = S_IFREG | S_ISUID | 0755;
  CHECK(AttrTimeoutFor(options, st) == 0.5);
}
