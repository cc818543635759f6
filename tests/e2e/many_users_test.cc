// Many users, one daemon: a root daemon mounted with allow_other lets the source decide who
// may do what. Each case runs the same commands as another user on a native directory and
// through the mount, and expects the same outcome (src/fs/credentials.h).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/mount_fixture.h"

namespace fsys = std::filesystem;
using namespace dtkfs::testing;
using dtkfs::Totals;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kGroup = 4242;  // a group no one is in unless a test gives it

// argv run as nobody, with exactly the supplementary groups given.
CommandResult AsNobody(std::vector<std::string> argv, const std::string& groups = "") {
  std::vector<std::string> prefix = {"setpriv", "--reuid=65534", "--regid=65534"};
  prefix.push_back(groups.empty() ? "--clear-groups" : "--groups=" + groups);
  argv.insert(argv.begin(), prefix.begin(), prefix.end());
  return Run(argv);
}

CommandResult ShAsNobody(const std::string& script, const std::string& groups = "") {
  return AsNobody({"sh", "-c", script}, groups);
}

mode_t ModeOf(const std::string& p) {
  struct stat st;
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

struct stat StatOf(const std::string& p) {
  struct stat st;
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

// A mount with allow_other over src, and a native directory beside it (top/native) to
// compare with; both 1777 so that nobody can create in them.
struct SharedMount {
  MountFixture fx;
  std::string native;

  bool Start() {
    if (!fx.available()) return false;
    const std::string top = fsys::path(fx.src()).parent_path();
    native = top + "/native";
    fsys::create_directories(native);
    REQUIRE(::chmod(top.c_str(), 0755) == 0);
    REQUIRE(::chmod(native.c_str(), 01777) == 0);
    REQUIRE(::chmod(fx.src().c_str(), 01777) == 0);
    return true;
  }
  void Mount() {
    auto m = fx.Mount({"-o", "allow_other"});
    INFO(m.err);
    REQUIRE(m.status == 0);
  }
  std::string Src(const std::string& rel) const { return fx.src() + "/" + rel; }
  std::string Mnt(const std::string& rel) const { return fx.mnt() + "/" + rel; }
  std::string Native(const std::string& rel) const { return native + "/" + rel; }
};

#define START_SHARED(s)                                      \
  SharedMount s;                                             \
  DTKFS_REQUIRE_MOUNTABLE(s.fx);                             \
  DTKFS_ROOT_ONLY("not root: cannot switch to other users"); \
  REQUIRE(s.Start())

}  // namespace

TEST_CASE("what another user creates through the mount is theirs on the source", "[e2e]") {
  START_SHARED(s);
  s.Mount();
  REQUIRE(ShAsNobody("touch " + s.Mnt("f") + " && mkdir " + s.Mnt("d") + " && ln -s f " +
                     s.Mnt("l") + " && mkfifo " + s.Mnt("p"))
              .status == 0);
  for (const char* name : {"f", "d", "l", "p"}) {
    INFO(name);
    const struct stat st = StatOf(s.Src(name));
    CHECK(st.st_uid == kNobody);
    CHECK(st.st_gid == kNobody);
  }
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("POSIX ACLs deny and grant through the mount as on the source", "[e2e]") {
  START_SHARED(s);
  for (const std::string& dir : {s.fx.src(), s.native}) {
    WriteFileBytes(dir + "/denied", "secret");
    REQUIRE(::chmod((dir + "/denied").c_str(), 0644) == 0);
    REQUIRE(Run({"setfacl", "-m", "u:nobody:---", dir + "/denied"}).status == 0);
    WriteFileBytes(dir + "/granted", "shared");
    REQUIRE(::chmod((dir + "/granted").c_str(), 0600) == 0);
    REQUIRE(Run({"setfacl", "-m", "u:nobody:r", dir + "/granted"}).status == 0);
    fsys::create_directories(dir + "/inherit");
    REQUIRE(::chmod((dir + "/inherit").c_str(), 0777) == 0);
    REQUIRE(Run({"setfacl", "-d", "-m", "u::rwx,g::rwx,o::rwx", dir + "/inherit"}).status == 0);
  }
  s.Mount();
  // Natively: nobody cannot read denied (its ACL says so although the mode allows it), can
  // read granted (its ACL allows it although the mode does not).
  REQUIRE(AsNobody({"cat", s.Native("denied")}).status != 0);
  REQUIRE(AsNobody({"cat", s.Native("granted")}).out == "shared");
  auto denied = AsNobody({"cat", s.Mnt("denied")});
  CHECK(denied.status != 0);
  CHECK(denied.out == "");
  CHECK(denied.err.find("Permission denied") != std::string::npos);
  CHECK(AsNobody({"cat", s.Mnt("granted")}).out == "shared");

  // A default ACL decides new files' modes, not the creator's umask.
  for (const std::string& dir : {s.native, s.fx.mnt()})
    REQUIRE(ShAsNobody("umask 077 && touch " + dir + "/inherit/f && mkdir " + dir + "/inherit/d")
                .status == 0);
  CHECK(ModeOf(s.Src("inherit/f")) == ModeOf(s.Native("inherit/f")));
  CHECK(ModeOf(s.Src("inherit/d")) == ModeOf(s.Native("inherit/d")));
  CHECK(ModeOf(s.Src("inherit/f")) == 0666);
  // Without one, the umask does.
  for (const std::string& dir : {s.native, s.fx.mnt()})
    REQUIRE(ShAsNobody("umask 027 && touch " + dir + "/masked").status == 0);
  CHECK(ModeOf(s.Src("masked")) == 0640);

  // setfacl and getfacl through the mount change and show the source's ACL.
  REQUIRE(Run({"setfacl", "-m", "u:nobody:rw", s.Mnt("granted")}).status == 0);
  CHECK(Run({"getfacl", "-p", s.Src("granted")}).out.find("user:nobody:rw-") != std::string::npos);
  CHECK(Run({"getfacl", "-p", s.Mnt("granted")}).out.find("user:nobody:rw-") != std::string::npos);
  REQUIRE(ShAsNobody("echo more >> " + s.Mnt("granted")).status == 0);
  CHECK(ReadFileBytes(s.Src("granted")) == "sharedmore\n");
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("a caller's supplementary groups give access through the mount", "[e2e]") {
  START_SHARED(s);
  WriteFileBytes(s.Src("team"), "team data");
  REQUIRE(::chown(s.Src("team").c_str(), 0, kGroup) == 0);
  REQUIRE(::chmod(s.Src("team").c_str(), 0640) == 0);
  fsys::create_directories(s.Src("teamdir"));
  REQUIRE(::chown(s.Src("teamdir").c_str(), 0, kGroup) == 0);
  REQUIRE(::chmod(s.Src("teamdir").c_str(), 0770) == 0);
  s.Mount();
  const std::string group = std::to_string(kGroup);
  CHECK(AsNobody({"cat", s.Mnt("team")}, group).out == "team data");
  CHECK(AsNobody({"cat", s.Mnt("team")}).status != 0);
  CHECK(AsNobody({"touch", s.Mnt("teamdir/new")}, group).status == 0);
  CHECK(AsNobody({"touch", s.Mnt("teamdir/refused")}).status != 0);
  CHECK(fsys::exists(s.Src("teamdir/new")));
  CHECK_FALSE(fsys::exists(s.Src("teamdir/refused")));
  // chgrp to a group of the caller's own: the source checks the caller's groups.
  REQUIRE(AsNobody({"touch", s.Mnt("mine")}).status == 0);
  CHECK(AsNobody({"chgrp", group, s.Mnt("mine")}).status != 0);
  CHECK(AsNobody({"chgrp", group, s.Mnt("mine")}, group).status == 0);
  CHECK(StatOf(s.Src("mine")).st_gid == kGroup);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("setuid and setgid are cleared when another user writes or truncates", "[e2e]") {
  START_SHARED(s);
  // Each way of writing, as a shell script on FILE: O_WRONLY without truncation, O_RDWR,
  // O_APPEND, O_TRUNC, truncate(2).
  const std::vector<std::pair<std::string, std::string>> writes = {
      {"wronly", "printf y | dd of=FILE conv=notrunc status=none"},
      {"rdwr", "exec 3<>FILE && printf y >&3"},
      {"append", "printf y >> FILE"},
      {"trunc", "printf y > FILE"},
      {"truncate", "truncate -s 1 FILE"},
  };
  for (const auto& [name, unused] : writes)
    for (const std::string& dir : {s.fx.src(), s.native}) {
      WriteFileBytes(dir + "/" + name, "data");
      REQUIRE(::chmod((dir + "/" + name).c_str(), 06777) == 0);
    }
  WriteFileBytes(s.Src("by_root"), "data");
  REQUIRE(::chmod(s.Src("by_root").c_str(), 06777) == 0);
  s.Mount();
  for (const auto& [name, script] : writes) {
    INFO(name);
    for (const std::string& file : {s.Native(name), s.Mnt(name)}) {
      std::string sh = script;
      sh.replace(sh.find("FILE"), 4, "'" + file + "'");
      auto r = ShAsNobody(sh);
      INFO(file << ": " << r.err);
      REQUIRE(r.status == 0);
    }
    CHECK(ModeOf(s.Native(name)) == 0777);  // the source clears them
    CHECK(ModeOf(s.Src(name)) == ModeOf(s.Native(name)));
  }
  // Root keeps them (CAP_FSETID), as natively.
  REQUIRE(Run({"sh", "-c", "printf y >> '" + s.Mnt("by_root") + "'"}).status == 0);
  CHECK(ModeOf(s.Src("by_root")) == 06777);
  // A chmod by another user is still refused.
  CHECK(AsNobody({"chmod", "0777", s.Mnt("by_root")}).status != 0);
  CHECK(ModeOf(s.Src("by_root")) == 06777);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("reserved blocks hold for another user's writes through the mount", "[e2e]") {
  START_SHARED(s);
  const std::string top = fsys::path(s.fx.src()).parent_path();
  const std::string image = top + "/ext4.img";
  REQUIRE(Run({"truncate", "-s", "64M", image}).status == 0);
  auto mkfs = Run({"mkfs.ext4", "-q", "-F", "-m", "50", image});
  INFO(mkfs.err);
  REQUIRE(mkfs.status == 0);
  auto loop = Run({"mount", "-o", "loop", image, s.fx.src()});
  INFO(loop.err);
  REQUIRE(loop.status == 0);
  struct LoopGuard {
    std::string dir;
    ~LoopGuard() { ::umount2(dir.c_str(), MNT_DETACH); }
  } guard{s.fx.src()};
  REQUIRE(::chmod(s.fx.src().c_str(), 01777) == 0);
  auto fill = [](const std::string& file) {
    ShAsNobody("dd if=/dev/zero of='" + file + "' bs=1M count=200 status=none");
    struct stat st;
    REQUIRE(::stat(file.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_size);
  };
  const uint64_t native = fill(s.Src("native"));
  REQUIRE(::unlink(s.Src("native").c_str()) == 0);
  REQUIRE(Run({"sync", "-f", s.fx.src()}).status == 0);
  s.Mount();
  const uint64_t through = fill(s.Mnt("through"));
  INFO("native " << native << " bytes, through the mount " << through);
  CHECK(native < 40u << 20);  // half of the filesystem is reserved: stopped well before full
  CHECK(through <= native + (1u << 20));
  CHECK(through + (1u << 20) >= native);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("a symlink's own xattrs through the mount, as on the source", "[e2e]") {
  START_SHARED(s);
  WriteFileBytes(s.Src("target"), "t");
  WriteFileBytes(s.Native("target"), "t");
  fsys::create_symlink("target", s.Src("link"));
  fsys::create_symlink("target", s.Native("link"));
  s.Mount();
  auto set = [](const std::string& p, const char* name) {
    return ::lsetxattr(p.c_str(), name, "v", 1, 0) == 0 ? 0 : errno;
  };
  auto get = [](const std::string& p, const char* name) {
    char buf[16];
    const ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
    return n < 0 ? "errno " + std::to_string(errno) : std::string(buf, static_cast<size_t>(n));
  };
  // trusted.* on the link itself (root may); user.* is refused on symlinks by the kernel.
  for (const char* name : {"trusted.dtkfs_test", "user.dtkfs_test"}) {
    INFO(name);
    CHECK(set(s.Mnt("link"), name) == set(s.Native("link"), name));
    CHECK(get(s.Mnt("link"), name) == get(s.Native("link"), name));
    CHECK(get(s.Src("link"), name) == get(s.Native("link"), name));
  }
  CHECK(get(s.Src("link"), "trusted.dtkfs_test") == "v");
  CHECK(get(s.Src("target"), "trusted.dtkfs_test") != "v");  // not followed
  char names[256];
  const ssize_t n = ::llistxattr(s.Mnt("link").c_str(), names, sizeof names);
  REQUIRE(n > 0);
  CHECK(std::string(names, static_cast<size_t>(n)).find("trusted.dtkfs_test") != std::string::npos);
  REQUIRE(::lremovexattr(s.Mnt("link").c_str(), "trusted.dtkfs_test") == 0);
  CHECK(get(s.Src("link"), "trusted.dtkfs_test") == get(s.Src("target"), "trusted.dtkfs_test"));
  // Another user may not: trusted.* needs CAP_SYS_ADMIN, which a caller's request lacks.
  for (const std::string& link : {s.Native("link"), s.Mnt("link")})
    CHECK(AsNobody({"setfattr", "-h", "-n", "trusted.x", "-v", "1", link}).status != 0);
  CHECK(get(s.Src("link"), "trusted.x") == get(s.Native("link"), "trusted.x"));
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("record locks and flock hold between processes using the mount", "[e2e]") {
  START_SHARED(s);
  WriteFileBytes(s.Src("locked"), "0123456789");
  REQUIRE(::chmod(s.Src("locked").c_str(), 0666) == 0);
  s.Mount();
  // The holder: this process. The contender: another user's process, which reports
  // whether its non-blocking attempt was refused (exit 0) or got the lock (exit 1).
  const std::string posix =
      "import fcntl,sys\nf=open(sys.argv[1],'r+')\n"
      "try:\n fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB,5,2)\nexcept OSError:\n sys.exit(0)\n"
      "sys.exit(1)\n";
  const std::string whole =
      "import fcntl,sys\nf=open(sys.argv[1],'r+')\n"
      "try:\n fcntl.flock(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n"
      " sys.exit(0)\nsys.exit(1)\n";
  const int fd = ::open(s.Mnt("locked").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 4;
  lk.l_len = 4;
  REQUIRE(::fcntl(fd, F_SETLK, &lk) == 0);
  CHECK(AsNobody({"/usr/bin/python3", "-c", posix, s.Mnt("locked")}).status == 0);
  lk.l_type = F_UNLCK;
  REQUIRE(::fcntl(fd, F_SETLK, &lk) == 0);
  CHECK(AsNobody({"/usr/bin/python3", "-c", posix, s.Mnt("locked")}).status == 1);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  CHECK(AsNobody({"/usr/bin/python3", "-c", whole, s.Mnt("locked")}).status == 0);
  CHECK(AsNobody({"/usr/bin/python3", "-c", whole, s.Src("locked")}).status == 0);  // reaches it
  REQUIRE(::flock(fd, LOCK_UN) == 0);
  CHECK(AsNobody({"/usr/bin/python3", "-c", whole, s.Mnt("locked")}).status == 1);
  ::close(fd);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("O_TMPFILE: an unnamed file counts nowhere until linkat names it", "[e2e]") {
  START_SHARED(s);
  fsys::create_directories(s.Src("d"));
  s.Mount();
  Totals before;
  REQUIRE(ReadTotals(s.Mnt("d"), &before));
  const int fd = ::open(s.Mnt("d").c_str(), O_TMPFILE | O_RDWR, 0640);
  INFO("errno " << errno);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, std::string(5000, 'x').data(), 5000) == 5000);
  REQUIRE(s.fx.Differences() == "");  // nothing new to count
  Totals t;
  REQUIRE(ReadTotals(s.Mnt("d"), &t));
  CHECK(t.bytes == before.bytes);
  CHECK(t.files == before.files);
  REQUIRE(::linkat(fd, "", AT_FDCWD, s.Mnt("d/named").c_str(), AT_EMPTY_PATH) == 0);
  REQUIRE(ReadTotals(s.Mnt("d"), &t));
  CHECK(t.bytes == before.bytes + 5000);
  CHECK(t.files == before.files + 1);
  REQUIRE(::write(fd, "more", 4) == 4);
  REQUIRE(s.fx.Differences() == "");
  ::close(fd);
  CHECK(StatOf(s.Src("d/named")).st_size == 5004);
  CHECK(ModeOf(s.Src("d/named")) == 0640);
  // O_EXCL: never to be named, as natively.
  for (const std::string& dir : {s.native, s.Mnt("d")}) {
    INFO(dir);
    const int excl = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_EXCL, 0600);
    REQUIRE(excl >= 0);
    CHECK(::linkat(excl, "", AT_FDCWD, (dir + "/excl").c_str(), AT_EMPTY_PATH) != 0);
    ::close(excl);
  }
  // Another user's: theirs, in a directory they may write to.
  auto r = AsNobody({"/usr/bin/python3", "-c",
                     "import os,sys\nfd=os.open(sys.argv[1],os.O_TMPFILE|os.O_RDWR,0o600)\n"
                     "os.write(fd,b'abc')\nprint(os.fstat(fd).st_uid)\n",
                     s.fx.mnt()});
  INFO(r.err);
  CHECK(r.out == "65534\n");
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("regression: another user renames a directory over hard links it cannot reach", "[e2e]") {
  // Renaming a directory needs no access below it. dtkfs first follows the index's names
  // of hard-linked files below it (LinkTracker::Adopt), which must not be done as the caller.
  START_SHARED(s);
  fsys::create_directories(s.Src("mine/private"));
  WriteFileBytes(s.Src("mine/private/f"), std::string(300, 'f'));
  REQUIRE(::link(s.Src("mine/private/f").c_str(), s.Src("other_name").c_str()) == 0);
  REQUIRE(::chown(s.Src("mine").c_str(), kNobody, kNobody) == 0);
  REQUIRE(::chmod(s.Src("mine/private").c_str(), 0700) == 0);
  s.Mount();  // scans: the index records both names of f
  auto mv = AsNobody({"mv", s.Mnt("mine"), s.Mnt("renamed")});
  INFO(mv.err);
  REQUIRE(mv.status == 0);
  REQUIRE(s.fx.Differences() == "");
  // f is followed under its new path: a write through its other name counts there too.
  REQUIRE(Run({"sh", "-c", "printf 12345 >> '" + s.Mnt("other_name") + "'"}).status == 0);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("regression: a directory its caller may read but not search lists through the mount",
          "[e2e]") {
  START_SHARED(s);
  for (const std::string& dir : {s.fx.src(), s.native}) {
    fsys::create_directories(dir + "/readonly");
    WriteFileBytes(dir + "/readonly/inside", "x");
    REQUIRE(::chmod((dir + "/readonly").c_str(), 0744) == 0);  // r for others, no x
  }
  s.Mount();
  const std::string list = "import os,sys\nprint(sorted(os.listdir(sys.argv[1])))\n";
  auto native = AsNobody({"/usr/bin/python3", "-c", list, s.Native("readonly")});
  auto mounted = AsNobody({"/usr/bin/python3", "-c", list, s.Mnt("readonly")});
  INFO(mounted.err);
  REQUIRE(native.status == 0);
  CHECK(mounted.status == 0);
  CHECK(mounted.out == native.out);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE(
    "regression: a worker started while another acted as a user ran root's requests as that user",
    "[e2e]") {
  // libfuse starts a new worker from a busy one, and a thread inherits its creator's
  // credentials: a worker started by one acting as nobody began as nobody while dtkfs took
  // it for the daemon, so root's next requests on it made files owned by nobody (or failed).
  // nobody's blocked flock requests hold workers, so that new ones start from workers that
  // have just acted as nobody; then root creates files.
  START_SHARED(s);
  WriteFileBytes(s.Src("lock"), "");
  REQUIRE(::chmod(s.Src("lock").c_str(), 0666) == 0);
  auto m = s.fx.Mount({"-o", "allow_other,threads=16"});
  INFO(m.err);
  REQUIRE(m.status == 0);
  const int fd = ::open(s.Mnt("lock").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  const std::string lock = s.Mnt("lock");
  std::vector<pid_t> waiting;
  for (int i = 0; i < 6; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execlp("setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
               "umask 077; stat \"$1\" >/dev/null; flock -x \"$1\" true", "sh", lock.c_str(),
               nullptr);
      ::_exit(127);
    }
    waiting.push_back(pid);
    ::usleep(300 * 1000);
  }
  const mode_t old_umask = ::umask(0);
  std::vector<std::string> made;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "root" + std::to_string(i);
    const int f = ::open(s.Mnt(name).c_str(), O_CREAT | O_WRONLY, 0666);
    if (f >= 0) ::close(f);
    made.push_back(name);
  }
  REQUIRE(::mkdir(s.Mnt("rootdir").c_str(), 0777) == 0);
  made.push_back("rootdir");
  ::umask(old_umask);
  REQUIRE(::flock(fd, LOCK_UN) == 0);  // let nobody's requests go before any REQUIRE
  ::close(fd);
  for (pid_t pid : waiting) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(status == 0);
  }
  for (const std::string& name : made) {
    INFO(name);
    struct stat st;
    REQUIRE(::lstat(s.Src(name).c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK(st.st_gid == 0);
    CHECK((st.st_mode & 0777) == (S_ISDIR(st.st_mode) ? 0777u : 0666u));
  }
  REQUIRE(s.fx.Unmount().status == 0);
}

TEST_CASE("regression: appending to an append-only file through the mount was refused", "[e2e]") {
  // dtkfs opens source files without O_APPEND; an append-only file (chattr +a) opens for
  // writing only with it, so `>>` through the mount failed with EPERM where it works
  // natively.
  START_SHARED(s);
  for (const std::string& dir : {s.fx.src(), s.native}) {
    WriteFileBytes(dir + "/log", "one\n");
    REQUIRE(::chmod((dir + "/log").c_str(), 0666) == 0);
    if (Run({"chattr", "+a", dir + "/log"}).status != 0) {
      WARN("not run: the filesystem here has no append-only files");
      return;
    }
  }
  s.Mount();
  for (const std::string& dir : {s.native, s.fx.mnt()}) {
    INFO(dir);
    CHECK(ShAsNobody("printf 'two\\n' >> " + dir + "/log").status == 0);
    CHECK(Run({"sh", "-c", "printf 'three\\n' >> " + dir + "/log"}).status == 0);
    // Without O_APPEND, or truncating: refused, as natively.
    CHECK(ShAsNobody("printf x 1<> " + dir + "/log").status != 0);
    CHECK(ShAsNobody("printf x > " + dir + "/log").status != 0);
    // pwrite on an fd opened with O_APPEND lands at the end.
    auto r = AsNobody({"/usr/bin/python3", "-c",
                       "import os,sys\nfd=os.open(sys.argv[1],os.O_RDWR|os.O_APPEND)\n"
                       "os.pwrite(fd,b'four\\n',0)\n",
                       dir + "/log"});
    INFO(r.err);
    CHECK(r.status == 0);
  }
  CHECK(ReadFileBytes(s.Src("log")) == "one\ntwo\nthree\nfour\n");
  CHECK(ReadFileBytes(s.Native("log")) == ReadFileBytes(s.Src("log")));
  REQUIRE(s.fx.Differences() == "");
  for (const std::string& dir : {s.fx.src(), s.native})
    REQUIRE(Run({"chattr", "-a", dir + "/log"}).status == 0);
  REQUIRE(s.fx.Unmount().status == 0);
}

// Bug (differential seed 2927812859): a symlink's xattrs were reached through its first
// known name only; as a caller who may not search that name's directory, llistxattr
// through another name answered EACCES where the source answers.
TEST_CASE("regression: a symlink's xattrs through a name the caller may reach", "[e2e]") {
  START_SHARED(s);
  for (const std::string& dir : {s.fx.src(), s.native}) {
    fsys::create_directories(dir + "/closed");
    fsys::create_symlink("target", dir + "/closed/link");
    REQUIRE(::link((dir + "/closed/link").c_str(), (dir + "/open_link").c_str()) == 0);
    REQUIRE(::chmod((dir + "/closed").c_str(), 0700) == 0);
  }
  s.Mount();
  // The table learns the closed name first (root's lookup), then nobody's.
  struct stat st;
  REQUIRE(::lstat(s.Mnt("closed/link").c_str(), &st) == 0);
  const std::string list =
      "import os,sys\nprint(os.listxattr(sys.argv[1],follow_symlinks=False))\n";
  auto native = AsNobody({"/usr/bin/python3", "-c", list, s.Native("open_link")});
  auto mounted = AsNobody({"/usr/bin/python3", "-c", list, s.Mnt("open_link")});
  INFO(mounted.err);
  REQUIRE(native.status == 0);
  CHECK(mounted.status == 0);
  CHECK(mounted.out == native.out);
  REQUIRE(s.fx.Differences() == "");
  REQUIRE(s.fx.Unmount().status == 0);
}
