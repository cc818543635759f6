// End-to-end: big trees through a daemon with bounded descriptors. The kernel keeps inodes
// cached as long as memory allows, so the daemon cannot hold a descriptor per inode it
// knows: these tests make it evict and open again all the time (a low RLIMIT_NOFILE, a tiny
// -o fd_budget) and check that nothing fails and every directory stays exact. And renames of
// big subtrees: the store records them as rename maps (src/store/overlay.h), which readers
// must never see half-applied.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/test_seed.h"

using namespace dtkfs::testing;
namespace stdfs = std::filesystem;

namespace {

void WriteFile(const std::string& p, size_t n) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  const std::string data(n, 'b');
  REQUIRE(::write(fd, data.data(), n) == static_cast<ssize_t>(n));
  REQUIRE(::close(fd) == 0);
}

// What a walk through the mount met: entries, bytes read, and every failure with its errno.
struct WalkResult {
  size_t entries = 0;
  uint64_t bytes_read = 0;
  std::map<int, size_t> errors;  // errno -> count
  std::string first_error;
};

WalkResult* g_walk = nullptr;  // nftw has no user argument

int VisitEntry(const char* p, const struct stat* st, int type, struct FTW*) {
  WalkResult& w = *g_walk;
  auto fail = [&](int err, const char* what) {
    w.errors[err]++;
    if (w.first_error.empty()) w.first_error = std::string(what) + " " + p + ": " + strerror(err);
  };
  if (type == FTW_NS || type == FTW_DNR) {
    fail(errno, "walk");
    return 0;
  }
  w.entries++;
  if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
  int fd = ::open(p, O_RDONLY);
  if (fd < 0) {
    fail(errno, "open");
    return 0;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) w.bytes_read += static_cast<uint64_t>(n);
  if (n < 0) fail(errno, "read");
  ::close(fd);
  return 0;
}

// Walks root (lstat of every entry, read of every regular file) with few descriptors of its
// own, so the daemon's limit is what is tested.
WalkResult WalkAndRead(const std::string& root) {
  WalkResult w;
  g_walk = &w;
  ::nftw(root.c_str(), VisitEntry, 16, FTW_PHYS);
  g_walk = nullptr;
  return w;
}

size_t OpenDescriptors(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       stdfs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("big trees: a daemon limited to 256 descriptors walks, stats and reads 50,000 files",
          "[e2e][descriptors]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string s = fx.src();
  // 100 directories of 500 files, with a subdirectory each; every 50th file has a second
  // name in the next directory's subdirectory (hard links are pinned in the daemon's table).
  uint64_t file_bytes = 0;
  size_t entries = 1;
  for (int d = 0; d < 100; ++d) {
    const std::string dir = s + "/d" + std::to_string(d);
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    REQUIRE(::mkdir((dir + "/sub").c_str(), 0755) == 0);
    entries += 2;
    for (int f = 0; f < 500; ++f) {
      const size_t n = static_cast<size_t>((d * 500 + f) % 97);
      WriteFile(dir + "/f" + std::to_string(f), n);
      file_bytes += n;
      ++entries;
    }
  }
  for (int d = 0; d < 100; ++d)
    for (int f = 0; f < 500; f += 50) {
      const std::string from = s + "/d" + std::to_string(d) + "/f" + std::to_string(f);
      const std::string to =
          s + "/d" + std::to_string((d + 1) % 100) + "/sub/l" + std::to_string(d * 1000 + f);
      REQUIRE(::link(from.c_str(), to.c_str()) == 0);
      file_bytes += static_cast<uint64_t>((d * 500 + f) % 97);
      ++entries;
    }

  auto m = fx.MountUnder({"prlimit", "--nofile=256:256"});
  INFO(m.out << m.err);
  REQUIRE(m.status == 0);
  const pid_t pid = fx.DaemonPid();
  REQUIRE(pid > 0);
  const size_t budget = std::stoul(fx.StatusField("descriptor_budget"));
  CHECK(budget < 256);

  // Cold: every name is a fresh lookup.
  std::ofstream("/proc/sys/vm/drop_caches") << "2" << std::endl;
  const WalkResult w = WalkAndRead(fx.mnt());
  INFO(w.first_error);
  CHECK(w.errors.empty());
  CHECK(w.entries == entries);
  CHECK(w.bytes_read == file_bytes);
  CHECK(OpenDescriptors(pid) < 256);
  CHECK(std::stoul(fx.StatusField("descriptors")) <= budget);
  CHECK(std::stoul(fx.StatusField("descriptors_evicted")) > 0);
  REQUIRE(fx.Differences() == "");

  // Writes through names whose descriptors were evicted long ago, hard links included.
  for (int d = 0; d < 100; d += 3) {
    const std::string p = fx.mnt() + "/d" + std::to_string(d) + "/f" + std::to_string(d * 5);
    int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "more", 4) == 4);
    REQUIRE(::close(fd) == 0);
  }
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  auto check = Run({DtkfsBinary(), "check", fx.src(), "--index", fx.index()});
  INFO(check.out << check.err);
  CHECK(check.status == 0);
}

