// End-to-end regressions from trying to break the mount (issue "Nothing corrupted, nothing
// lost"): where writes in append mode land, and what the mount counts after them. Each test
// is named after the bug it pins and ends with every directory's xattrs compared with a
// reference walk of the source.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "support/files.h"
#include "support/mount_fixture.h"

using namespace dtkfs::testing;

#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x00000020  // Linux 6.9; Debian 12's headers predate it
#endif

namespace {}  // namespace

TEST_CASE("regression: mmap write through an O_RDWR|O_APPEND fd lands where it was mapped",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/a").c_str(), 0755);
  WriteFileBytes(fx.src() + "/a/f", std::string(8192, 'A'));
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

  const std::string data = ReadFileBytes(fx.src() + "/a/f");
  CHECK(data.size() == 8192);
  CHECK(data.substr(0, 6) == "HELLOA");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: pwritev2 RWF_NOAPPEND on an O_APPEND fd writes at its offset",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", std::string(100, 'A'));
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
  const std::string data = ReadFileBytes(fx.src() + "/f");
  CHECK(data.size() == 100);
  CHECK(data.substr(0, 6) == "HELLOA");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("appends through the mount land at the true end when the file grew beside it",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/log", "start\n");
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
  CHECK(ReadFileBytes(fx.src() + "/log") ==
        "start\nmount\nbeside the mount\nmount again\n"
        "mount\nbeside the mount\nmount again\n");
}

TEST_CASE("regression: after fcntl clears O_APPEND, writes go to their offset",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", std::string(50, 'A'));
  REQUIRE(fx.Mount().status == 0);

  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY | O_APPEND);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "BB", 2) == 2);  // appended: 52 bytes
  REQUIRE(::fcntl(fd, F_SETFL, 0) == 0);
  REQUIRE(::pwrite(fd, "C", 1, 0) == 1);
  REQUIRE(::close(fd) == 0);
  CHECK(ReadFileBytes(fx.src() + "/f") == "C" + std::string(49, 'A') + "BB");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE(
    "regression: a write inside the counted size of a file that shrank beside the mount "
    "is counted",
    "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", std::string(1000, 'A'));
  REQUIRE(fx.Mount().status == 0);

  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::truncate((fx.src() + "/f").c_str(), 0) == 0);  // beside the mount
  REQUIRE(::pwrite(fd, "0123456789", 10, 0) == 10);        // ends inside the old size
  REQUIRE(::close(fd) == 0);
  CHECK(ReadFileBytes(fx.src() + "/f") == "0123456789");
  REQUIRE(fx.Differences() == "");
}

namespace {

size_t OpenFds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid)))
    ++n;
  return n;
}

void DropCaches() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
}

}  // namespace

