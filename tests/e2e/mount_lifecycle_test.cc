// End-to-end: what survives an unmount, a remount, a timer compaction and kill -9; bad
// arguments; the xattr rules; fstab; a real workload (kernel sources, git, a compile).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "env/env.h"
#include "index/index_files.h"
#include "index/index_reader.h"
#include "support/mount_fixture.h"
#include "support/reference_walk.h"

using namespace dtkfs;
using namespace dtkfs::testing;

namespace {

void MakeTree(const std::string& root) {
  REQUIRE(Run({"mkdir", "-p", root + "/a/b/c", root + "/d"}).status == 0);
  std::ofstream(root + "/a/f1") << std::string(1000, 'a');
  std::ofstream(root + "/a/b/c/f2") << std::string(2345, 'b');
  std::ofstream(root + "/d/f3") << "hi";
}

// The index file alone, read with the reader, against a walk of the source.
std::string IndexDifferences(const std::string& index, const std::string& src) {
  auto reader = IndexReader::Open(Env::Default(), index);
  if (!reader.ok()) return reader.status().message();
  std::map<std::string, Totals> from_index;
  for (size_t i = 0; i < (*reader)->size(); ++i)
    from_index[std::string((*reader)->path_at(i))] = (*reader)->totals_at(i);
  return DescribeDifferences(ReferenceWalk(src), from_index);
}

uint64_t Generation(const std::string& index) {
  auto reader = IndexReader::Open(Env::Default(), index);
  return reader.ok() ? (*reader)->generation() : 0;
}

}  // namespace

