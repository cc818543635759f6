#include "util/beneath.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/files.h"
#include "support/temp_dir.h"

namespace fsys = std::filesystem;
using dtkfs::OpenBeneath;
using dtkfs::StatBeneath;

namespace {

struct Tree {
  dtkfs::testing::TempDir tmp;
  std::string root = tmp / "root";
  std::string outside = tmp / "outside";
  int root_fd = -1;
  Tree() {
    fsys::create_directories(root + "/a/b");
    fsys::create_directories(outside + "/b");
    dtkfs::testing::WriteFileBytes(root + "/a/b/f", "inside");
    dtkfs::testing::WriteFileBytes(outside + "/b/f", "outside!");
    fsys::create_symlink(outside, root + "/swapped");
    fsys::create_symlink("a", root + "/rel");
    root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(root_fd >= 0);
  }
  ~Tree() { ::close(root_fd); }
};

}  // namespace

TEST_CASE("a path below the root opens and stats as usual", "[util]") {
  Tree t;
  struct stat st;
  REQUIRE(StatBeneath(t.root_fd, "a/b/f", &st) == 0);
  CHECK(st.st_size == 6);
  const int fd = OpenBeneath(t.root_fd, "a/b", O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  ::close(fd);
  const int root = OpenBeneath(t.root_fd, "", O_RDONLY | O_DIRECTORY);
  REQUIRE(root >= 0);  // a readable descriptor even from an O_PATH root
  ::close(root);
}

TEST_CASE("a directory swapped for a symlink cannot lead outside the source", "[util]") {
  Tree t;
  struct stat st;
  CHECK(StatBeneath(t.root_fd, "swapped/b/f", &st) != 0);
  CHECK(OpenBeneath(t.root_fd, "swapped/b", O_RDONLY | O_DIRECTORY) < 0);
  // Nor a symlink that stays inside: no symlink is followed on the way.
  CHECK(StatBeneath(t.root_fd, "rel/b/f", &st) != 0);
  // ".." above the root.
  CHECK(StatBeneath(t.root_fd, "../outside/b/f", &st) != 0);
  CHECK(StatBeneath(t.root_fd, "a/../../outside/b/f", &st) != 0);
}

TEST_CASE("a symlink as the last component is itself, as lstat sees it", "[util]") {
  Tree t;
  struct stat st;
  REQUIRE(StatBeneath(t.root_fd, "swapped", &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(OpenBeneath(t.root_fd, "swapped", O_RDONLY | O_DIRECTORY) < 0);
}

TEST_CASE("a path longer than PATH_MAX still resolves below the root", "[util]") {
  Tree t;
  std::string rel;
  const std::string name(200, 'd');
  for (int i = 0; i < 25; ++i) rel += (rel.empty() ? "" : "/") + name;  // about 5000 bytes
  // mkdir one level at a time: the whole path is too long for one system call.
  int dir = ::open(t.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int i = 0; i < 25; ++i) {
    REQUIRE(::mkdirat(dir, name.c_str(), 0755) == 0);
    const int next = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(dir);
    dir = next;
  }
  ::close(dir);
  struct stat st;
  const int err = StatBeneath(t.root_fd, rel, &st);
  // rm walks by descriptors; a removal by whole paths would fail past PATH_MAX.
  REQUIRE(std::system(("rm -rf '" + t.root + "/" + name + "'").c_str()) == 0);
  REQUIRE(err == 0);
  CHECK(S_ISDIR(st.st_mode));
}