namespace {

// Random entries of the tree at root: directories (root itself as "") and files, relative.
struct Entries {
  std::vector<std::string> dirs{""}, files;
};
Entries List(const std::string& root) {
  Entries e;
  for (auto it = stdfs::recursive_directory_iterator(root); it != stdfs::end(it); ++it) {
    const std::string rel = stdfs::relative(it->path(), root);
    if (it->is_symlink()) continue;
    if (it->is_directory())
      e.dirs.push_back(rel);
    else
      e.files.push_back(rel);
  }
  return e;
}

std::string At(const std::string& root, const std::string& rel) {
  return rel.empty() ? root : root + "/" + rel;
}

}  // namespace

TEST_CASE("big trees: random changes through a daemon that keeps 4 descriptors stay exact",
          "[e2e][descriptors]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const unsigned seed = TestSeed("fd_budget_random");
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const std::string s = fx.src();
  for (int d = 0; d < 12; ++d) {
    const std::string dir = s + "/d" + std::to_string(d);
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    REQUIRE(::mkdir((dir + "/in").c_str(), 0755) == 0);
    for (int f = 0; f < 20; ++f) WriteFile(dir + "/f" + std::to_string(f), pick(300));
  }
  auto m = fx.Mount({"-o", "fd_budget=4"});
  INFO(m.out << m.err);
  REQUIRE(m.status == 0);
  REQUIRE(fx.StatusField("descriptor_budget") == "4");

  // Failures no operation may give however its descriptors were evicted.
  std::map<int, size_t> bad;
  std::string first_bad;
  auto note = [&](int rc, const std::string& what) {
    if (rc == 0 || (errno != ESTALE && errno != EMFILE && errno != ENFILE && errno != EIO)) return;
    bad[errno]++;
    if (first_bad.empty()) first_bad = what + ": " + strerror(errno);
  };
  int next = 0;
  for (int step = 0; step < 600; ++step) {
    const Entries e = List(s);
    const std::string mnt = fx.mnt();
    const std::string dir = e.dirs[pick(e.dirs.size())];
    const std::string file = e.files.empty() ? std::string() : e.files[pick(e.files.size())];
    const std::string fresh = "n" + std::to_string(next++);
    const std::string op_name = "step " + std::to_string(step);
    switch (pick(12)) {
      case 0: {  // create
        int fd = ::open(At(At(mnt, dir), fresh).c_str(), O_WRONLY | O_CREAT, 0644);
        note(fd < 0 ? -1 : 0, op_name + " create");
        if (fd >= 0) {
          std::string data(pick(500), 'c');
          note(::write(fd, data.data(), data.size()) < 0 ? -1 : 0, op_name + " write");
          ::close(fd);
        }
        break;
      }
      case 1:  // append to an existing file
        if (!file.empty()) {
          int fd = ::open(At(mnt, file).c_str(), O_WRONLY | O_APPEND);
          note(fd < 0 ? -1 : 0, op_name + " open append " + file);
          if (fd >= 0) {
            note(::write(fd, "appended", 8) < 0 ? -1 : 0, op_name + " append");
            ::close(fd);
          }
        }
        break;
      case 2:
        if (!file.empty())
          note(::truncate(At(mnt, file).c_str(), static_cast<off_t>(pick(200))),
               op_name + " truncate " + file);
        break;
      case 3:
        if (!file.empty()) note(::unlink(At(mnt, file).c_str()), op_name + " unlink " + file);
        break;
      case 4:
        note(::mkdir(At(At(mnt, dir), fresh).c_str(), 0755), op_name + " mkdir");
        break;
      case 5:  // rename a directory somewhere else (EINVAL into itself is fine)
        if (!dir.empty())
          note(::rename(At(mnt, dir).c_str(),
                        At(At(mnt, e.dirs[pick(e.dirs.size())]), fresh).c_str()),
               op_name + " rename dir " + dir);
        break;
      case 6:
        if (!file.empty())
          note(::rename(At(mnt, file).c_str(), At(At(mnt, dir), fresh).c_str()),
               op_name + " rename file " + file);
        break;
      case 7:
        if (!file.empty())
          note(::link(At(mnt, file).c_str(), At(At(mnt, dir), fresh).c_str()),
               op_name + " link " + file);
        break;
      case 8:  // rmdir (ENOTEMPTY is fine)
        if (!dir.empty()) note(::rmdir(At(mnt, dir).c_str()), op_name + " rmdir " + dir);
        break;
      case 9: {  // read and stat a subtree: evicts everything else
        const WalkResult w = WalkAndRead(At(mnt, dir));
        for (auto [err, n] : w.errors) {
          errno = err;
          note(-1, op_name + " walk: " + w.first_error);
        }
        break;
      }
      case 10:  // a directory renamed beside the mount, then used through it
        if (!dir.empty()) {
          const std::string to = At(e.dirs[pick(e.dirs.size())], fresh);
          if (::rename(At(s, dir).c_str(), At(s, to).c_str()) == 0) {
            struct stat st;
            note(::stat(At(mnt, to).c_str(), &st), op_name + " stat moved " + to);
          }
        }
        break;
      default: {  // xattr of a random directory
        char buf[32];
        note(::getxattr(At(mnt, dir).c_str(), "user.total_bytes", buf, sizeof buf) < 0 &&
                     errno != ENOENT
                 ? -1
                 : 0,
             op_name + " getxattr " + dir);
        break;
      }
    }
    if (step % 100 == 99) {
      INFO("seed " << seed << ", " << op_name);
      REQUIRE(fx.Differences() == "");
    }
  }
  INFO("seed " << seed << ": " << first_bad);
  CHECK(bad.empty());
  CHECK(std::stoul(fx.StatusField("descriptors_reopened")) > 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  auto check = Run({DtkfsBinary(), "check", fx.src(), "--index", fx.index()});
  INFO(check.out << check.err);
  CHECK(check.status == 0);
}

namespace {

// The three totals of path through the mount; all zero if it cannot be read.
struct Sample {
  uint64_t bytes = 0, files = 0, dirs = 0;
  bool operator==(const Sample&) const = default;
};
Sample Read(const std::string& path) {
  Sample s;
  dtkfs::Totals t;
  if (ReadTotals(path, &t)) s = Sample{t.bytes, t.files, t.dirs};
  return s;
}

// Each of the three values of s is the one of some state the directory may be in.
bool OneOf(const Sample& s, const std::vector<Sample>& states) {
  auto has = [&](uint64_t Sample::*field) {
    for (const Sample& st : states)
      if (s.*field == st.*field) return true;
    return false;
  };
  return has(&Sample::bytes) && has(&Sample::files) && has(&Sample::dirs);
}

}  // namespace

TEST_CASE("big trees: a rename of a 20,000-directory subtree is never seen half-applied",
          "[e2e][rename]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string s = fx.src();
  for (const char* d : {"/a", "/a/big", "/b", "/c", "/c/big2", "/other"})
    REQUIRE(::mkdir((s + d).c_str(), 0755) == 0);
  for (int i = 0; i < 100; ++i) {
    const std::string d = s + "/a/big/d" + std::to_string(i);
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    WriteFile(d + "/f", static_cast<size_t>(i));
    for (int j = 0; j < 200; ++j)
      REQUIRE(::mkdir((d + "/e" + std::to_string(j)).c_str(), 0755) == 0);
  }
  for (int i = 0; i < 3000; ++i)
    REQUIRE(::mkdir((s + "/c/big2/x" + std::to_string(i)).c_str(), 0755) == 0);
  WriteFile(s + "/b/g", 7);
  WriteFile(s + "/other/h", 11);
  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  const Sample root = Read(m), other = Read(m + "/other");
  const Sample a0 = Read(m + "/a"), b0 = Read(m + "/b"), big = Read(m + "/a/big");
  const Sample big2 = Read(m + "/c/big2");
  REQUIRE(big.dirs == 100 * 201);

  // Readers: the root and an unrelated directory never change; a and b are always either
  // before or after the rename, never in between.
  std::atomic<bool> stop{false};
  std::atomic<size_t> reads{0}, bad{0};
  std::string first_bad;
  std::mutex bad_mu;
  auto fail = [&](const std::string& what) {
    bad++;
    std::lock_guard lock(bad_mu);
    if (first_bad.empty()) first_bad = what;
  };
  // a: as it was, with big moved to b, or with big exchanged for big2.
  const std::vector<Sample> a_states = {
      a0,
      {a0.bytes - big.bytes, a0.files - big.files, a0.dirs - big.dirs - 1},
      {a0.bytes - big.bytes + big2.bytes, a0.files - big.files + big2.files,
       a0.dirs - big.dirs + big2.dirs}};
  const std::vector<Sample> b_states = {
      b0, {b0.bytes + big.bytes, b0.files + big.files, b0.dirs + big.dirs + 1}};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&] {
      while (!stop) {
        if (!(Read(m) == root)) fail("root changed");
        if (!(Read(m + "/other") == other)) fail("other changed");
        // Each value alone (three getxattr calls are not one snapshot).
        const Sample a = Read(m + "/a"), b = Read(m + "/b");
        if (!OneOf(a, a_states)) fail("a half-applied: " + std::to_string(a.dirs));
        if (!OneOf(b, b_states)) fail("b half-applied: " + std::to_string(b.dirs));
        reads++;
      }
    });
  // The renames must overlap reads: on a loaded machine they could all be over before a
  // reader ran once.
  while (reads == 0) std::this_thread::yield();
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    REQUIRE(::rename((m + "/a/big").c_str(), (m + "/b/big").c_str()) == 0);
    CHECK(Read(m + "/b/big") == big);
    REQUIRE(::rename((m + "/b/big").c_str(), (m + "/a/big").c_str()) == 0);
    CHECK(Read(m + "/a/big") == big);
  }
  // An exchange of two big subtrees through the mount.
  REQUIRE(::syscall(SYS_renameat2, AT_FDCWD, (m + "/a/big").c_str(), AT_FDCWD,
                    (m + "/c/big2").c_str(), RENAME_EXCHANGE) == 0);
  CHECK(Read(m + "/a/big") == big2);
  CHECK(Read(m + "/c/big2") == big);
  REQUIRE(::syscall(SYS_renameat2, AT_FDCWD, (m + "/a/big").c_str(), AT_FDCWD,
                    (m + "/c/big2").c_str(), RENAME_EXCHANGE) == 0);
  stop = true;
  for (auto& t : readers) t.join();
  INFO(first_bad);
  CHECK(bad == 0);
  CHECK(reads > 0);
  // The big renames were recorded as rename maps, not rewrites.
  CHECK(std::stoul(fx.StatusField("rename_levels")) > 0);
  REQUIRE(fx.Differences() == "");
  // A compaction folds them in; still exact, now from the new index.
  REQUIRE(Run({DtkfsBinary(), "compact", m}).status == 0);
  CHECK(fx.StatusField("rename_levels") == "0");
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  auto check = Run({DtkfsBinary(), "check", fx.src(), "--index", fx.index()});
  INFO(check.out << check.err);
  CHECK(check.status == 0);
}

