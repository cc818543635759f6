// Where an index may live and what dtkfs refuses there (src/index/index_location.h,
// src/index/index_files.h, the Env's own-file rules in src/env/env.h), run through the real
// `dtkfs scan`/`check` processes and the Env directly. Issue 8's regressions are named after
// the bugs.
#include "index/index_location.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dtkfs/index_format.h"
#include "env/env.h"
#include "index/index_files.h"
#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/reference_walk.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using dtkfs::testing::CommandResult;
using dtkfs::testing::DtkfsBinary;
using dtkfs::testing::ReadFileBytes;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

namespace {

// The names in a directory, sorted, each with its type letter and size, so "nothing was
// created, removed or changed there" is one comparison.
std::string Listing(const std::string& dir) {
  return testing::Run({"sh", "-c", "cd '" + dir + "' && ls -lA --time-style=+%s"}).out;
}

// dtkfs with its own XDG_STATE_HOME.
class Dtkfs {
 public:
  CommandResult operator()(std::vector<std::string> args) const {
    std::vector<std::string> argv = {"env", "XDG_STATE_HOME=" + state_.path(), DtkfsBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = testing::Run(argv);
    UNSCOPED_INFO("dtkfs " << args.front() << " ... -> " << r.status << "\nstderr: " << r.err);
    return r;
  }
  std::string state() const { return state_.path(); }

 private:
  TempDir state_;
};

// An empty mount point for `dtkfs mount` calls that must be refused before mounting. Should
// one succeed anyway (the bug back), the mount is undone when the test ends.
class MountPoint {
 public:
  explicit MountPoint(std::string path) : path_(std::move(path)) {
    REQUIRE(::mkdir(path_.c_str(), 0755) == 0);
  }
  ~MountPoint() {
    struct stat a, b;
    if (::stat(path_.c_str(), &a) != 0 ||
        (::stat((path_ + "/..").c_str(), &b) == 0 && a.st_dev != b.st_dev)) {
      testing::Run({DtkfsBinary(), "umount", path_});
      testing::Run({"fusermount3", "-u", "-z", path_});
    }
  }
  operator std::string() const { return path_; }  // NOLINT: used as an argument

 private:
  std::string path_;
};

void MakeSmallSource(const std::string& src) {
  REQUIRE(::mkdir(src.c_str(), 0755) == 0);
  REQUIRE(::mkdir((src + "/d").c_str(), 0755) == 0);
  WriteFileBytes(src + "/d/f", std::string(123, 'f'));
}

}  // namespace

TEST_CASE("regression: --index naming a non-index file is refused and the file is untouched",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string dir = t / "files";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  WriteFileBytes(dir + "/notes.txt", "my notes, not an index\n");
  WriteFileBytes(dir + "/empty", "");
  std::string random(4096, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 7919 + 13) % 251);
  WriteFileBytes(dir + "/random.bin", random);
  WriteFileBytes(dir + "/almost", std::string(format::kMagic.substr(0, 5)));  // too short to tell
  REQUIRE(::mkdir((dir + "/a-dir").c_str(), 0700) == 0);
  WriteFileBytes(dir + "/a-dir/inside", "x");
  REQUIRE(::mkfifo((dir + "/a-fifo").c_str(), 0600) == 0);
  WriteFileBytes(t / "victim", "the link's target\n");
  REQUIRE(::symlink((t / "victim").c_str(), (dir + "/a-link").c_str()) == 0);
  MountPoint mnt(t / "mnt");
  const std::string before = Listing(dir);
  const std::string victim_before = Listing(t.path());
  Dtkfs dtkfs;

