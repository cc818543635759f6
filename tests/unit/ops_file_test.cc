// Open-file decisions that need no mount: when the kernel may skip FLUSH at close.
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