TEST_CASE("regression: replies the kernel did not take leak no inode references or fds",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/d").c_str(), 0755);
  for (int i = 0; i < 60; ++i) WriteFileBytes(fmt::format("{}/d/old{}", fx.src(), i), "x");
  // Every third entry, create, open and readdirplus reply fails as an interrupted one would,
  // 60 times.
  ::setenv("DTKFS_FAULT_FAIL_REPLY", "3,60", 1);
  auto mounted = fx.Mount();
  ::unsetenv("DTKFS_FAULT_FAIL_REPLY");
  REQUIRE(mounted.status == 0);
  const pid_t pid = fx.DaemonPid();
  REQUIRE(pid > 1);
  DropCaches();
  const size_t baseline = OpenFds(pid);

  const std::string d = fx.mnt() + "/d";
  size_t failures = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 60; ++i) {  // lookups, opens
      struct stat st;
      const std::string p = fmt::format("{}/old{}", d, i);
      if (::stat(p.c_str(), &st) != 0) ++failures;
      int fd = ::open(p.c_str(), O_RDONLY);
      if (fd >= 0)
        ::close(fd);
      else
        ++failures;
    }
    for (int i = 0; i < 20; ++i) {  // creates, mkdirs
      int fd = ::open(fmt::format("{}/new{}-{}", d, round, i).c_str(), O_WRONLY | O_CREAT, 0644);
      if (fd >= 0)
        ::close(fd);
      else
        ++failures;
      if (::mkdir(fmt::format("{}/dir{}-{}", d, round, i).c_str(), 0755) != 0) ++failures;
    }
    Run({"ls", "-l", d});  // readdirplus; some batches fail
    DropCaches();
  }
  CHECK(failures > 0);             // the fault point did fire
  for (int i = 0; i < 200; ++i) {  // negative lookups use up what is left of the 60
    struct stat st;
    ::stat(fmt::format("{}/none{}", d, i).c_str(), &st);
  }
  DropCaches();
  // Every inode the kernel forgot is gone from the daemon: only its base fds remain.
  CHECK(OpenFds(pid) <= baseline + 2);
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: truncating the mapped index does not kill the daemon", "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/a").c_str(), 0755);
  WriteFileBytes(fx.src() + "/a/f", std::string(3000, 'x'));
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");

  // The operator's mistake. The daemon holds a lease: a blocking open for writing waits until
  // it has let go of the file (milliseconds), a non-blocking one (coreutils truncate uses
  // O_NONBLOCK) fails with EAGAIN until then.
  const auto t0 = std::chrono::steady_clock::now();
  int tries = 0;
  while (Run({"truncate", "-s", "0", fx.index()}).status != 0) {
    REQUIRE(++tries < 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  struct stat st;
  REQUIRE(::stat(fx.index().c_str(), &st) == 0);
  REQUIRE(st.st_size == 0);

  // Still serving every size, and changes still count.
  REQUIRE(fx.Differences() == "");
  WriteFileBytes(fx.mnt() + "/a/g", "more");
  REQUIRE(fx.Differences() == "");
  // The index is rewritten at the next compaction, even with no other change.
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);
  REQUIRE(::stat(fx.index().c_str(), &st) == 0);
  CHECK(st.st_size > 0);
  REQUIRE(fx.Unmount().status == 0);
  auto again = fx.Mount();
  REQUIRE(again.status == 0);
  CHECK(again.err.find("scanning") == std::string::npos);  // the rewritten index was used
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: writing over the mapped index in place does not change what is served",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", std::string(123, 'x'));
  REQUIRE(fx.Mount().status == 0);
  // dd conv=notrunc: garbage over the first bytes, no truncation.
  REQUIRE(Run({"dd", "if=/dev/urandom", "of=" + fx.index(), "bs=64", "count=4", "conv=notrunc"})
              .status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);  // the final compaction rewrites it
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");
}

namespace {

// A bind mount made by a test, undone (lazily if busy) when it goes out of scope.
class BindMount {
 public:
  BindMount(const std::string& from, const std::string& at) : at_(at) {
    ok_ = Run({"mount", "--bind", from, at}).status == 0;
  }
  ~BindMount() {
    if (ok_ && Run({"umount", at_}).status != 0) Run({"umount", "-l", at_});
  }
  bool ok() const { return ok_; }

 private:
  std::string at_;
  bool ok_ = false;
};

dtkfs::Totals TotalsAt(const std::string& p) {
  dtkfs::Totals t;
  REQUIRE(ReadTotals(p, &t));
  return t;
}

}  // namespace

TEST_CASE(
    "regression: a bind mount inside the source is an empty read-only directory, "
    "counted once",
    "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("bind mounts need root: not run");
  const std::string s = fx.src();
  for (const char* d : {"/a", "/a/x", "/b", "/c"}) ::mkdir((s + d).c_str(), 0755);
  WriteFileBytes(s + "/a/x/f", "hello\n");
  BindMount alias(s + "/a", s + "/b");  // a directory of the tree at a second path
  BindMount itself(s, s + "/c");        // the tree inside itself
  REQUIRE(alias.ok());
  REQUIRE(itself.ok());

  // The scanner counts the aliases as empty directories and terminates.
  auto mounted = fx.Mount();
  REQUIRE(mounted.status == 0);
  const std::string m = fx.mnt();
  auto root = TotalsAt(m);
  CHECK(root.bytes == 6);
  CHECK(root.files == 1);
  CHECK(root.dirs == 4);  // a, a/x, b, c
  CHECK(TotalsAt(m + "/b").bytes == 0);
  CHECK(TotalsAt(m + "/c").dirs == 0);

  // Through the mount the aliases show nothing and change nothing.
  struct stat st;
  CHECK(::stat((m + "/b/x").c_str(), &st) != 0);
  CHECK(errno == ENOENT);
  auto listed = Run({"ls", "-A", m + "/b", m + "/c"});
  CHECK(listed.status == 0);
  CHECK(listed.out.find("x") == std::string::npos);
  CHECK(::mkdir((m + "/b/new").c_str(), 0755) != 0);
  CHECK(errno == EROFS);
  CHECK(::open((m + "/c/new").c_str(), O_WRONLY | O_CREAT, 0644) < 0);
  CHECK(errno == EROFS);

  // A change through the real path counts once, everywhere above it.
  WriteFileBytes(m + "/a/x/f", "hello, world\n");
  CHECK(TotalsAt(m).bytes == 13);
  CHECK(TotalsAt(m + "/a").bytes == 13);
  CHECK(TotalsAt(m + "/b").bytes == 0);
  // The index written at unmount agrees with a fresh scan under the same rule.
  REQUIRE(fx.Unmount().status == 0);
  auto check = Run({DtkfsBinary(), "check", s, "--index", fx.index()});
  INFO(check.out << check.err);
  REQUIRE(check.status == 0);
}