  for (const char* name :
       {"notes.txt", "empty", "random.bin", "almost", "a-dir", "a-fifo", "a-link"}) {
    const std::string index = dir + "/" + name;
    for (const std::vector<std::string>& cmd :
         std::vector<std::vector<std::string>>{{"scan", src, "--index", index},
                                               {"check", "--repair", src, "--index", index},
                                               {"check", src, "--index", index},
                                               {"mount", src, mnt, "--index", index}}) {
      INFO(name << ": dtkfs " << cmd.front());
      CommandResult r = dtkfs(cmd);
      CHECK(r.status == 2);
      CHECK_THAT(r.err, Catch::Contains(index));
      CHECK(r.err.find("indexed") == std::string::npos);  // refused before any scan
    }
  }
  // Byte for byte: contents, sizes, times; no INDEX.lock or INDEX.tmp beside them.
  CHECK(Listing(dir) == before);
  CHECK(ReadFileBytes(dir + "/notes.txt") == "my notes, not an index\n");
  CHECK(ReadFileBytes(dir + "/random.bin") == random);
  CHECK(ReadFileBytes(t / "victim") == "the link's target\n");
  CHECK(Listing(t.path()) == victim_before);

  // The messages say what the file is.
  CHECK_THAT(dtkfs({"scan", src, "--index", dir + "/notes.txt"}).err,
             Catch::Contains("is not a dtkfs index") && Catch::Contains("will not overwrite"));
  CHECK_THAT(dtkfs({"scan", src, "--index", dir + "/empty"}).err, Catch::Contains("empty"));
  CHECK_THAT(dtkfs({"scan", src, "--index", dir + "/a-dir"}).err, Catch::Contains("directory"));
  CHECK_THAT(dtkfs({"scan", src, "--index", dir + "/a-fifo"}).err, Catch::Contains("fifo"));
  CHECK_THAT(dtkfs({"scan", src, "--index", dir + "/a-link"}).err,
             Catch::Contains("symbolic link"));

  // A corrupt dtkfs index (right magic, wrong rest) is dtkfs's own: rebuilt.
  WriteFileBytes(dir + "/broken.idx", std::string(format::kMagic) + "garbage after the magic");
  CHECK(dtkfs({"scan", src, "--index", dir + "/broken.idx"}).status == 0);
  CHECK(dtkfs({"check", src, "--index", dir + "/broken.idx"}).status == 0);
}

TEST_CASE("regression: --index '' is refused instead of meaning the default index",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  MountPoint mnt(t / "mnt");
  Dtkfs dtkfs;
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"scan", src, "--index", ""},
                                             {"scan", src, "--index="},
                                             {"check", "--repair", src, "--index", ""},
                                             {"mount", src, mnt, "--index", ""},
                                             {"mount", src, mnt, "-o", "index="}}) {
    INFO(cmd.size());
    CommandResult r = dtkfs(cmd);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("empty"));
  }
  // Nothing was written to the default location either.
  CHECK(testing::Run({"find", dtkfs.state(), "-mindepth", "1"}).out == "");
}

TEST_CASE("regression: --index DIR/, DIR/. and DIR/.. are refused before any scan or file",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string dir = t / "state";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  REQUIRE(::mkdir((dir + "/sub").c_str(), 0700) == 0);
  MountPoint mnt(t / "mnt");
  const std::string before = Listing(t.path()) + Listing(dir) + Listing(dir + "/sub");
  Dtkfs dtkfs;
  for (const std::string& index :
       {dir + "/", dir + "/.", dir + "/..", dir + "/sub/..", dir + "/new/", dir + "/sub//"}) {
    for (const char* cmd : {"scan", "check", "mount"}) {
      INFO(cmd << " --index " << index);
      std::vector<std::string> args = {cmd, src};
      if (std::string(cmd) == "mount") args.push_back(mnt);
      args.insert(args.end(), {"--index", index});
      CommandResult r = dtkfs(args);
      CHECK(r.status == 2);
      CHECK_THAT(r.err, Catch::Contains("must be a file name"));
      CHECK(r.err.find("indexed") == std::string::npos);
    }
  }
  CHECK(Listing(t.path()) + Listing(dir) + Listing(dir + "/sub") == before);
  CHECK_FALSE(Env::Default().FileExists(dir + "/new"));
}

