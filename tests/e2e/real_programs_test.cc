// Real programs inside the mount (issue 12): SQLite in WAL mode written by two processes at
// once, git (init, clone, commit, gc, fsck), rsync -aHAX in and out, cp -a, and a small
// cmake build. Each does its work through a root daemon's mount; what it leaves is compared
// with the same work done natively (contents, modes, owners, xattrs, ACLs, hard links), and
// every case ends with every directory's size xattrs equal to a walk of the source.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "support/files.h"
#include "support/mount_fixture.h"

namespace fsys = std::filesystem;
using namespace dtkfs::testing;

namespace {

constexpr uid_t kNobody = 65534;

// A mount and a scratch directory beside it, for the native side of each comparison.
struct Programs {
  MountFixture fx;
  std::string scratch;

  bool Start() {
    if (!fx.available()) return false;
    scratch = fsys::path(fx.src()).parent_path() / "scratch";
    fsys::create_directories(scratch);
    auto m = fx.Mount();
    INFO(m.err);
    REQUIRE(m.status == 0);
    return true;
  }
  std::string Mnt(const std::string& rel) const { return fx.mnt() + "/" + rel; }
  std::string Scratch(const std::string& rel) const { return scratch + "/" + rel; }
};

#define START_PROGRAMS(p)        \
  Programs p;                    \
  DTKFS_REQUIRE_MOUNTABLE(p.fx); \
  REQUIRE(p.Start())

// Runs a shell script; the test fails with its output if it does not exit 0.
std::string Sh(const std::string& script) {
  auto r = Run({"sh", "-c", script});
  INFO(script << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
  return r.out;
}

std::string Q(const std::string& s) { return "'" + s + "'"; }

// What a copy must keep of a tree, entry by entry (relative path -> description): type, mode,
// owner, group, size, mtime of non-directories, a symlink's target, every xattr (ACLs
// included) and, for a file with several names, the first of its names in the tree.
std::map<std::string, std::string> Manifest(const std::string& root) {
  std::map<std::string, std::string> out;
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::vector<fsys::path> paths;
  for (auto it = fsys::recursive_directory_iterator(root); it != fsys::end(it); ++it)
    paths.push_back(it->path());
  std::sort(paths.begin(), paths.end());
  for (const fsys::path& path : paths) {
    const std::string p = path.string(), rel = p.substr(root.size());
    struct stat st;
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    std::string s = fmt::format("mode 0{:o} uid {} gid {} ", st.st_mode, st.st_uid, st.st_gid);
    if (!S_ISDIR(st.st_mode))
      s +=
          fmt::format("size {} mtime {}.{:09} ", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (S_ISLNK(st.st_mode)) s += "-> " + fsys::read_symlink(path).string() + " ";
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto [at, inserted] = first_name.emplace(std::pair{st.st_dev, st.st_ino}, rel);
      s += "links " + at->second + " ";
    }
    char names[4096];
    const ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    std::vector<std::string> sorted;
    for (ssize_t i = 0; i < n;) {
      sorted.emplace_back(names + i);
      i += static_cast<ssize_t>(sorted.back().size()) + 1;
    }
    std::sort(sorted.begin(), sorted.end());
    for (const std::string& name : sorted) {
      char value[4096];
      const ssize_t v = ::lgetxattr(p.c_str(), name.c_str(), value, sizeof value);
      s +=
          name + "=" + (v < 0 ? "?" : fmt::format("{:02x}", fmt::join(value, value + v, ""))) + " ";
    }
    out[rel] = s;
  }
  return out;
}

// "" when both trees hold the same (Manifest and diff -r), else what differs.
std::string TreeDifferences(const std::string& a, const std::string& b) {
  std::string out;
  const auto ma = Manifest(a), mb = Manifest(b);
  for (const auto& [rel, s] : ma) {
    auto it = mb.find(rel);
    if (it == mb.end())
      out += fmt::format("{}: only in {}\n", rel, a);
    else if (it->second != s)
      out += fmt::format("{}:\n  {}\n  {}\n", rel, s, it->second);
  }
  for (const auto& [rel, s] : mb)
    if (ma.count(rel) == 0) out += fmt::format("{}: only in {}\n", rel, b);
  // diff -r reports every pair of fifos ("... is a fifo while file ... is a fifo") and exits
  // 1 for them: those lines alone are no difference.
  auto diff = Run({"diff", "-r", "--no-dereference", a, b});
  std::string lines;
  for (size_t at = 0, nl; (nl = diff.out.find('\n', at)) != std::string::npos; at = nl + 1) {
    const std::string line = diff.out.substr(at, nl - at);
    if (line.find(" is a fifo while file ") == std::string::npos ||
        line.substr(line.size() - 10) != " is a fifo")
      lines += line + "\n";
  }
  if (diff.status > 1 || !lines.empty()) out += "diff -r: " + lines + diff.err;
  return out;
}

// A tree with what rsync -aHAX and cp -a must keep: contents of several sizes, hard links
// across directories, symlinks (one dangling), a fifo, an empty directory, setuid and odd
// modes, another owner, user xattrs on files and directories, an access ACL and a default
// ACL. (No xattrs on symlinks: the mount does not keep them yet, see the differential test.)
void MakeRichTree(const std::string& root) {
  fsys::create_directories(root + "/docs/deep/deeper");
  fsys::create_directories(root + "/empty");
  fsys::create_directories(root + "/shared");
  WriteFileBytes(root + "/docs/small", "small\n");
  WriteFileBytes(root + "/docs/empty_file", "");
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i * 7 % 26);
  WriteFileBytes(root + "/docs/deep/big", big);
  WriteFileBytes(root + "/docs/deep/deeper/leaf", "leaf");
  REQUIRE(::link((root + "/docs/small").c_str(), (root + "/shared/small_link").c_str()) == 0);
  REQUIRE(::link((root + "/docs/small").c_str(), (root + "/docs/deep/small_again").c_str()) == 0);
  REQUIRE(::symlink("../docs/small", (root + "/shared/to_small").c_str()) == 0);
  REQUIRE(::symlink("nowhere", (root + "/shared/dangling").c_str()) == 0);
  REQUIRE(::mkfifo((root + "/shared/fifo").c_str(), 0640) == 0);
  WriteFileBytes(root + "/shared/tool", "#!/bin/sh\n");
  REQUIRE(::chmod((root + "/shared/tool").c_str(), 04755) == 0);
  WriteFileBytes(root + "/shared/theirs", "nobody's\n");
  REQUIRE(::chown((root + "/shared/theirs").c_str(), kNobody, kNobody) == 0);
  REQUIRE(::chmod((root + "/docs/deep/deeper").c_str(), 0700) == 0);
  REQUIRE(::setxattr((root + "/docs/small").c_str(), "user.tag", "blue", 4, 0) == 0);
  REQUIRE(::setxattr((root + "/docs").c_str(), "user.dir", "yes", 3, 0) == 0);
  Sh("setfacl -m u:nobody:rw " + Q(root + "/docs/deep/big") + " && setfacl -d -m g:nogroup:rx " +
     Q(root + "/shared"));
  // Times in the past: rsync leaves a time alone when it is within the same second, and a
  // copy made within a second of the tree would then show its own creation time.
  Sh("find " + Q(root) + " -exec touch -h -d '2020-01-02 03:04:05.123456789' {} +");
}

}  // namespace