namespace {

// Runs step over and over on a thread of its own until destroyed: an operator's worst loop.
class Vandal {
 public:
  explicit Vandal(std::function<void()> step)
      : thread_([this, step = std::move(step)] {
          while (!stop_.load()) step();
        }) {}
  ~Vandal() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Truncates and empties path, ignoring EAGAIN (the daemon's lease) and every other failure.
void TruncateOnce(const std::string& path) {
  ::truncate(path.c_str(), 0);
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_NONBLOCK);
  if (fd >= 0) ::close(fd);
}

}  // namespace

TEST_CASE(
    "regression: truncating the index in a loop during compactions does not kill the "
    "daemon",
    "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/d").c_str(), 0755);
  REQUIRE(fx.Mount().status == 0);
  {
    const std::string index = fx.index();
    Vandal vandal([&] { TruncateOnce(index); });
    for (int i = 0; i < 60; ++i) {
      WriteFileBytes(fmt::format("{}/d/f{}", fx.mnt(), i), std::string(i * 10, 'x'));
      ::setxattr(fx.mnt().c_str(), "user.dtkfs.compact", "1", 1, 0);  // may fail: it retries
    }
  }
  REQUIRE(fx.mounted());
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  auto again = fx.Mount();
  REQUIRE(again.status == 0);
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: a lease break while the daemon starts never leaves a hung mount",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", "hello");
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Unmount().status == 0);  // an index to map at the next starts
  const std::string index = fx.index();
  const std::string good = ReadFileBytes(index);
  // Rewrites the index in place as fast as it can: each open for writing breaks the lease of
  // whichever daemon is starting (EAGAIN while it holds one).
  Vandal vandal([&] {
    int fd = ::open(index.c_str(), O_WRONLY | O_TRUNC | O_NONBLOCK);
    if (fd >= 0) {
      [[maybe_unused]] ssize_t n = ::write(fd, good.data(), good.size());
      ::close(fd);
    }
    // Mostly a whole index (so mounts get to start), broken often enough to hit the start.
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  });
  int served = 0;
  for (int round = 0; round < 15; ++round) {
    INFO("round " << round);
    auto mounted = fx.Mount();
    if (mounted.status != 0) {  // caught the index half-written: refused, and said so
      CHECK_FALSE(fx.mounted());
      CHECK_FALSE(mounted.err.empty());
      continue;
    }
    ++served;
    // A hung daemon never answers: give the query a deadline instead of hanging the suite.
    auto answer = Run({"timeout", "10", "getfattr", "-n", "user.total_bytes", fx.mnt()});
    REQUIRE(answer.status == 0);
    // The final compaction may fail to verify an index the vandal rewrote under it: then
    // umount says so, and the next mount rescans. Either way the mount is gone.
    auto unmounted = fx.Unmount();
    INFO(unmounted.err);
    CHECK((unmounted.status == 0 || unmounted.err.find("final compaction") != std::string::npos));
    REQUIRE_FALSE(fx.mounted());
  }
  CHECK(served > 0);
}

