// End-to-end: every size-changing operation through a real mount, alone and in random
// sequences (several processes at once); after each step every directory's xattrs must
// equal a fresh reference walk of the source.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "support/mount_fixture.h"
#include "support/test_seed.h"

using namespace dtkfs::testing;

namespace {

void WriteFile(const std::string& p, size_t n, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  int fd = ::open(p.c_str(), flags, 0644);
  REQUIRE(fd >= 0);
  std::string data(n, 'x');
  REQUIRE(::write(fd, data.data(), n) == static_cast<ssize_t>(n));
  REQUIRE(::close(fd) == 0);
}

#define EXACT(fx) \
  INFO(step);     \
  REQUIRE((fx).Differences() == "")

}  // namespace

TEST_CASE("every size-changing operation through the mount keeps every directory exact", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/pre").c_str(), 0755);
  WriteFile(fx.src() + "/pre/old", 1234);
  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  std::string step = "mounted";
  EXACT(fx);

  step = "mkdir";
  REQUIRE(::mkdir((m + "/a").c_str(), 0755) == 0);
  REQUIRE(::mkdir((m + "/a/b").c_str(), 0755) == 0);
  REQUIRE(::mkdir((m + "/c").c_str(), 0755) == 0);
  EXACT(fx);
  step = "create + write";
  WriteFile(m + "/a/b/f1", 1000);
  EXACT(fx);
  step = "append";
  WriteFile(m + "/a/b/f1", 500, O_WRONLY | O_APPEND);
  EXACT(fx);
  step = "pwrite past EOF (sparse)";
  {
    int fd = ::open((m + "/a/f2").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(::pwrite(fd, "z", 1, 1 << 20) == 1);
    ::close(fd);
  }
  EXACT(fx);
  step = "overwrite inside the file";
  {
    int fd = ::open((m + "/a/f2").c_str(), O_WRONLY);
    REQUIRE(::pwrite(fd, "yyyy", 4, 10) == 4);
    ::close(fd);
  }
  EXACT(fx);
  step = "truncate shrink and grow";
  REQUIRE(::truncate((m + "/a/f2").c_str(), 77) == 0);
  EXACT(fx);
  REQUIRE(::truncate((m + "/a/b/f1").c_str(), 99999) == 0);
  EXACT(fx);
  step = "ftruncate";
  {
    int fd = ::open((m + "/a/b/f1").c_str(), O_RDWR);
    REQUIRE(::ftruncate(fd, 10) == 0);
    ::close(fd);
  }
  EXACT(fx);
  step = "open O_TRUNC of a file the mount had not seen";
  WriteFile(m + "/pre/old", 3);
  EXACT(fx);
  step = "fallocate";
  {
    int fd = ::open((m + "/c/falloc").c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(::fallocate(fd, 0, 0, 8192) == 0);
    EXACT(fx);
    step = "fallocate KEEP_SIZE";
    REQUIRE(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536) == 0);
    EXACT(fx);
    step = "mmap write after ftruncate";
    REQUIRE(::ftruncate(fd, 16384) == 0);
    void* p = ::mmap(nullptr, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(p != MAP_FAILED);
    std::memset(p, 'm', 16384);
    REQUIRE(::msync(p, 16384, MS_SYNC) == 0);
    ::munmap(p, 16384);
    ::close(fd);
  }
  EXACT(fx);
  step = "copy_file_range";
  {
    int in = ::open((m + "/c/falloc").c_str(), O_RDONLY);
    int out = ::open((m + "/a/copy").c_str(), O_WRONLY | O_CREAT, 0644);
    loff_t off_out = 100;
    ssize_t n = ::copy_file_range(in, nullptr, out, &off_out, 5000, 0);
    REQUIRE(n == 5000);
    ::close(in);
    ::close(out);
  }
  EXACT(fx);
  step = "symlink and mknod";
  REQUIRE(::symlink("some/target/path", (m + "/a/link").c_str()) == 0);
  REQUIRE(::mkfifo((m + "/c/fifo").c_str(), 0644) == 0);
  EXACT(fx);
  step = "hard link, then write through the other link";
  REQUIRE(::link((m + "/a/b/f1").c_str(), (m + "/c/hl").c_str()) == 0);
  EXACT(fx);
  WriteFile(m + "/c/hl", 321, O_WRONLY | O_APPEND);
  EXACT(fx);
  step = "hard links survive the kernel forgetting the inode";
  {
    // Drop the kernel's dentries and inodes (root only): the daemon gets FORGETs and must
    // still reach both names when the file grows through one of them.
    std::ofstream drop("/proc/sys/vm/drop_caches");
    drop << "2" << std::endl;
    if (!drop) WARN("could not drop caches: FORGET path not exercised");
  }
  WriteFile(m + "/a/b/f1", 77, O_WRONLY | O_APPEND);
  EXACT(fx);
  step = "unlink one link";
  REQUIRE(::unlink((m + "/c/hl").c_str()) == 0);
  EXACT(fx);
  step = "rename file within a dir, across dirs, over an existing file";
  REQUIRE(::rename((m + "/a/copy").c_str(), (m + "/a/copy2").c_str()) == 0);
  REQUIRE(::rename((m + "/a/copy2").c_str(), (m + "/c/copy3").c_str()) == 0);
  WriteFile(m + "/a/victim", 4444);
  REQUIRE(::rename((m + "/c/copy3").c_str(), (m + "/a/victim").c_str()) == 0);
  EXACT(fx);
  step = "rename one hard link onto another of the same file";
  REQUIRE(::link((m + "/a/victim").c_str(), (m + "/a/twin").c_str()) == 0);
  REQUIRE(::rename((m + "/a/twin").c_str(), (m + "/a/victim").c_str()) == 0);
  EXACT(fx);
  step = "rename a directory subtree";
  REQUIRE(::mkdir((m + "/a/b/deep").c_str(), 0755) == 0);
  WriteFile(m + "/a/b/deep/x", 50);
  REQUIRE(::rename((m + "/a/b").c_str(), (m + "/c/moved").c_str()) == 0);
  EXACT(fx);
  step = "write in a moved directory";
  WriteFile(m + "/c/moved/deep/x", 70, O_WRONLY | O_APPEND);
  EXACT(fx);
  step = "rename a directory over an empty directory";
  REQUIRE(::mkdir((m + "/empty").c_str(), 0755) == 0);
  REQUIRE(::rename((m + "/c/moved").c_str(), (m + "/empty").c_str()) == 0);
  EXACT(fx);
  step = "RENAME_NOREPLACE refused changes nothing";
  REQUIRE(::renameat2(AT_FDCWD, (m + "/a/f2").c_str(), AT_FDCWD, (m + "/a/victim").c_str(),
                      RENAME_NOREPLACE) == -1);
  REQUIRE(errno == EEXIST);
  REQUIRE(::renameat2(AT_FDCWD, (m + "/a/f2").c_str(), AT_FDCWD, (m + "/a/f3").c_str(),
                      RENAME_NOREPLACE) == 0);
  EXACT(fx);
  step = "RENAME_EXCHANGE file/file, dir/dir, dir/file";
  REQUIRE(::renameat2(AT_FDCWD, (m + "/a/f3").c_str(), AT_FDCWD, (m + "/c/falloc").c_str(),
                      RENAME_EXCHANGE) == 0);
  EXACT(fx);
  REQUIRE(::renameat2(AT_FDCWD, (m + "/empty").c_str(), AT_FDCWD, (m + "/pre").c_str(),
                      RENAME_EXCHANGE) == 0);
  EXACT(fx);
  REQUIRE(::renameat2(AT_FDCWD, (m + "/pre/deep").c_str(), AT_FDCWD, (m + "/a/victim").c_str(),
                      RENAME_EXCHANGE) == 0);
  EXACT(fx);
  step = "rmdir and unlink everything in a subtree";
  REQUIRE(Run({"rm", "-rf", m + "/a"}).status == 0);
  EXACT(fx);
  step = "odd and long names";
  const std::string odd = m + "/c/sp ace\nnew\xff\xfeline";
  REQUIRE(::mkdir(odd.c_str(), 0755) == 0);
  WriteFile(odd + "/" + std::string(255, 'n'), 4096);
  REQUIRE(::rename(odd.c_str(), (m + "/c/" + std::string(255, 'd')).c_str()) == 0);
  EXACT(fx);

  step = "unmount";
  auto u = fx.Unmount();
  INFO(u.err);
  REQUIRE(u.status == 0);
}

TEST_CASE("random operation sequences from several processes stay exact", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  const unsigned seed = TestSeed("random operation sequences");
  INFO("seed " << seed << " (repeat with DTKFS_TEST_SEED=" << seed << ")");

  // One worker: random ops in its own area and in a shared one, each checked for errors only
  // (the check of the sums comes after every step, or after all workers finish).
  unsigned round = 0;  // a second round on the same tree gets other random choices
  auto worker = [&](int id, int ops, bool check_each) {
    std::mt19937 rng(seed + static_cast<unsigned>(id) + 1000 * round);
    const std::string home = m + "/w" + std::to_string(id);
    ::mkdir(home.c_str(), 0755);
    std::vector<std::string> dirs = {home}, files;
    // What an earlier mount left here, listed on the source so that the mount has not
    // looked any of it up (hard links among it are known only from the index).
    const std::string src_home = fx.src() + "/w" + std::to_string(id);
    for (auto it = std::filesystem::recursive_directory_iterator(src_home);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      const std::string rel = it->path().string().substr(src_home.size());
      (it->is_directory() ? dirs : files).push_back(home + rel);
    }
    for (int i = 0; i < ops; ++i) {
      const std::string dir = dirs[rng() % dirs.size()];
      const std::string name = dir + "/n" + std::to_string(rng() % 50);
      switch (rng() % 9) {
        case 0:
          if (::mkdir(name.c_str(), 0755) == 0) dirs.push_back(name);
          break;
        case 1:
        case 2: {
          int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
          if (fd >= 0) {
            std::string data(rng() % 5000, 'r');
            if (::write(fd, data.data(), data.size()) < 0) {
            }
            ::close(fd);
            files.push_back(name);
          }
          break;
        }
        case 3:
          if (!files.empty()) ::truncate(files[rng() % files.size()].c_str(), rng() % 9000);
          break;
        case 4:
          if (!files.empty()) ::unlink(files[rng() % files.size()].c_str());
          break;
        case 5:
          if (!files.empty()) ::rename(files[rng() % files.size()].c_str(), name.c_str());
          break;
        case 6:
          if (dirs.size() > 1) {
            const std::string& d = dirs[1 + rng() % (dirs.size() - 1)];
            if (::rename(d.c_str(), (home + "/r" + std::to_string(rng() % 20)).c_str()) == 0)
              dirs.resize(1);  // paths below may have moved; start over from home
          }
          break;
        case 7:
          if (dirs.size() > 1) ::rmdir(dirs.back().c_str());
          break;
        case 8:
          if (!files.empty()) ::link(files[rng() % files.size()].c_str(), name.c_str());
          break;
      }
      if (check_each) {
        INFO("op " << i);
        REQUIRE(fx.Differences() == "");
      }
    }
  };

  SECTION("one process, checked after every step") { worker(0, 300, true); }
  SECTION("four processes at once, then again after a remount") {
    auto run_workers = [&](int first_id) {
      std::vector<pid_t> kids;
      for (int id = first_id; id < first_id + 4; ++id) {
        pid_t pid = ::fork();
        if (pid == 0) {
          worker(id, 1500, false);
          ::_exit(0);
        }
        kids.push_back(pid);
      }
      for (pid_t pid : kids) {
        int status;
        ::waitpid(pid, &status, 0);
      }
    };
    run_workers(1);
    REQUIRE(fx.Differences() == "");
    // The index written at unmount (totals and hard links) must equal a walk, and a second
    // round on the same tree, from that index, must stay exact.
    REQUIRE(fx.Unmount().status == 0);
    auto check = Run({DtkfsBinary(), "check", fx.src(), "--index", fx.index()});
    INFO(check.out << check.err);
    REQUIRE(check.status == 0);
    REQUIRE(fx.Mount().status == 0);
    round = 1;
    run_workers(1);
    REQUIRE(fx.Differences() == "");
  }
  auto u = fx.Unmount();
  INFO(u.err);
  REQUIRE(u.status == 0);
}