TEST_CASE("SQLite in WAL mode, written by two processes at once, stays intact", "[e2e]") {
  START_PROGRAMS(p);
  fsys::create_directories(p.Mnt("db"));
  const std::string db = p.Mnt("db/test.sqlite");
  REQUIRE(Sh("sqlite3 " + Q(db) +
             " 'PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, "
             "payload BLOB);'") == "wal\n");
  // Each writer commits 300 rows one by one, interleaving with the other (busy_timeout waits
  // for the lock); a reader counts while they run.
  std::string script;
  for (const char* who : {"one", "two"}) {
    std::string sql = "PRAGMA busy_timeout=20000;";
    for (int i = 0; i < 300; ++i)
      sql += fmt::format("INSERT INTO t(who, payload) VALUES('{}', randomblob({}));", who,
                         100 + i * 37 % 2000);
    WriteFileBytes(p.Scratch(std::string(who) + ".sql"), sql);
    script += "sqlite3 " + Q(db) + " < " + Q(p.Scratch(std::string(who) + ".sql")) + " & ";
  }
  script += "sqlite3 " + Q(db) + " 'PRAGMA busy_timeout=20000; SELECT count(*) FROM t;' & wait";
  Sh(script);
  CHECK(Sh("sqlite3 " + Q(db) + " 'SELECT who, count(*) FROM t GROUP BY who;'") ==
        "one|300\ntwo|300\n");
  CHECK(Sh("sqlite3 " + Q(db) + " 'PRAGMA integrity_check;'") == "ok\n");
  CHECK(Sh("sqlite3 " + Q(db) + " 'PRAGMA journal_mode;'") == "wal\n");
  REQUIRE(p.fx.Differences() == "");
  // A checkpoint folds the WAL into the database; the sizes follow.
  CHECK(Sh("sqlite3 " + Q(db) + " 'PRAGMA wal_checkpoint(TRUNCATE);'") == "0|0|0\n");
  CHECK(Sh("sqlite3 " + Q(db) + " 'PRAGMA integrity_check; SELECT count(*) FROM t;'") ==
        "ok\n600\n");
  REQUIRE(p.fx.Differences() == "");
  REQUIRE(p.fx.Unmount().status == 0);
}