TEST_CASE("regression: an index held open for writing at mount time is rewritten, not trusted",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  ::mkdir((fx.src() + "/a").c_str(), 0755);
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Unmount().status == 0);
  const std::string stale = ReadFileBytes(fx.index());  // "a" empty
  REQUIRE(fx.Mount().status == 0);
  WriteFileBytes(fx.mnt() + "/a/big", std::string(100000, 'b'));
  REQUIRE(fx.Unmount().status == 0);  // the index counts a/big now

  // Mounted while someone has the index open for writing: no lease, a private copy.
  const int writer = ::open(fx.index().c_str(), O_WRONLY | O_APPEND);
  REQUIRE(writer >= 0);
  auto mounted = fx.Mount();
  ::close(writer);
  REQUIRE(mounted.status == 0);
  // That someone writes the older index over it in place.
  {
    std::fstream over(fx.index(), std::ios::binary | std::ios::in | std::ios::out);
    over.write(stale.data(), static_cast<std::streamsize>(stale.size()));
  }
  // With no change through the mount, the compaction still rewrites the file.
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: an index renamed away is written again by the next compaction",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(::rename(fx.index().c_str(), (fx.index() + ".moved").c_str()) == 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);
  struct stat st;
  CHECK(::stat(fx.index().c_str(), &st) == 0);
}

TEST_CASE("regression: appends through the mount never overwrite appends made beside it",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/log", "");
  REQUIRE(fx.Mount().status == 0);
  constexpr int kRecords = 4000;
  auto appender = [](const std::string& path, char tag) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    for (int i = 0; i < kRecords; ++i) {
      const std::string rec = fmt::format("{}{:07}\n", tag, i);
      REQUIRE(::write(fd, rec.data(), rec.size()) == static_cast<ssize_t>(rec.size()));
    }
    ::close(fd);
  };
  // Held open so the kernel never forgets the file: a re-met inode starts counting afresh, and
  // growth beside the mount in between would be the out-of-band issue's to count.
  const int keep = ::open((fx.mnt() + "/log").c_str(), O_RDONLY);
  REQUIRE(keep >= 0);
  {
    // A stat loop through the mount keeps the kernel's idea of the size fresh, which is when
    // a look-then-write placement loses most.
    const std::string log = fx.mnt() + "/log";
    Vandal stat_loop([&] {
      struct stat st;
      ::stat(log.c_str(), &st);
    });
    std::thread beside([&] { appender(fx.src() + "/log", 'B'); });
    appender(log, 'M');
    beside.join();
  }
  // What was appended beside the mount after the last write through it is a change the
  // mount has not seen (the out-of-band issue's work); one more write through it counts all.
  appender(fx.mnt() + "/log", 'M');
  ::close(keep);
  const std::string data = ReadFileBytes(fx.src() + "/log");
  CHECK(data.size() == 3u * kRecords * 9);
  size_t m = 0, b = 0;
  for (size_t at = 0; at + 9 <= data.size(); at += 9) (data[at] == 'M' ? m : b)++;
  CHECK(m == 2 * kRecords);
  CHECK(b == kRecords);
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: after an O_TRUNC open, appends still reach the true end",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", "0123456789");
  REQUIRE(fx.Mount().status == 0);
  int fd = ::open((fx.mnt() + "/f").c_str(), O_WRONLY | O_APPEND | O_TRUNC);
  REQUIRE(fd >= 0);
  {
    std::ofstream beside(fx.src() + "/f", std::ios::binary | std::ios::app);
    beside << "SIDE";
  }
  REQUIRE(::write(fd, "X", 1) == 1);
  REQUIRE(::close(fd) == 0);
  CHECK(ReadFileBytes(fx.src() + "/f") == "SIDEX");
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: a file bind mount inside the source is hidden and never counted twice",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("bind mounts need root: not run");
  const std::string s = fx.src();
  ::mkdir((s + "/x").c_str(), 0755);
  ::mkdir((s + "/y").c_str(), 0755);
  WriteFileBytes(s + "/x/file", std::string(100, 'f'));
  WriteFileBytes(s + "/y/fb", "");
  BindMount alias(s + "/x/file", s + "/y/fb");
  REQUIRE(alias.ok());
  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  CHECK(TotalsAt(m).bytes == 100);
  CHECK(TotalsAt(m + "/y").files == 0);
  struct stat st;
  CHECK(::stat((m + "/y/fb").c_str(), &st) != 0);
  // Growing the file through its real name counts once.
  {
    std::ofstream out(m + "/x/file", std::ios::binary | std::ios::app);
    out << std::string(5000, 'g');
  }
  CHECK(TotalsAt(m).bytes == 5100);
  CHECK(TotalsAt(m + "/y").bytes == 0);
  REQUIRE(fx.Unmount().status == 0);
  auto check = Run({DtkfsBinary(), "check", s, "--index", fx.index()});
  INFO(check.out << check.err);
  REQUIRE(check.status == 0);
}