TEST_CASE("regression: check on an unreadable index says so and exits 2", "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string index = t / "x.idx";
  Dtkfs dtkfs;
  REQUIRE(dtkfs({"scan", src, "--index", index}).status == 0);
  std::string bytes = ReadFileBytes(index);
  bytes[bytes.size() / 2] ^= 0x20;
  WriteFileBytes(index, bytes);
  CommandResult r = dtkfs({"check", src, "--index", index});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(index) && Catch::Contains("unreadable") &&
                        Catch::Contains("checksum"));
  CHECK(r.err.find("entries differ") == std::string::npos);
  CHECK(r.out == "");
  // --repair rebuilds it.
  CHECK(dtkfs({"check", "--repair", src, "--index", index}).status == 1);
  CHECK(dtkfs({"check", src, "--index", index}).status == 0);
}

TEST_CASE("regression: a lock failure that is no lock conflict is not called 'in use'",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string index = t / "x.idx";
  // Something that cannot be opened as the lock file: a directory in its place.
  REQUIRE(::mkdir(IndexLockPath(index).c_str(), 0700) == 0);
  MountPoint mnt(t / "mnt");
  Dtkfs dtkfs;
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"scan", src, "--index", index},
                                             {"check", src, "--index", index},
                                             {"mount", src, mnt, "--index", index}}) {
    INFO(cmd.front());
    CommandResult r = dtkfs(cmd);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(IndexLockPath(index)));
    CHECK(r.err.find("in use") == std::string::npos);
    CHECK(r.err.find("locked by another") == std::string::npos);
  }
  CHECK_FALSE(Env::Default().FileExists(index));
}