TEST_CASE("git init, clone, commit, gc and fsck inside the mount", "[e2e]") {
  START_PROGRAMS(p);
  const std::string git =
      "git -c user.name=dtkfs -c user.email=dtkfs@example.org "
      "-c init.defaultBranch=main -c gc.auto=0 ";
  // A repository made natively, with some history, to clone from.
  const std::string origin = p.Scratch("origin");
  Sh(git + "init -q " + Q(origin));
  for (int i = 0; i < 20; ++i) {
    WriteFileBytes(
        origin + fmt::format("/file{}.txt", i % 7),
        fmt::format("version {}\n{}", i, std::string(static_cast<size_t>(i) * 500, 'x')));
    Sh("cd " + Q(origin) + " && " + git + "add -A && " + git +
       fmt::format("commit -qm 'change {}'", i));
  }
  // Clone into the mount (a local clone across filesystems copies the objects), then over
  // the git protocol's pack path too (file://).
  Sh(git + "clone -q " + Q(origin) + " " + Q(p.Mnt("clone")));
  Sh(git + "clone -q --no-local file://" + origin + " " + Q(p.Mnt("packed")));
  REQUIRE(p.fx.Differences() == "");
  for (const char* repo : {"clone", "packed"}) {
    const std::string dir = p.Mnt(repo);
    INFO(repo);
    WriteFileBytes(dir + "/new.txt", "made in the mount\n");
    Sh("cd " + Q(dir) + " && " + git + "add new.txt && " + git + "commit -qm 'in the mount' && " +
       git + "rm -q file3.txt && " + git + "commit -qm 'removed' && " + git +
       "gc -q --prune=now && " + git + "fsck --full --strict");
    CHECK(Sh("cd " + Q(dir) + " && " + git + "rev-list --count HEAD") == "22\n");
    CHECK(Sh("cd " + Q(dir) + " && " + git + "status --porcelain") == "");
    REQUIRE(p.fx.Differences() == "");
  }
  // A repository made in the mount, cloned out of it.
  const std::string made = p.Mnt("made");
  Sh(git + "init -q " + Q(made));
  WriteFileBytes(made + "/a.txt", "a\n");
  Sh("cd " + Q(made) + " && " + git + "add a.txt && " + git + "commit -qm first && " + git +
     "gc -q && " + git + "fsck --full");
  Sh(git + "clone -q --no-local " + Q(made) + " " + Q(p.Scratch("out")));
  CHECK(ReadFileBytes(p.Scratch("out/a.txt")) == "a\n");
  REQUIRE(p.fx.Differences() == "");
  REQUIRE(p.fx.Unmount().status == 0);
}