TEST_CASE("regression: a bind mount that reuses an earlier mount's id is still an alias",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts need root: not run");
  const std::string s = fx.src();
  for (const char* d : {"/a", "/d", "/d/tt"}) ::mkdir((s + d).c_str(), 0755);
  WriteFileBytes(s + "/a/f", std::string(1000, 'a'));
  REQUIRE(Run({"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", s + "/d/tt"}).status == 0);
  REQUIRE(fx.Mount().status == 0);
  struct stat st;
  REQUIRE(::stat((fx.mnt() + "/d/tt").c_str(), &st) == 0);  // met as a separate filesystem
  DropCaches();                                             // the daemon lets go of the tmpfs
  if (Run({"umount", s + "/d/tt"}).status != 0) Run({"umount", "-l", s + "/d/tt"});
  {
    BindMount alias(s + "/a", s + "/d/tt");  // the kernel may hand out the tmpfs's old id
    REQUIRE(alias.ok());
    DropCaches();
    CHECK(::mkdir((fx.mnt() + "/d/tt/new").c_str(), 0755) != 0);
    CHECK(errno == EROFS);
    CHECK(TotalsAt(fx.mnt() + "/a").bytes == 1000);
    CHECK(TotalsAt(fx.mnt()).bytes == 1000);
  }
}

TEST_CASE("regression: a source path with a newline cannot forge the daemon's pid in its status",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string odd = fx.src() + "/s\npid: 1\nindex: x";
  REQUIRE(::mkdir(odd.c_str(), 0755) == 0);
  auto mounted = Run({DtkfsBinary(), "mount", odd, fx.mnt(), "--index", fx.index()});
  REQUIRE(mounted.status == 0);
  auto status = Run({DtkfsBinary(), "status", fx.mnt()});
  CHECK(status.out.find("\npid: 1\n") == std::string::npos);
  auto unmounted = Run({"timeout", "30", DtkfsBinary(), "umount", fx.mnt()});
  INFO(unmounted.err);
  CHECK(unmounted.status == 0);  // the real pid waited on, the real index's result read
  CHECK_FALSE(fx.mounted());
}

