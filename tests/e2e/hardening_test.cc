// End-to-end regressions from trying to break the mount (issue "Nothing corrupted, nothing
// lost"): where writes in append mode land, and what the mount counts after them. Each test
// is named after the bug it pins and ends with every directory's xattrs compared with a
// reference walk of the source.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "support/mount_fixture.h"

using namespace dtkfs::testing;

#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x00000020  // Linux 6.9; Debian 12's headers predate it
#endif

namespace {

std::string Slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Put(const std::string& p, const std::string& data) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

}  // namespace

TEST_CASE("regression: mmap write through an O_RDWR|O_APPEND fd lands where it was mapped",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/a").c_str(), 0755);
  Put(fx.src() + "/a/f", std::string(8192, 'A'));
  REQUIRE(fx.Mount().status == 0);

  const std::string f = fx.mnt() + "/a/f";
  int fd = ::open(f.c_str(), O_RDWR | O_APPEND);
  REQUIRE(fd >= 0);
  void* map = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(map != MAP_FAILED);
  std::memcpy(map, "HELLO", 5);
  REQUIRE(::msync(map, 8192, MS_SYNC) == 0);
  REQUIRE(::munmap(map, 8192) == 0);
  REQUIRE(::close(fd) == 0);

  const std::string data = Slurp(fx.src() + "/a/f");
  CHECK(data.size() == 8192);
  CHECK(data.substr(0, 6) == "HELLOA");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: pwritev2 RWF_NOAPPEND on an O_APPEND fd writes at its offset",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  Put(fx.src() + "/f", std::string(100, 'A'));
  REQUIRE(fx.Mount().status == 0);

  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY | O_APPEND);
  REQUIRE(fd >= 0);
  for (int i = 0; i < 3; ++i) {
    char hello[] = "HELLO";
    iovec iov{hello, 5};
    const ssize_t n = ::pwritev2(fd, &iov, 1, 0, RWF_NOAPPEND);
    if (n < 0 && errno == EOPNOTSUPP) {
      WARN("kernel without RWF_NOAPPEND (before 6.9): nothing to check");
      ::close(fd);
      return;
    }
    REQUIRE(n == 5);
    INFO("call " << i);
    REQUIRE(fx.Differences() == "");
  }
  REQUIRE(::close(fd) == 0);
  const std::string data = Slurp(fx.src() + "/f");
  CHECK(data.size() == 100);
  CHECK(data.substr(0, 6) == "HELLOA");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("appends through the mount land at the true end when the file grew beside it",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  Put(fx.src() + "/log", "start\n");
  REQUIRE(fx.Mount().status == 0);

  // The kernel caches the file's size; the other writer appends straight to the source.
  for (int direct : {0, 1}) {
    INFO("O_WRONLY (direct I/O on the FUSE side) = " << direct);
    int fd = ::open((fx.mnt() + "/log").c_str(), (direct ? O_WRONLY : O_RDWR) | O_APPEND);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "mount\n", 6) == 6);
    {
      std::ofstream beside(fx.src() + "/log", std::ios::binary | std::ios::app);
      beside << "beside the mount\n";
    }
    REQUIRE(::write(fd, "mount again\n", 12) == 12);
    REQUIRE(::close(fd) == 0);
    REQUIRE(fx.Differences() == "");
  }
  CHECK(Slurp(fx.src() + "/log") ==
        "start\nmount\nbeside the mount\nmount again\n"
        "mount\nbeside the mount\nmount again\n");
}

TEST_CASE("regression: after fcntl clears O_APPEND, writes go to their offset",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  Put(fx.src() + "/f", std::string(50, 'A'));
  REQUIRE(fx.Mount().status == 0);

  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY | O_APPEND);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "BB", 2) == 2);  // appended: 52 bytes
  REQUIRE(::fcntl(fd, F_SETFL, 0) == 0);
  REQUIRE(::pwrite(fd, "C", 1, 0) == 1);
  REQUIRE(::close(fd) == 0);
  CHECK(Slurp(fx.src() + "/f") == "C" + std::string(49, 'A') + "BB");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: a write inside the counted size of a file that shrank beside the mount "
          "is counted",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  Put(fx.src() + "/f", std::string(1000, 'A'));
  REQUIRE(fx.Mount().status == 0);

  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::truncate((fx.src() + "/f").c_str(), 0) == 0);  // beside the mount
  REQUIRE(::pwrite(fd, "0123456789", 10, 0) == 10);         // ends inside the old size
  REQUIRE(::close(fd) == 0);
  CHECK(Slurp(fx.src() + "/f") == "0123456789");
  REQUIRE(fx.Differences() == "");
}