TEST_CASE("regression: an index directory other users can write is refused unless sticky",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string open_dir = t / "open";
  REQUIRE(::mkdir(open_dir.c_str(), 0700) == 0);
  Dtkfs dtkfs;
  for (mode_t mode : {0777, 0770, 0722}) {
    REQUIRE(::chmod(open_dir.c_str(), mode) == 0);
    CommandResult r = dtkfs({"scan", src, "--index", open_dir + "/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(open_dir) && Catch::Contains("other users"));
  }
  CHECK_FALSE(Env::Default().FileExists(open_dir + "/x.idx.lock"));
  // Sticky, like /tmp: others cannot replace this user's files there.
  REQUIRE(::chmod(open_dir.c_str(), 01777) == 0);
  CHECK(dtkfs({"scan", src, "--index", open_dir + "/x.idx"}).status == 0);
  // Regression: an ancestor others can write (not sticky) lets them rename the index's own
  // directory away and put a link in its place, however private that directory is.
  const std::string shared = t / "shared";
  REQUIRE(::mkdir(shared.c_str(), 0777) == 0);
  REQUIRE(::chmod(shared.c_str(), 0777) == 0);
  REQUIRE(::mkdir((shared + "/idx").c_str(), 0700) == 0);
  {
    CommandResult r = dtkfs({"scan", src, "--index", shared + "/idx/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(shared + " (mode 0777") && Catch::Contains("other users"));
  }

  if (::geteuid() == 0) {
    // A directory of another user (not root): refused even with mode 0700.
    const std::string theirs = t / "theirs";
    REQUIRE(::mkdir(theirs.c_str(), 0700) == 0);
    REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
    CommandResult r = dtkfs({"scan", src, "--index", theirs + "/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("other users"));
    // Regression: sticky does not bind the directory's owner (who can rename it inside a
    // sticky parent): a sticky directory of another user is refused too.
    REQUIRE(::chmod(theirs.c_str(), 01777) == 0);
    r = dtkfs({"scan", src, "--index", theirs + "/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("other users"));
    // An index file of another user in an own directory: refused, untouched.
    const std::string mine = t / "mine";
    REQUIRE(::mkdir(mine.c_str(), 0700) == 0);
    REQUIRE(dtkfs({"scan", src, "--index", mine + "/x.idx"}).status == 0);
    REQUIRE(::chown((mine + "/x.idx").c_str(), 65534, 65534) == 0);
    const std::string bytes = ReadFileBytes(mine + "/x.idx");
    r = dtkfs({"scan", src, "--index", mine + "/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("owned by uid 65534"));
    CHECK(ReadFileBytes(mine + "/x.idx") == bytes);
    // And a lock file of another user.
    REQUIRE(::chown((mine + "/x.idx").c_str(), 0, 0) == 0);
    REQUIRE(::chown(IndexLockPath(mine + "/x.idx").c_str(), 65534, 65534) == 0);
    r = dtkfs({"scan", src, "--index", mine + "/x.idx"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(IndexLockPath(mine + "/x.idx")) &&
                          Catch::Contains("owned by uid 65534"));
  }
}

TEST_CASE("regression: planted symlinks beside the index are never followed by scan",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string index = t / "state/x.idx";
  REQUIRE(::mkdir((t / "state").c_str(), 0700) == 0);
  WriteFileBytes(t / "victim-tmp", "tmp victim\n");
  WriteFileBytes(t / "victim-lock", "lock victim\n");
  REQUIRE(::symlink((t / "victim-tmp").c_str(), IndexTempPath(index).c_str()) == 0);
  Dtkfs dtkfs;
  // INDEX.tmp is removed and created afresh (O_EXCL): the link goes, its target stays.
  CHECK(dtkfs({"scan", src, "--index", index}).status == 0);
  CHECK(ReadFileBytes(t / "victim-tmp") == "tmp victim\n");
  CHECK_FALSE(Env::Default().FileExists(IndexTempPath(index)));
  // INDEX.lock must stay one inode, so a link there is refused rather than replaced.
  REQUIRE(::unlink(IndexLockPath(index).c_str()) == 0);
  REQUIRE(::symlink((t / "victim-lock").c_str(), IndexLockPath(index).c_str()) == 0);
  CommandResult r = dtkfs({"scan", src, "--index", index});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(IndexLockPath(index)) && Catch::Contains("symbolic link"));
  CHECK(ReadFileBytes(t / "victim-lock") == "lock victim\n");
}

TEST_CASE("Env: own files are opened without following links and must be this user's",
          "[env][safety]") {
  TempDir t;
  Env& env = Env::Default();
  WriteFileBytes(t / "target", "target\n");
  REQUIRE(::symlink((t / "target").c_str(), (t / "link").c_str()) == 0);
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0600) == 0);

  // NewWritableFile replaces the link itself.
  auto f = env.NewWritableFile(t / "link", 0600);
  REQUIRE(f.ok());
  REQUIRE((*f)->WriteAt(0, "new").ok());
  REQUIRE((*f)->Close().ok());
  CHECK(ReadFileBytes(t / "target") == "target\n");
  CHECK(ReadFileBytes(t / "link") == "new");
  struct stat st;
  REQUIRE(::lstat((t / "link").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);

  REQUIRE(::symlink((t / "target").c_str(), (t / "link2").c_str()) == 0);
  CHECK_THAT(env.ReadFileToString(t / "link2", 100).status().message(),
             Catch::Contains("symbolic link"));
  CHECK_THAT(env.ReopenWritableFile(t / "link2").status().message(),
             Catch::Contains("symbolic link"));
  CHECK_THAT(env.LockFile(t / "link2").status().message(), Catch::Contains("symbolic link"));
  CHECK_THAT(env.ReadFileToString(t / "fifo", 100).status().message(),
             Catch::Contains("fifo"));  // and does not hang
  CHECK(env.ReadFileToString(t / "absent", 100).status().code() == Status::Code::kNotFound);
  CHECK(*env.ReadFileToString(t / "target", 3) == "tar");
  CHECK(ReadFileBytes(t / "target") == "target\n");

  // ReopenWritableFile overwrites in place: same inode, no truncation.
  WriteFileBytes(t / "status", std::string(100, ' '));
  REQUIRE(::stat((t / "status").c_str(), &st) == 0);
  const ino_t ino = st.st_ino;
  auto w = env.ReopenWritableFile(t / "status");
  REQUIRE(w.ok());
  REQUIRE((*w)->WriteAt(0, "ok\n").ok());
  REQUIRE((*w)->Close().ok());
  REQUIRE(::stat((t / "status").c_str(), &st) == 0);
  CHECK(st.st_ino == ino);
  CHECK(ReadFileBytes(t / "status") == "ok\n" + std::string(97, ' '));

  if (::geteuid() == 0) {
    REQUIRE(::chown((t / "status").c_str(), 65534, 65534) == 0);
    CHECK_THAT(env.ReadFileToString(t / "status", 10).status().message(),
               Catch::Contains("owned by uid 65534"));
    CHECK_THAT(env.ReopenWritableFile(t / "status").status().message(),
               Catch::Contains("owned by uid 65534"));
  }

  // Source locks: one holder per directory, whatever path reaches it.
  REQUIRE(::mkdir((t / "src").c_str(), 0755) == 0);
  REQUIRE(::symlink((t / "src").c_str(), (t / "src-alias").c_str()) == 0);
  auto first = LockSource(env, t / "src");
  REQUIRE(first.ok());
  auto second = LockSource(env, boost::filesystem::canonical(t / "src-alias").string());
  CHECK(second.status().code() == Status::Code::kBusy);
  first.value().reset();  // releases the first lock
  CHECK(LockSource(env, t / "src").ok());
}

TEST_CASE("regression: du does not take a forged user.dtkfs.status for a mount", "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  Dtkfs dtkfs;
  REQUIRE(dtkfs({"scan", src}).status == 0);
  // Anyone who can write d can make it look like a dtkfs mount that answers 1.
  REQUIRE(::setxattr((src + "/d").c_str(), "user.dtkfs.status", "pid: 1\n", 8, 0) == 0);
  REQUIRE(::setxattr((src + "/d").c_str(), "user.total_bytes", "1", 1, 0) == 0);
  CommandResult r = dtkfs({"du", src + "/d"});
  CHECK(r.status == 0);
  CHECK(r.out.rfind("123\t", 0) == 0);  // the index's number, not the forged one
}

TEST_CASE("regression: files a user keeps beside a new index path are never removed or rewritten",
          "[cli][safety]") {
  TempDir t;
  const std::string src = t / "src";
  MakeSmallSource(src);
  const std::string dir = t / "u";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  const std::string index = dir + "/report";
  Dtkfs dtkfs;
  for (const std::string& side :
       {IndexTempPath(index), DirtyMarkerPath(index), ExitStatusPath(index)}) {
    INFO(side);
    WriteFileBytes(side, "the user's own words\n");
    CommandResult r = dtkfs({"scan", src, "--index", index});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(side) && Catch::Contains("not dtkfs's"));
    CHECK(ReadFileBytes(side) == "the user's own words\n");
    REQUIRE(::unlink(side.c_str()) == 0);
  }
  // Files that merely start like dtkfs's are the user's too: a sparse file that starts with
  // zeros, notes that start with "ok" or "mounted".
  {
    const int fd = ::open(IndexTempPath(index).c_str(), O_WRONLY | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "data", 4, 1 << 20) == 4);
    ::close(fd);
  }
  WriteFileBytes(ExitStatusPath(index), "okay, my notes\n");
  WriteFileBytes(DirtyMarkerPath(index), "mounted? my notes\n");
  for (const std::string& side :
       {IndexTempPath(index), DirtyMarkerPath(index), ExitStatusPath(index)}) {
    INFO(side);
    const std::string before = ReadFileBytes(side);
    CHECK(dtkfs({"scan", src, "--index", index}).status == 2);
    CHECK(ReadFileBytes(side) == before);
    REQUIRE(::unlink(side.c_str()) == 0);
  }
  // dtkfs's own leftovers (a crash mid-scan) are no obstacle.
  WriteFileBytes(IndexTempPath(index), "");
  WriteFileBytes(DirtyMarkerPath(index), "mounted\n");
  CHECK(dtkfs({"scan", src, "--index", index}).status == 0);
}