TEST_CASE("unmount writes an exact index; a remount maps it without a scan", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  auto first = fx.Mount();
  REQUIRE(first.status == 0);
  CHECK(first.err.find("scanning") != std::string::npos);
  REQUIRE(Run({"cp", "-r", fx.mnt() + "/a", fx.mnt() + "/a2"}).status == 0);
  REQUIRE(Run({"rm", "-rf", fx.mnt() + "/d"}).status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
  const uint64_t gen = Generation(fx.index());

  auto again = fx.Mount();
  REQUIRE(again.status == 0);
  INFO(again.err);
  CHECK(again.err.find("scanning") == std::string::npos);  // mapped, not scanned
  REQUIRE(fx.Differences() == "");
  auto status = Run({DtkfsBinary(), "status", fx.mnt()});
  CHECK(status.out.find("generation: " + std::to_string(gen)) != std::string::npos);
  REQUIRE(fx.Unmount().status == 0);
  CHECK(Generation(fx.index()) == gen);  // nothing changed: no new file
}

TEST_CASE("a timer compaction reaches the disk while mounted; dtkfs compact too", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount({"--compact-interval", "1"}).status == 0);
  const uint64_t gen = Generation(fx.index());
  std::ofstream(fx.mnt() + "/a/new") << std::string(777, 'n');
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (Generation(fx.index()) == gen && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(Generation(fx.index()) > gen);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");

  std::ofstream(fx.mnt() + "/d/more") << "more";
  auto c = Run({DtkfsBinary(), "compact", fx.mnt()});
  INFO(c.err);
  REQUIRE(c.status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("plain fusermount3 -u also ends in a final compaction", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  std::ofstream(fx.mnt() + "/a/b/late") << std::string(4321, 'l');
  const pid_t daemon = fx.DaemonPid();
  REQUIRE(daemon > 1);
  REQUIRE(Run({"fusermount3", "-u", fx.mnt()}).status == 0);
  REQUIRE(WaitForExit(daemon, 20));  // it exits only after the final compaction
  // INDEX.last-exit holds the final compaction's result (it says "running" until then).
  auto text = Env::Default().ReadFileToString(ExitStatusPath(fx.index()), 16);
  REQUIRE(text.ok());
  CHECK(text->rfind("ok", 0) == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
}

TEST_CASE("kill -9 loses nothing: the next mount is exact", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  std::ofstream(fx.mnt() + "/a/crash") << std::string(5555, 'c');
  REQUIRE(Run({"rm", "-rf", fx.mnt() + "/a/b"}).status == 0);
  char buf[4096];
  ssize_t n = ::getxattr(fx.mnt().c_str(), "user.dtkfs.status", buf, sizeof buf);
  REQUIRE(n > 0);
  std::string status(buf, static_cast<size_t>(n));
  const pid_t pid = std::stoi(status.substr(status.find("pid: ") + 5));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(WaitForExit(pid, 20));
  // dtkfs umount of the dead mount unmounts it and says the final compaction did not happen.
  auto dead = fx.Unmount();
  CHECK(dead.status == 2);
  CHECK(dead.err.find("daemon was gone") != std::string::npos);
  CHECK_FALSE(fx.mounted());
  auto again = fx.Mount();
  INFO(again.err);
  REQUIRE(again.status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
}

TEST_CASE("bad mount arguments are refused with clear errors", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  auto missing = Run({DtkfsBinary(), "mount", fx.src() + "/nope", fx.mnt(), "--index", fx.index()});
  CHECK(missing.status == 2);
  CHECK(missing.err.find("nope") != std::string::npos);
  REQUIRE(Run({"mkdir", "-p", fx.src() + "/inner"}).status == 0);
  auto inside = Run({DtkfsBinary(), "mount", fx.src(), fx.src() + "/inner", "--index", fx.index()});
  CHECK(inside.status == 2);
  CHECK(inside.err.find("inside") != std::string::npos);
  auto idx_inside =
      Run({DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", fx.src() + "/x.idx"});
  CHECK(idx_inside.status == 2);
  CHECK(idx_inside.err.find("inside") != std::string::npos);
  for (const char* bad : {"threads=0", "threads=many", "threads=100000"}) {
    auto r = fx.Mount({"-o", bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("-o threads: bad value") != std::string::npos);
  }

  // One worker thread is enough to serve everything (if slowly).
  REQUIRE(fx.Mount({"-o", "threads=1"}).status == 0);
  REQUIRE(Run({"sh", "-c",
               "mkdir " + fx.mnt() + "/t1 && head -c 5000 /dev/zero > " + fx.mnt() + "/t1/f"})
              .status == 0);
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);

  REQUIRE(fx.Mount().status == 0);
  TempDir other;
  auto second = Run({DtkfsBinary(), "mount", fx.src(), other.path(), "--index", fx.index()});
  CHECK(second.status == 2);
  CHECK(second.err.find("already mounted") != std::string::npos);  // one daemon per source
  // Another source with the same index: one daemon per index.
  REQUIRE(Run({"mkdir", other / "src", other / "mnt"}).status == 0);
  auto same_index =
      Run({DtkfsBinary(), "mount", other / "src", other / "mnt", "--index", fx.index()});
  CHECK(same_index.status == 2);
  CHECK(same_index.err.find("one daemon per index") != std::string::npos);
  CHECK(same_index.err.find("its index is in use") != std::string::npos);
  auto twice = fx.Mount();
  CHECK(twice.status == 2);

  // The size names are read-only, hidden from listxattr, and plain digits.
  const std::string d = fx.mnt();
  errno = 0;
  CHECK(::setxattr(d.c_str(), "user.total_bytes", "5", 1, 0) == -1);
  CHECK(errno == EPERM);
  CHECK(::removexattr(d.c_str(), "user.total_files") == -1);
  CHECK(errno == EPERM);
  char names[4096];
  ssize_t n = ::listxattr(d.c_str(), names, sizeof names);
  REQUIRE(n >= 0);
  CHECK(std::string(names, static_cast<size_t>(n)).find("user.total") == std::string::npos);
  // Other xattrs pass through to the source.
  std::ofstream(d + "/file") << "x";
  REQUIRE(::setxattr((d + "/file").c_str(), "user.note", "hello", 5, 0) == 0);
  char v[16];
  REQUIRE(::getxattr((fx.src() + "/file").c_str(), "user.note", v, sizeof v) == 5);
  Totals t;
  REQUIRE(ReadTotals(d + "/file", &t));  // a file answers with itself
  CHECK(t.bytes == 1);
  CHECK(t.files == 1);
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("list_totals shows the size names in listxattr", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  REQUIRE(fx.Mount({"-o", "list_totals"}).status == 0);
  char names[4096];
  ssize_t n = ::listxattr(fx.mnt().c_str(), names, sizeof names);
  REQUIRE(n > 0);
  CHECK(std::string(names, static_cast<size_t>(n)).find("user.total_bytes") != std::string::npos);
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("track_sizes=off: a plain passthrough; sizes answer ENODATA; the next mount rescans",
          "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);  // an exact index first
  REQUIRE(fx.Unmount().status == 0);
  const uint64_t gen = Generation(fx.index());

  auto off = fx.Mount({"-o", "track_sizes=off,list_totals"});
  INFO(off.err);
  REQUIRE(off.status == 0);
  CHECK(off.err.find("scanning") == std::string::npos);  // the index is not even read
  REQUIRE(Run({"cp", "-r", fx.mnt() + "/a", fx.mnt() + "/a2"}).status == 0);
  std::ofstream(fx.mnt() + "/d/f4") << std::string(777, 'x');
  REQUIRE(Run({"rm", "-rf", fx.mnt() + "/a/b"}).status == 0);
  // Never a number: not the index's stale one, not a partial count.
  for (const std::string dir : {"", "/a", "/a2", "/d"}) {
    INFO(dir);
    char value[64];
    CHECK(::getxattr((fx.mnt() + dir).c_str(), "user.total_bytes", value, sizeof value) == -1);
    CHECK(errno == ENODATA);
  }
  CHECK(::getxattr((fx.mnt() + "/d/f4").c_str(), "user.total_bytes", nullptr, 0) == -1);
  char names[4096];
  ssize_t n = ::listxattr(fx.mnt().c_str(), names, sizeof names);
  CHECK(std::string(names, static_cast<size_t>(std::max<ssize_t>(n, 0))).find("user.total_") ==
        std::string::npos);
  CHECK(fx.StatusField("totals") == "off (track_sizes=off)");
  // No compaction: it would write the empty store over the index.
  CHECK(Run({DtkfsBinary(), "compact", fx.mnt()}).status != 0);
  REQUIRE(fx.Unmount().status == 0);
  CHECK(Generation(fx.index()) == gen);  // untouched
  CHECK(Env::Default().FileExists(DirtyMarkerPath(fx.index())));

  auto on = fx.Mount();
  INFO(on.err);
  REQUIRE(on.status == 0);
  CHECK(on.err.find("track_sizes=off") != std::string::npos);  // why it rescans
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("du and top on a mounted path answer from the live xattrs", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  std::ofstream(fx.mnt() + "/d/live") << std::string(10000, 'l');
  auto ref = ReferenceWalk(fx.src());
  auto du = Run({DtkfsBinary(), "du", fx.mnt() + "/d", fx.mnt()});
  REQUIRE(du.status == 0);
  CHECK(du.out == std::to_string(ref["d"].bytes) + "\t" + fx.mnt() + "/d\n" +
                      std::to_string(ref[""].bytes) + "\t" + fx.mnt() + "\n");
  auto top = Run({DtkfsBinary(), "top", "-n", "1", fx.mnt()});
  REQUIRE(top.status == 0);
  CHECK(top.out == std::to_string(ref["d"].bytes) + "\t" + fx.mnt() + "/d\n");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("fstab: mount MNT runs dtkfs through mount.fuse3", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("fstab test needs root (mount -T); not run");
  // mount.fuse3 looks for `dtkfs` in the standard PATH; link the binary under test there if
  // no dtkfs is installed, and remove the link afterwards.
  const std::string link = "/usr/local/bin/dtkfs";
  struct stat st;
  const bool made_link = ::lstat(link.c_str(), &st) != 0;
  if (made_link) REQUIRE(::symlink(DtkfsBinary().c_str(), link.c_str()) == 0);
  MakeTree(fx.src());
  const std::string fstab = fx.state() + "/fstab";
  std::ofstream(fstab) << fx.src() << " " << fx.mnt() << " fuse.dtkfs defaults,index=" << fx.index()
                       << ",compact_interval=30 0 0\n";
  auto m = Run({"mount", "-T", fstab, fx.mnt()});
  if (made_link) ::unlink(link.c_str());
  INFO(m.err);
  REQUIRE(m.status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
}

// mount(8) runs /sbin/mount.TYPE for an fstab line of type dtkfs (and `mount -t dtkfs`),
// with the options it adds itself: rw, and noexec,nosuid,nodev for `user`.
TEST_CASE("regression: mount.dtkfs SRC MNT -sfnv -o with the words mount(8) adds mounts", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeTree(fx.src());
  // The name tells dtkfs the form: a link named mount.dtkfs, as the package installs.
  const std::string helper = fx.state() + "/mount.dtkfs";
  REQUIRE(Run({"mkdir", "-p", fx.state()}).status == 0);
  REQUIRE(::symlink(DtkfsBinary().c_str(), helper.c_str()) == 0);
  const std::string options =
      "rw,nosuid,nodev,defaults,noauto,user,_netdev,nofail,"
      "x-systemd.automount,x-systemd.requires=/,index=" +
      fx.index();
  auto fake = Run({helper, fx.src(), fx.mnt(), "-f", "-o", options});
  CHECK(fake.status == 0);
  CHECK_FALSE(fx.mounted());
  auto m = Run({helper, fx.src(), fx.mnt(), "-s", "-n", "-v", "-o", options});
  INFO(m.err);
  REQUIRE(m.status == 0);
  REQUIRE(fx.mounted());
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");

  // mount(8) itself, through an fstab line of type dtkfs, when root may put the helper where
  // it looks (/sbin) and none is installed; the link is removed right after.
  if (::geteuid() != 0) return;
  const std::string sbin = "/sbin/mount.dtkfs";
  struct stat st;
  if (::lstat(sbin.c_str(), &st) == 0) {
    WARN(sbin << " is installed: mount -t dtkfs would run it, not the binary under test");
    return;
  }
  REQUIRE(::symlink(DtkfsBinary().c_str(), sbin.c_str()) == 0);
  const std::string fstab = fx.state() + "/fstab";
  std::ofstream(fstab) << fx.src() << " " << fx.mnt()
                       << " dtkfs defaults,nofail,_netdev,index=" << fx.index() << " 0 0\n";
  auto by_mount = Run({"mount", "-T", fstab, fx.mnt()});
  ::unlink(sbin.c_str());
  INFO(by_mount.err);
  REQUIRE(by_mount.status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("a real workload: kernel sources, git, a compile, rm -rf of half", "[e2e][workload]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  const std::string tarball = "/usr/src/linux-source-6.1.tar.xz";
  if (::access(tarball.c_str(), R_OK) != 0) {
    const char* req = std::getenv("DTKFS_REQUIRE_FUSE");
    if (req != nullptr && std::string(req) == "1")
      FAIL(tarball << " missing (scripts/deps.sh test installs linux-source-6.1)");
    WARN("linux-source-6.1 not installed: workload test not run");
    return;
  }
  REQUIRE(::access("/usr/bin/git", X_OK) == 0);
  REQUIRE(::access("/usr/bin/cc", X_OK) == 0);
  REQUIRE(fx.Mount().status == 0);
  const std::string m = fx.mnt();
  // Part of the tree (fs/ and lib/: about 4,000 files) keeps the suite fast.
  auto tar = Run({"tar", "-xJf", tarball, "-C", m, "linux-source-6.1/fs", "linux-source-6.1/lib"});
  INFO(tar.err);
  REQUIRE(tar.status == 0);
  REQUIRE(fx.Differences() == "");

  const std::string repo = m + "/linux-source-6.1/lib";
  auto git = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"git",           "-C", repo, "-c", "user.name=t", "-c",
                                     "user.email=t@t"};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  };
  REQUIRE(git({"init", "-q"}).status == 0);
  REQUIRE(git({"add", "."}).status == 0);
  REQUIRE(git({"commit", "-qm", "import"}).status == 0);
  REQUIRE(fx.Differences() == "");
  std::ofstream(m + "/hello.c") << "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n";
  REQUIRE(Run({"cc", "-O2", "-o", m + "/hello", m + "/hello.c"}).status == 0);
  REQUIRE(Run({m + "/hello"}).status == 0);
  REQUIRE(fx.Differences() == "");
  auto rm = Run({"rm", "-rf", m + "/linux-source-6.1/fs"});
  INFO(rm.err);
  REQUIRE(rm.status == 0);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(IndexDifferences(fx.index(), fx.src()) == "");
}
