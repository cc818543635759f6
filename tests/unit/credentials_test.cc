#include "fs/credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

using dtkfs::fs::ParseStatusGroups;

TEST_CASE("a caller's supplementary groups are read from its /proc status", "[fs]") {
  const std::string status =
      "Name:\tsh\nUmask:\t0022\nUid:\t65534\t65534\t65534\t65534\n"
      "Gid:\t65534\t65534\t65534\t65534\nFDSize:\t64\nGroups:\t4 24 4242 \nNStgid:\t7\n";
  auto groups = ParseStatusGroups(status);
  REQUIRE(groups.has_value());
  CHECK(*groups == std::vector<gid_t>{4, 24, 4242});
}

TEST_CASE("a caller without supplementary groups has none", "[fs]") {
  auto groups = ParseStatusGroups("Name:\tx\nGroups:\t\nNStgid:\t7\n");
  REQUIRE(groups.has_value());
  CHECK(groups->empty());
  groups = ParseStatusGroups("Groups:");  // the last line, no newline
  REQUIRE(groups.has_value());
  CHECK(groups->empty());
}

TEST_CASE("a status that cannot be read gives no groups rather than wrong ones", "[fs]") {
  CHECK_FALSE(ParseStatusGroups("").has_value());
  CHECK_FALSE(ParseStatusGroups("Name:\tx\nUid:\t0\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t4 x24\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t4 -1\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t99999999999\n").has_value());
  // A key that only starts the same is another key.
  CHECK_FALSE(ParseStatusGroups("GroupsX:\t1\n").has_value());
}

TEST_CASE("the live status of this process parses", "[fs]") {
  std::ifstream in("/proc/self/status");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto groups = ParseStatusGroups(text);
  REQUIRE(groups.has_value());
  std::vector<gid_t> mine(static_cast<size_t>(::getgroups(0, nullptr)));
  mine.resize(static_cast<size_t>(::getgroups(static_cast<int>(mine.size()), mine.data())));
  std::sort(mine.begin(), mine.end());
  std::sort(groups->begin(), groups->end());
  CHECK(*groups == mine);
}

// libfuse starts a worker from a worker, in the middle of that worker's request, and a thread
// starts with the credentials and the fs_struct (umask) of the thread that made it: a new
// worker may start as the last caller of another one, not as the daemon.
TEST_CASE("regression: a worker started by a worker acting as a caller acts as the daemon",
          "[fs]") {
  if (::geteuid() != 0) {
    WARN("not root, not run: acting as callers is for a root daemon");
    return;
  }
  dtkfs::fs::InitCredentials();
  long fsuid_as_daemon = -1;
  std::thread worker([&] {
    ::syscall(SYS_setfsuid, 65534);  // as ActAsCaller leaves a thread for nobody
    std::thread started([&] {
      dtkfs::fs::AsDaemon as_daemon;
      fsuid_as_daemon = ::syscall(SYS_setfsuid, -1);
    });
    started.join();
    ::syscall(SYS_setfsuid, 0);
  });
  worker.join();
  CHECK(fsuid_as_daemon == 0);
}

TEST_CASE("regression: a worker started by a worker with another umask uses its caller's", "[fs]") {
  dtkfs::testing::TempDir dir;
  const std::string file = dir / "f";
  mode_t mode = 0;
  std::thread worker([&] {
    dtkfs::fs::UseCallerUmask(static_cast<mode_t>(077));  // the last caller of this worker
    std::thread started([&] {
      dtkfs::fs::UseCallerUmask(static_cast<mode_t>(0));  // this one's first caller
      const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd >= 0) ::close(fd);  // checked below: no Catch2 assertion in a thread
    });
    started.join();
  });
  worker.join();
  struct stat st;
  REQUIRE(::stat(file.c_str(), &st) == 0);
  mode = st.st_mode & 0777;
  CHECK(mode == 0666);
}