TEST_CASE("regression: a file or directory that took an evicted inode's number works",
          "[e2e][descriptors]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string s = fx.src();
  for (int i = 0; i < 10; ++i) REQUIRE(::mkdir((s + "/o" + std::to_string(i)).c_str(), 0755) == 0);
  REQUIRE(fx.Mount({"-o", "fd_budget=4"}).status == 0);
  const std::string m = fx.mnt();
  auto evict = [&] {
    for (int i = 0; i < 10; ++i) WalkAndRead(m + "/o" + std::to_string(i));
  };
  auto ino_of = [](const std::string& p) {
    struct stat st;
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_ino;
  };
  for (const bool is_dir : {true, false}) {
    CAPTURE(is_dir);
    const std::string name = is_dir ? "/x" : "/f";
    auto make = [&] {
      if (is_dir)
        REQUIRE(::mkdir((m + name).c_str(), 0755) == 0);
      else
        WriteFile(m + name, 1000);
    };
    auto remove = [&] {
      REQUIRE((is_dir ? ::rmdir((m + name).c_str()) : ::unlink((m + name).c_str())) == 0);
    };
    make();
    const ino_t old_ino = ino_of(s + name);
    // Something keeps the old inode known to the kernel (a shell's cwd, an O_PATH fd).
    const int holder = ::open((m + name).c_str(), O_PATH);
    REQUIRE(holder >= 0);
    bool reused = false;
    for (int i = 0; i < 20 && !reused; ++i) {
      remove();
      evict();  // the daemon's descriptor goes: the source may hand the number out again
      make();
      reused = ino_of(s + name) == old_ino;
    }
    if (!reused) WARN("the source did not reuse the inode number: the old one is not tested");
    // The new one works through the mount, and is counted as itself.
    if (is_dir) {
      WriteFile(m + name + "/inside", 5);
      CHECK(::access((m + name + "/inside").c_str(), F_OK) == 0);
    } else {
      int fd = ::open((m + name).c_str(), O_WRONLY | O_APPEND);
      INFO(strerror(errno));
      REQUIRE(fd >= 0);
      CHECK(::write(fd, "12345", 5) == 5);
      ::close(fd);
    }
    ::close(holder);
    CHECK(fx.Differences() == "");
  }
}