TEST_CASE("rsync -aHAX into and out of the mount keeps everything", "[e2e]") {
  START_PROGRAMS(p);
  DTKFS_ROOT_ONLY("the tree holds a file of another user's");
  const std::string tree = p.Scratch("tree"), in = p.Mnt("in"), out = p.Scratch("out");
  MakeRichTree(tree);
  Sh("rsync -aHAX " + Q(tree + "/") + " " + Q(in + "/"));
  CHECK(TreeDifferences(tree, in) == "");
  CHECK(TreeDifferences(tree, p.fx.src() + "/in") == "");
  REQUIRE(p.fx.Differences() == "");
  Sh("rsync -aHAX " + Q(in + "/") + " " + Q(out + "/"));
  CHECK(TreeDifferences(tree, out) == "");
  // Again, over an existing copy: nothing to transfer, nothing changes.
  auto again = Run({"rsync", "-aHAXi", tree + "/", in + "/"});
  CHECK(again.status == 0);
  CHECK(again.out == "");
  // Changes go across: a file grows, one goes, a link is broken up.
  WriteFileBytes(tree + "/docs/deep/deeper/leaf", std::string(50000, 'L'));
  fsys::remove(tree + "/docs/empty_file");
  fsys::remove(tree + "/shared/small_link");
  Sh("rsync -aHAX --delete " + Q(tree + "/") + " " + Q(in + "/"));
  CHECK(TreeDifferences(tree, in) == "");
  REQUIRE(p.fx.Differences() == "");
  REQUIRE(p.fx.Unmount().status == 0);
}

TEST_CASE("cp -a into and out of the mount keeps xattrs, ACLs and hard links", "[e2e]") {
  START_PROGRAMS(p);
  DTKFS_ROOT_ONLY("the tree holds a file of another user's");
  const std::string tree = p.Scratch("tree");
  MakeRichTree(tree);
  Sh("cp -a " + Q(tree) + " " + Q(p.Mnt("copy")));
  CHECK(TreeDifferences(tree, p.Mnt("copy")) == "");
  CHECK(Sh("getfacl -p " + Q(p.Mnt("copy/docs/deep/big"))).find("user:nobody:rw-") !=
        std::string::npos);
  CHECK(Sh("getfacl -p " + Q(p.Mnt("copy/shared"))).find("default:group:nogroup:r-x") !=
        std::string::npos);
  REQUIRE(p.fx.Differences() == "");
  // Within the mount, and back out.
  Sh("cp -a " + Q(p.Mnt("copy")) + " " + Q(p.Mnt("copy2")));
  CHECK(TreeDifferences(tree, p.Mnt("copy2")) == "");
  Sh("cp -a " + Q(p.Mnt("copy2")) + " " + Q(p.Scratch("back")));
  CHECK(TreeDifferences(tree, p.Scratch("back")) == "");
  REQUIRE(p.fx.Differences() == "");
  REQUIRE(p.fx.Unmount().status == 0);
}

TEST_CASE("a small cmake project configures, builds and rebuilds inside the mount", "[e2e]") {
  START_PROGRAMS(p);
  const std::string proj = p.Mnt("proj");
  fsys::create_directories(proj + "/src");
  WriteFileBytes(proj + "/CMakeLists.txt",
                 "cmake_minimum_required(VERSION 3.13)\n"
                 "project(tiny C)\n"
                 "add_library(greet STATIC src/greet.c)\n"
                 "add_executable(hello src/main.c)\n"
                 "target_link_libraries(hello greet)\n");
  WriteFileBytes(proj + "/src/greet.c",
                 "#include <stdio.h>\nvoid greet(const char* who) { printf(\"hello, %s\\n\", "
                 "who); }\n");
  WriteFileBytes(proj + "/src/main.c",
                 "void greet(const char*);\nint main(void) { greet(\"mount\"); return 0; }\n");
  Sh("cmake -S " + Q(proj) + " -B " + Q(proj + "/build") + " -G Ninja >/dev/null");
  Sh("cmake --build " + Q(proj + "/build"));
  CHECK(Sh(Q(proj + "/build/hello")) == "hello, mount\n");
  REQUIRE(p.fx.Differences() == "");
  // Nothing changed: nothing to do. One source changed: it alone rebuilds.
  CHECK(Sh("cmake --build " + Q(proj + "/build")).find("no work to do") != std::string::npos);
  WriteFileBytes(proj + "/src/main.c",
                 "void greet(const char*);\nint main(void) { greet(\"again\"); return 0; }\n");
  const std::string rebuilt = Sh("cmake --build " + Q(proj + "/build"));
  CHECK(rebuilt.find("main.c") != std::string::npos);
  CHECK(rebuilt.find("greet.c") == std::string::npos);
  CHECK(Sh(Q(proj + "/build/hello")) == "hello, again\n");
  REQUIRE(p.fx.Differences() == "");
  Sh("cmake --build " + Q(proj + "/build") + " --target clean");
  REQUIRE(p.fx.Differences() == "");
  REQUIRE(p.fx.Unmount().status == 0);
}