TEST_CASE("regression: an index reached through a bind mount of the source is refused",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("bind mounts need root: not run");
  const std::string other = fx.state() + "/../bsrc";
  REQUIRE(::mkdir(other.c_str(), 0755) == 0);
  BindMount bind(fx.src(), other);
  REQUIRE(bind.ok());
  auto r = Run({DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", other + "/sneaky.idx"});
  CHECK(r.status == 2);
  CHECK(r.err.find("inside the source") != std::string::npos);
  CHECK_FALSE(fx.mounted());
  struct stat st;
  CHECK(::lstat((fx.src() + "/sneaky.idx").c_str(), &st) != 0);  // nothing written there
  // scan too, and an index below the source through the bind mount.
  CHECK(Run({DtkfsBinary(), "scan", fx.src(), "--index", other + "/x/y.idx"}).status == 2);
  CHECK(::lstat((fx.src() + "/x").c_str(), &st) != 0);
}

TEST_CASE("regression: a comma in the source path adds no mount option", "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string odd = fx.src() + "/t,allow_other,suid";
  REQUIRE(::mkdir(odd.c_str(), 0755) == 0);
  REQUIRE(Run({DtkfsBinary(), "mount", odd, fx.mnt(), "--index", fx.index()}).status == 0);
  auto table = ReadFileBytes("/proc/self/mountinfo");
  const auto at = table.find(" " + fx.mnt() + " ");
  REQUIRE(at != std::string::npos);
  const std::string line = table.substr(at, table.find('\n', at) - at);
  INFO(line);
  CHECK(line.find("allow_other") == line.rfind("allow_other"));  // only inside the fsname
  CHECK(line.find("nosuid") != std::string::npos);
  CHECK(line.find("dtkfs:" + odd) != std::string::npos);
  REQUIRE(Run({DtkfsBinary(), "umount", fx.mnt()}).status == 0);
}

TEST_CASE("regression: after a truncation through the mount, appends reach the true end",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", "");
  REQUIRE(fx.Mount().status == 0);
  const std::string f = fx.mnt() + "/f";
  const int keep = ::open(f.c_str(), O_RDONLY);
  REQUIRE(keep >= 0);
  WriteFileBytes(f, std::string(1000, 'x'));
  int fd = ::open(f.c_str(), O_WRONLY | O_APPEND | O_TRUNC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "M1\n", 3) == 3);
  {
    std::ofstream beside(fx.src() + "/f", std::ios::binary | std::ios::app);
    beside << "SIDE\n";
  }
  REQUIRE(::write(fd, "M2\n", 3) == 3);
  ::close(fd);
  CHECK(ReadFileBytes(fx.src() + "/f") == "M1\nSIDE\nM2\n");
  // And a no-append write after a truncate goes where it was aimed.
  fd = ::open(f.c_str(), O_WRONLY | O_APPEND);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, 4) == 0);
  char data[] = "Z";
  iovec iov{data, 1};
  const ssize_t n = ::pwritev2(fd, &iov, 1, 11, RWF_NOAPPEND);
  ::close(fd);
  if (n == 1) CHECK(ReadFileBytes(fx.src() + "/f").size() == 12);
  ::close(keep);
  REQUIRE(fx.Differences() == "");
}

TEST_CASE("regression: an index on a filesystem also mounted inside the source is refused",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("mounts need root: not run");
  const std::string tm = fx.state() + "/../tm";
  REQUIRE(::mkdir(tm.c_str(), 0755) == 0);
  REQUIRE(::mkdir((fx.src() + "/t").c_str(), 0755) == 0);
  REQUIRE(Run({"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tm}).status == 0);
  struct Unmount {
    std::string at;
    ~Unmount() {
      if (Run({"umount", at}).status != 0) Run({"umount", "-l", at});
    }
  } unmount_tm{tm};
  BindMount inside(tm, fx.src() + "/t");  // counted: a separate filesystem mounted once inside
  REQUIRE(inside.ok());
  auto r = Run({DtkfsBinary(), "scan", fx.src(), "--index", tm + "/x.idx"});
  CHECK(r.status == 2);
  CHECK(r.err.find("also mounted inside the source") != std::string::npos);
}

TEST_CASE("regression: a mount option libfuse refuses is refused before any scan or file",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string index = fx.state() + "/fresh/x.idx";
  auto r = Run({DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", index, "-o", "bogus_opt"});
  CHECK(r.status == 2);
  CHECK(r.err.find("scanning") == std::string::npos);
  struct stat st;
  CHECK(::stat((fx.state() + "/fresh").c_str(), &st) != 0);  // nothing created
  CHECK_FALSE(fx.mounted());
}

TEST_CASE("regression: a verification counts an alias bind mount as one empty directory",
          "[e2e][hardening]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("bind mounts need root: not run");
  const std::string s = fx.src();
  ::mkdir((s + "/a").c_str(), 0755);
  ::mkdir((s + "/a/x").c_str(), 0755);
  ::mkdir((s + "/b").c_str(), 0755);
  WriteFileBytes(s + "/a/x/f", "1234567");
  BindMount alias(s + "/a", s + "/b");
  REQUIRE(alias.ok());
  REQUIRE(fx.Mount().status == 0);
  auto verify = Run({DtkfsBinary(), "verify", fx.mnt()});
  INFO(verify.out << verify.err);
  REQUIRE(verify.status == 0);
  const dtkfs::Totals b = TotalsAt(fx.mnt() + "/b");
  CHECK(b.bytes == 0);
  CHECK(b.files == 0);
  CHECK(b.dirs == 0);
  CHECK(TotalsAt(fx.mnt()).bytes == 7);
  CHECK(TotalsAt(fx.mnt()).dirs == 3);
  REQUIRE(fx.Unmount().status == 0);
}
