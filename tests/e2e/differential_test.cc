// Differential suite (issue 12): one seeded sequence of system calls, run call by call on a
// native directory and through a root daemon's allow_other mount of an identical tree, as
// root and as other users (uid 65534 with and without a supplementary group, and a user
// whose primary group owns a directory), over a tree with POSIX ACLs (denying, granting,
// default), setuid and setgid files, a sticky directory and a setgid group directory.
//
// For every call: its return value, its errno, what it read (bytes, link target, xattr value
// or names), and the stat fields that must agree (type, mode, uid, gid, size, nlink; times
// only right after a utimensat set them) of every path and descriptor it touched. After each
// run of calls, the two whole trees: native against the source (xattrs and ACLs included)
// and native against the mount. At the end, every directory's size xattrs against a walk.
//
// Call i is drawn from a fixed pool of names by a generator seeded with (seed, i), not from
// the tree's state: the sequence is the same whatever happened before, and many calls fail
// (ENOENT, EEXIST, EACCES, EPERM, ENOTDIR, ELOOP...), which must fail alike on both sides.
// The calls run in forked children that became the user (setgroups, setgid, setuid);
// Catch2 is not fork-safe, so a child reports through a pipe and the parent checks. A
// child stops at a mismatch that may have changed one tree and not the other; the parent
// then rebuilds both trees and the sequence goes on from the next call.
//
// kKnownDifferences lists the mismatches dtkfs still has, each with its reason; any other
// mismatch fails the test. Remove an entry when its bug is fixed.
//
// Repeat a run with DTKFS_TEST_SEED=<seed>; DTKFS_DIFF_CALLS=<n> runs n calls (default 4000).
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/test_seed.h"

namespace fsys = std::filesystem;
using namespace dtkfs::testing;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kTeam = 4242;  // a group only the identities below may be in
constexpr uid_t kTeamUser = 4243;
constexpr int kSlots = 3;  // open descriptors a sequence juggles

// ---------------------------------------------------------------------------------------
// Who runs the calls.

struct Identity {
  const char* name;
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
  mode_t umask;
};

const std::vector<Identity>& Identities() {
  static const std::vector<Identity> ids = {
      {"root", 0, 0, {}, 022},
      {"nobody", kNobody, kNobody, {}, 022},
      {"nobody+team", kNobody, kNobody, {kTeam}, 002},
      {"teamuser", kTeamUser, kTeam, {}, 077},
  };
  return ids;
}

// ---------------------------------------------------------------------------------------
// The calls. Paths are relative to the workspace (root/w); a symlink's target is kept as is.

enum class Op {
  kOpen,
  kTmpfile,
  kClose,
  kRead,
  kWrite,
  kPwrite,
  kFsync,
  kTruncate,
  kFtruncate,
  kMkdir,
  kRmdir,
  kUnlink,
  kRename,
  kLink,
  kSymlink,
  kReadlink,
  kChmod,
  kFchmod,
  kChown,
  kLchown,
  kUtimens,
  kSetxattr,
  kGetxattr,
  kRemovexattr,
  kListxattr,
  kSetAcl,
  kAccess,
  kMknod,
  kStat,
  kFlock,
  kOfdLock,
};

struct Call {
  Op op;
  std::string a, b;  // paths (b: second path, or the symlink's target)
  int flags = 0;     // open flags, renameat2 flags, AT_* flags, xattr flags, lock op
  mode_t mode = 0;
  int slot = 0;
  int64_t n = 0;  // a length, a size, an access mode
  int64_t off = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::string name, value;  // xattr name and value; data to write
  bool follow = true;       // stat/chown/xattr: follow a final symlink (l* variants when false)
  std::array<timespec, 2> times{};

  std::string Describe() const;
};

const char* OpName(Op op) {
  switch (op) {
    case Op::kOpen:
      return "open";
    case Op::kTmpfile:
      return "open(O_TMPFILE)";
    case Op::kClose:
      return "close";
    case Op::kRead:
      return "read";
    case Op::kWrite:
      return "write";
    case Op::kPwrite:
      return "pwrite";
    case Op::kFsync:
      return "fsync";
    case Op::kTruncate:
      return "truncate";
    case Op::kFtruncate:
      return "ftruncate";
    case Op::kMkdir:
      return "mkdir";
    case Op::kRmdir:
      return "rmdir";
    case Op::kUnlink:
      return "unlink";
    case Op::kRename:
      return "renameat2";
    case Op::kLink:
      return "linkat";
    case Op::kSymlink:
      return "symlink";
    case Op::kReadlink:
      return "readlink";
    case Op::kChmod:
      return "chmod";
    case Op::kFchmod:
      return "fchmod";
    case Op::kChown:
      return "chown";
    case Op::kLchown:
      return "lchown";
    case Op::kUtimens:
      return "utimensat";
    case Op::kSetxattr:
      return "setxattr";
    case Op::kGetxattr:
      return "getxattr";
    case Op::kRemovexattr:
      return "removexattr";
    case Op::kListxattr:
      return "listxattr";
    case Op::kSetAcl:
      return "setxattr(ACL)";
    case Op::kAccess:
      return "faccessat";
    case Op::kMknod:
      return "mknod";
    case Op::kStat:
      return "stat";
    case Op::kFlock:
      return "flock";
    case Op::kOfdLock:
      return "fcntl(F_OFD_SETLK)";
  }
  return "?";
}

std::string OpenFlagsText(int f) {
  std::string s = (f & O_ACCMODE) == O_RDONLY   ? "O_RDONLY"
                  : (f & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
                                                : "O_RDWR";
  for (auto [bit, name] : {std::pair{O_CREAT, "O_CREAT"},
                           {O_EXCL, "O_EXCL"},
                           {O_TRUNC, "O_TRUNC"},
                           {O_APPEND, "O_APPEND"},
                           {O_DIRECTORY, "O_DIRECTORY"},
                           {O_NOFOLLOW, "O_NOFOLLOW"}})
    if (f & bit) s += std::string("|") + name;
  return s;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string Call::Describe() const {
  const std::string op_name = OpName(op);
  const std::string fd = fmt::format("fd[{}]", slot);
  switch (op) {
    case Op::kOpen:
      return fmt::format("{} = open({}, {}|O_NONBLOCK, 0{:o})", fd, Quoted(a), OpenFlagsText(flags),
                         mode);
    case Op::kTmpfile:
      return fmt::format("{} = open({}, O_TMPFILE|{}, 0{:o})", fd, Quoted(a),
                         OpenFlagsText(flags & O_ACCMODE), mode);
    case Op::kClose:
    case Op::kFsync:
      return fmt::format("{}({})", op_name, fd);
    case Op::kRead:
      return fmt::format("read({}, {})", fd, n);
    case Op::kWrite:
      return fmt::format("write({}, <{} bytes>)", fd, value.size());
    case Op::kPwrite:
      return fmt::format("pwrite({}, <{} bytes>, {})", fd, value.size(), off);
    case Op::kTruncate:
      return fmt::format("truncate({}, {})", Quoted(a), n);
    case Op::kFtruncate:
      return fmt::format("ftruncate({}, {})", fd, n);
    case Op::kMkdir:
      return fmt::format("mkdir({}, 0{:o})", Quoted(a), mode);
    case Op::kRmdir:
    case Op::kUnlink:
    case Op::kReadlink:
      return fmt::format("{}({})", op_name, Quoted(a));
    case Op::kRename: {
      std::string f = flags == 0 ? "0" : "";
      if (flags & RENAME_NOREPLACE) f += "RENAME_NOREPLACE";
      if (flags & RENAME_EXCHANGE) f += std::string(f.empty() ? "" : "|") + "RENAME_EXCHANGE";
      return fmt::format("renameat2({}, {}, {})", Quoted(a), Quoted(b), f);
    }
    case Op::kLink:
      return fmt::format("linkat({}, {}, {})", Quoted(a), Quoted(b),
                         flags ? "AT_SYMLINK_FOLLOW" : "0");
    case Op::kSymlink:
      return fmt::format("symlink({}, {})", Quoted(b), Quoted(a));
    case Op::kChmod:
      return fmt::format("chmod({}, 0{:o})", Quoted(a), mode);
    case Op::kFchmod:
      return fmt::format("fchmod({}, 0{:o})", fd, mode);
    case Op::kChown:
    case Op::kLchown:
      return fmt::format("{}({}, {}, {})", op_name, Quoted(a), static_cast<int>(uid),
                         static_cast<int>(gid));
    case Op::kUtimens: {
      auto t = [](const timespec& ts) {
        return ts.tv_nsec == UTIME_NOW    ? std::string("UTIME_NOW")
               : ts.tv_nsec == UTIME_OMIT ? std::string("UTIME_OMIT")
                                          : fmt::format("{}.{:09}", ts.tv_sec, ts.tv_nsec);
      };
      return fmt::format("utimensat({}, [{}, {}], {})", Quoted(a), t(times[0]), t(times[1]),
                         flags ? "AT_SYMLINK_NOFOLLOW" : "0");
    }
    case Op::kSetxattr:
      return fmt::format("{}setxattr({}, {}, {}, {})", follow ? "" : "l", Quoted(a), name,
                         Quoted(value),
                         flags == XATTR_CREATE    ? "XATTR_CREATE"
                         : flags == XATTR_REPLACE ? "XATTR_REPLACE"
                                                  : "0");
    case Op::kGetxattr:
      return fmt::format("{}getxattr({}, {}, size {})", follow ? "" : "l", Quoted(a), name, n);
    case Op::kRemovexattr:
      return fmt::format("{}removexattr({}, {})", follow ? "" : "l", Quoted(a), name);
    case Op::kListxattr:
      return fmt::format("{}listxattr({})", follow ? "" : "l", Quoted(a));
    case Op::kSetAcl:
      return fmt::format("setxattr({}, {}, <ACL {}>)", Quoted(a), name, value.size());
    case Op::kAccess:
      return fmt::format("faccessat({}, {}, {})", Quoted(a), n,
                         flags == AT_EACCESS ? "AT_EACCESS"
                         : flags != 0        ? "AT_SYMLINK_NOFOLLOW"
                                             : "0");
    case Op::kMknod:
      return fmt::format("mknod({}, {}|0{:o})", Quoted(a), S_ISFIFO(mode) ? "S_IFIFO" : "S_IFREG",
                         mode & 07777);
    case Op::kStat:
      return fmt::format("{}stat({})", follow ? "" : "l", Quoted(a));
    case Op::kFlock:
      return fmt::format("flock({}, {})", fd,
                         flags == (LOCK_EX | LOCK_NB)   ? "LOCK_EX|LOCK_NB"
                         : flags == (LOCK_SH | LOCK_NB) ? "LOCK_SH|LOCK_NB"
                                                        : "LOCK_UN");
    case Op::kOfdLock:
      return fmt::format("fcntl({}, F_OFD_SETLK, {{{}, {}, {}}})", fd,
                         flags == F_WRLCK   ? "F_WRLCK"
                         : flags == F_RDLCK ? "F_RDLCK"
                                            : "F_UNLCK",
                         off, n);
  }
  return op_name;
}

// ---------------------------------------------------------------------------------------
// The generator: call i from (seed, i) alone.

const std::vector<std::string> kDirs = {"", "a", "a/c", "t", "g", "x", "n"};
const std::vector<std::string> kLeaves = {"f0", "f1", "d0", "l0", "f2", "d1", "p0"};
// Symlink targets stay inside the tree: relative, at most one "..", and the workspace is one
// level below the root that both sides have (root/w), so nothing resolves outside it.
const std::vector<std::string> kTargets = {"f0",    "f1",    "d0", "l0", "nowhere",
                                           "../f0", "d0/f1", ".",  "..", "p0"};
const std::vector<std::string> kXattrNames = {"user.a",
                                              "user.b",
                                              "trusted.t",
                                              "security.s",
                                              "system.posix_acl_access",
                                              "system.posix_acl_default"};

std::string Join(const std::string& dir, const std::string& leaf) {
  return dir.empty() ? leaf : dir + "/" + leaf;
}

// POSIX ACL xattr value (linux/posix_acl_xattr.h): version 2, then sorted entries.
std::string AclValue(const std::vector<std::array<uint32_t, 3>>& entries) {
  std::string v;
  auto put = [&v](uint32_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) v.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  };
  put(2, 4);
  for (const auto& [tag, perm, id] : entries) {
    put(tag, 2);
    put(perm, 2);
    put(id, 4);
  }
  return v;
}
constexpr uint32_t kAclUserObj = 1, kAclUser = 2, kAclGroupObj = 4, kAclGroup = 8, kAclMask = 0x10,
                   kAclOther = 0x20, kAclNoId = 0xffffffff;

class Generator {
 public:
  Generator(uint64_t seed, uint64_t index)
      : rng_(seed * 0x9E3779B97F4A7C15ull + index * 2654435761ull + 1) {}

  Call Next() {
    Call c;
    c.slot = Pick(kSlots);
    const int r = Pick(100);
    // Weights: namespace and attribute calls most, data calls often enough to keep fds busy.
    static const std::vector<std::pair<int, Op>> weights = {
        {14, Op::kOpen},     {1, Op::kTmpfile},  {1, Op::kClose},    {4, Op::kRead},
        {4, Op::kWrite},     {3, Op::kPwrite},   {1, Op::kFsync},    {3, Op::kTruncate},
        {2, Op::kFtruncate}, {5, Op::kMkdir},    {3, Op::kRmdir},    {4, Op::kUnlink},
        {6, Op::kRename},    {3, Op::kLink},     {4, Op::kSymlink},  {2, Op::kReadlink},
        {4, Op::kChmod},     {1, Op::kFchmod},   {2, Op::kChown},    {2, Op::kLchown},
        {3, Op::kUtimens},   {4, Op::kSetxattr}, {3, Op::kGetxattr}, {2, Op::kRemovexattr},
        {2, Op::kListxattr}, {2, Op::kSetAcl},   {3, Op::kAccess},   {2, Op::kMknod},
        {3, Op::kStat},      {1, Op::kFlock},    {1, Op::kOfdLock},
    };
    int total = 0;
    for (auto& [w, op] : weights) total += w;
    int x = r * total / 100;
    c.op = weights.back().second;
    for (auto& [w, op] : weights) {
      if (x < w) {
        c.op = op;
        break;
      }
      x -= w;
    }
    switch (c.op) {
      case Op::kOpen: {
        static const int acc[] = {O_RDONLY, O_WRONLY, O_RDWR};
        c.flags = acc[Pick(3)];
        if (Chance(50)) c.flags |= O_CREAT;
        if ((c.flags & O_CREAT) && Chance(25)) c.flags |= O_EXCL;
        if (Chance(15)) c.flags |= O_TRUNC;
        if (Chance(20)) c.flags |= O_APPEND;
        if (Chance(8)) c.flags |= O_DIRECTORY;
        if (Chance(15)) c.flags |= O_NOFOLLOW;
        c.a = FilePath();
        c.mode = Mode();
        break;
      }
      case Op::kTmpfile:
        c.a = Dir();
        c.flags = Chance(50) ? O_RDWR : O_WRONLY;
        c.mode = Mode();
        break;
      case Op::kRead:
        c.n = Pick(3) == 0 ? Pick(20000) : Pick(200);
        break;
      case Op::kWrite:
        c.value = Data(Pick(3) == 0 ? Pick(9000) : Pick(100));
        break;
      case Op::kPwrite:
        c.value = Data(Pick(3) == 0 ? Pick(9000) : Pick(100));
        c.off = Pick(3) == 0 ? Pick(20000) : Pick(50);
        break;
      case Op::kTruncate:
      case Op::kFtruncate:
        c.a = FilePath();
        c.n = Pick(4) == 0 ? Pick(20000) : Pick(50);
        if (Chance(3)) c.n = -1;
        break;
      case Op::kMkdir:
        c.a = Path();
        c.mode = Pick(2) ? 0755 : std::vector<mode_t>{0777, 0700, 01777, 02775, 0555, 0}[Pick(6)];
        break;
      case Op::kRmdir:
        c.a = Chance(70) ? Path() : Dir();
        break;
      case Op::kUnlink:
        c.a = Path();
        break;
      case Op::kRename:
        c.a = Chance(85) ? Path() : Dir();
        c.b = Chance(90) ? Path() : Dir();
        c.flags = std::vector<int>{0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE,
                                   RENAME_NOREPLACE | RENAME_EXCHANGE}[Pick(5)];
        if (c.flags == (RENAME_NOREPLACE | RENAME_EXCHANGE) && Chance(70)) c.flags = 0;
        break;
      case Op::kLink:
        c.a = Path();
        c.b = Path();
        c.flags = Chance(20) ? AT_SYMLINK_FOLLOW : 0;
        break;
      case Op::kSymlink:
        c.a = Path();
        c.b = kTargets[Pick(kTargets.size())];
        break;
      case Op::kReadlink:
        c.a = Path();
        break;
      case Op::kChmod:
      case Op::kFchmod:
        c.a = Path();
        c.mode = std::vector<mode_t>{0644,  0600,  0755,  0777, 04755, 02755,
                                     06777, 01777, 02070, 0,    0444,  0711}[Pick(12)];
        break;
      case Op::kChown:
      case Op::kLchown: {
        c.a = Path();
        static const std::vector<uint32_t> ids = {static_cast<uint32_t>(-1), 0, kNobody, kTeam,
                                                  kTeamUser};
        c.uid = Chance(40) ? static_cast<uid_t>(-1) : ids[Pick(ids.size())];
        c.gid = ids[Pick(ids.size())];
        break;
      }
      case Op::kUtimens:
        c.a = Path();
        for (auto& t : c.times) {
          const int k = Pick(4);
          t.tv_sec = 1000000000 + Pick(100000);
          t.tv_nsec = k == 0 ? UTIME_NOW : k == 1 ? UTIME_OMIT : Pick(1000000000);
        }
        c.flags = Chance(30) ? AT_SYMLINK_NOFOLLOW : 0;
        break;
      case Op::kSetxattr:
        c.a = Path();
        c.follow = Chance(60);
        c.name = kXattrNames[Pick(4)];  // the ACL names go through kSetAcl
        c.value = Data(Pick(40));
        c.flags = std::vector<int>{0, 0, XATTR_CREATE, XATTR_REPLACE}[Pick(4)];
        break;
      case Op::kGetxattr:
        c.a = Path();
        c.follow = Chance(60);
        c.name = kXattrNames[Pick(kXattrNames.size())];
        c.n = Chance(30) ? 0 : Chance(10) ? 2 : 4096;
        break;
      case Op::kRemovexattr:
        c.a = Path();
        c.follow = Chance(60);
        c.name = kXattrNames[Pick(kXattrNames.size())];
        break;
      case Op::kListxattr:
        c.a = Path();
        c.follow = Chance(60);
        break;
      case Op::kSetAcl: {
        c.a = Chance(70) ? Path() : Dir();
        c.name = Chance(70) ? "system.posix_acl_access" : "system.posix_acl_default";
        std::vector<std::array<uint32_t, 3>> e = {{kAclUserObj, Perm(), kAclNoId}};
        const bool user = Chance(60), group = Chance(40);
        if (user) e.push_back({kAclUser, Perm(), kNobody});
        e.push_back({kAclGroupObj, Perm(), kAclNoId});
        if (group) e.push_back({kAclGroup, Perm(), kTeam});
        if (user || group) e.push_back({kAclMask, Perm(), kAclNoId});
        e.push_back({kAclOther, Perm(), kAclNoId});
        c.value = AclValue(e);
        break;
      }
      case Op::kAccess:
        c.a = Path();
        c.n = std::vector<int>{F_OK, R_OK, W_OK, X_OK, R_OK | W_OK, R_OK | X_OK}[Pick(6)];
        c.flags = std::vector<int>{0, 0, AT_EACCESS, AT_SYMLINK_NOFOLLOW}[Pick(4)];
        break;
      case Op::kMknod:
        c.a = Path();
        c.mode = (Chance(80) ? S_IFIFO : S_IFREG) | (Chance(50) ? 0644 : 0666);
        break;
      case Op::kStat:
        c.a = Path();
        c.follow = Chance(50);
        break;
      case Op::kFlock:
        c.flags = std::vector<int>{LOCK_EX | LOCK_NB, LOCK_SH | LOCK_NB, LOCK_UN}[Pick(3)];
        break;
      case Op::kOfdLock:
        c.flags = std::vector<int>{F_WRLCK, F_RDLCK, F_UNLCK}[Pick(3)];
        c.off = Pick(10);
        c.n = Pick(10);
        break;
      case Op::kClose:
      case Op::kFsync:
        break;
    }
    return c;
  }

 private:
  int Pick(size_t n) { return static_cast<int>(rng_() % n); }
  bool Chance(int percent) { return Pick(100) < percent; }
  uint32_t Perm() { return static_cast<uint32_t>(Pick(8)); }
  mode_t Mode() {
    return std::vector<mode_t>{0644, 0600, 0666, 0755, 0777, 06755, 0444, 0, 02660}[Pick(9)];
  }
  std::string Dir() { return kDirs[Pick(kDirs.size())]; }
  // Mostly names that exist in a fresh tree (f0, f1, d0, l0), then others, then paths through
  // a subdirectory, a symlink or a file.
  std::string Leaf() { return kLeaves[Pick(Chance(60) ? 4 : kLeaves.size())]; }
  std::string Path() {
    const std::string dir = Dir();
    const int k = Pick(20);
    if (k == 0) return Join(Join(dir, "d0"), Leaf());
    if (k == 1) return Join(Join(dir, "l0"), Leaf());  // through a symlink
    if (k == 2) return Join(Join(dir, "f0"), "x");     // through a file: ENOTDIR
    return Join(dir, Leaf());
  }
  std::string FilePath() {
    static const std::vector<std::string> files = {"f0", "f1", "f2", "l0"};
    return Chance(70) ? Join(Dir(), files[Pick(files.size())]) : Path();
  }
  std::string Data(size_t n) {
    std::string s(n, '\0');
    for (char& ch : s) ch = static_cast<char>('a' + Pick(26));
    return s;
  }

  std::mt19937_64 rng_;
};

// ---------------------------------------------------------------------------------------
// Running a call on one side, and what it gave.

bool UsesDescriptor(Op op) {
  switch (op) {
    case Op::kClose:
    case Op::kRead:
    case Op::kWrite:
    case Op::kPwrite:
    case Op::kFsync:
    case Op::kFtruncate:
    case Op::kFchmod:
    case Op::kFlock:
    case Op::kOfdLock:
      return true;
    default:
      return false;
  }
}

struct Side {
  std::string root;  // the native directory or the mount point
  std::array<int, kSlots> fds;
  Side(std::string r) : root(std::move(r)) { fds.fill(-1); }
  std::string Path(const std::string& rel) const {
    return rel.empty() ? root + "/w" : root + "/w/" + rel;
  }
};

std::string StatText(const struct stat& st, bool times) {
  std::string s = fmt::format("{} 0{:o} uid {} gid {} size {} nlink {}",
                              S_ISREG(st.st_mode)    ? "file"
                              : S_ISDIR(st.st_mode)  ? "dir"
                              : S_ISLNK(st.st_mode)  ? "symlink"
                              : S_ISFIFO(st.st_mode) ? "fifo"
                                                     : "other",
                              st.st_mode & 07777, st.st_uid, st.st_gid, st.st_size, st.st_nlink);
  if (times)
    s += fmt::format(" atime {}.{:09} mtime {}.{:09}", st.st_atim.tv_sec, st.st_atim.tv_nsec,
                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  return s;
}

std::string PathStat(const std::string& p, bool follow, bool times = false) {
  struct stat st;
  const int rc = follow ? ::stat(p.c_str(), &st) : ::lstat(p.c_str(), &st);
  return rc == 0 ? StatText(st, times) : fmt::format("error {}", strerrorname_np(errno));
}

struct Outcome {
  long ret = 0;
  int err = 0;
  std::string data;                // what the call read
  std::vector<std::string> stats;  // the touched paths and descriptors, afterwards
  bool operator==(const Outcome& o) const {
    return ret == o.ret && err == o.err && data == o.data && stats == o.stats;
  }
  bool failed() const { return ret < 0; }
  std::string Describe() const {
    std::string s = ret < 0 ? fmt::format("-1 {}", strerrorname_np(err)) : std::to_string(ret);
    if (!data.empty()) {
      std::string shown = data.size() > 60 ? data.substr(0, 60) + "..." : data;
      for (char& ch : shown)
        if (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) ch = '.';
      s += fmt::format(" data[{}] \"{}\"", data.size(), shown);
    }
    for (const std::string& st : stats) s += "; " + st;
    return s;
  }
};

std::string SortedNames(const char* list, ssize_t n) {
  std::vector<std::string> names;
  for (ssize_t i = 0; i < n;) {
    std::string name(list + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& name : names) out += name + " ";
  return out;
}

Outcome Execute(const Call& c, Side& side) {
  Outcome o;
  const std::string a = side.Path(c.a), b = side.Path(c.b);
  int& fd = side.fds[static_cast<size_t>(c.slot)];
  errno = 0;
  auto done = [&](long ret) {
    o.ret = ret < 0 ? -1 : ret;
    o.err = ret < 0 ? errno : 0;
  };
  auto stat_fd = [&] {
    struct stat st;
    if (fd >= 0 && ::fstat(fd, &st) == 0) o.stats.push_back("fd: " + StatText(st, false));
  };
  auto stat_a = [&](bool follow = false) { o.stats.push_back("a: " + PathStat(a, follow)); };
  auto stat_b = [&] { o.stats.push_back("b: " + PathStat(b, false)); };
  switch (c.op) {
    case Op::kOpen:
    case Op::kTmpfile: {
      // A failed open leaves the slot's descriptor as it was, so that reads and writes
      // have a descriptor to act on more often than not.
      const int flags = c.op == Op::kTmpfile ? (O_TMPFILE | c.flags) : c.flags;
      const int opened = ::open(a.c_str(), flags | O_NONBLOCK | O_CLOEXEC, c.mode);
      done(opened < 0 ? -1 : 0);
      if (opened >= 0) {
        if (fd >= 0) ::close(fd);
        fd = opened;
      }
      stat_a();
      stat_fd();
      break;
    }
    case Op::kClose:
      done(::close(fd));
      fd = -1;
      break;
    case Op::kRead: {
      std::string buf(static_cast<size_t>(c.n), '\0');
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      done(n);
      if (n > 0) o.data = buf.substr(0, static_cast<size_t>(n));
      break;
    }
    case Op::kWrite:
      done(::write(fd, c.value.data(), c.value.size()));
      stat_fd();
      break;
    case Op::kPwrite:
      done(::pwrite(fd, c.value.data(), c.value.size(), c.off));
      stat_fd();
      break;
    case Op::kFsync:
      done(::fsync(fd));
      break;
    case Op::kTruncate:
      done(::truncate(a.c_str(), c.n));
      stat_a(true);
      break;
    case Op::kFtruncate:
      done(::ftruncate(fd, c.n));
      stat_fd();
      break;
    case Op::kMkdir:
      done(::mkdir(a.c_str(), c.mode));
      stat_a();
      break;
    case Op::kRmdir:
      done(::rmdir(a.c_str()));
      stat_a();
      break;
    case Op::kUnlink:
      done(::unlink(a.c_str()));
      stat_a();
      break;
    case Op::kRename:
      done(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), static_cast<unsigned>(c.flags)));
      stat_a();
      stat_b();
      break;
    case Op::kLink:
      done(::linkat(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), c.flags));
      stat_a();
      stat_b();
      break;
    case Op::kSymlink:
      done(::symlink(c.b.c_str(), a.c_str()));
      stat_a();
      break;
    case Op::kReadlink: {
      char buf[256];
      const ssize_t n = ::readlink(a.c_str(), buf, sizeof buf);
      done(n);
      if (n > 0) o.data.assign(buf, static_cast<size_t>(n));
      break;
    }
    case Op::kChmod:
      done(::chmod(a.c_str(), c.mode));
      stat_a(true);
      break;
    case Op::kFchmod:
      done(::fchmod(fd, c.mode));
      stat_fd();
      break;
    case Op::kChown:
    case Op::kLchown: {
      const bool follow = c.op == Op::kChown;
      done(follow ? ::chown(a.c_str(), c.uid, c.gid) : ::lchown(a.c_str(), c.uid, c.gid));
      stat_a(follow);
      break;
    }
    case Op::kUtimens: {
      done(::utimensat(AT_FDCWD, a.c_str(), c.times.data(), c.flags));
      // Times are compared only when both were set explicitly (NOW differs between sides).
      const bool explicit_times =
          o.ret == 0 && c.times[0].tv_nsec < 1000000000 && c.times[1].tv_nsec < 1000000000;
      o.stats.push_back("a: " + PathStat(a, c.flags == 0, explicit_times));
      break;
    }
    case Op::kSetxattr:
    case Op::kSetAcl:
      done(c.follow
               ? ::setxattr(a.c_str(), c.name.c_str(), c.value.data(), c.value.size(), c.flags)
               : ::lsetxattr(a.c_str(), c.name.c_str(), c.value.data(), c.value.size(), c.flags));
      stat_a(c.follow);
      break;
    case Op::kGetxattr: {
      std::string buf(static_cast<size_t>(c.n), '\0');
      const ssize_t n = c.follow ? ::getxattr(a.c_str(), c.name.c_str(), buf.data(), buf.size())
                                 : ::lgetxattr(a.c_str(), c.name.c_str(), buf.data(), buf.size());
      done(n);
      if (n > 0 && c.n > 0) o.data = buf.substr(0, static_cast<size_t>(n));
      stat_a(c.follow);
      break;
    }
    case Op::kRemovexattr:
      done(c.follow ? ::removexattr(a.c_str(), c.name.c_str())
                    : ::lremovexattr(a.c_str(), c.name.c_str()));
      stat_a(c.follow);
      break;
    case Op::kListxattr: {
      char buf[4096];
      const ssize_t n = c.follow ? ::listxattr(a.c_str(), buf, sizeof buf)
                                 : ::llistxattr(a.c_str(), buf, sizeof buf);
      done(n);
      if (n > 0) o.data = SortedNames(buf, n);
      stat_a(c.follow);
      break;
    }
    case Op::kAccess:
      done(::faccessat(AT_FDCWD, a.c_str(), static_cast<int>(c.n), c.flags));
      break;
    case Op::kMknod:
      done(::mknod(a.c_str(), c.mode, 0));
      stat_a();
      break;
    case Op::kStat: {
      struct stat st;
      done(c.follow ? ::stat(a.c_str(), &st) : ::lstat(a.c_str(), &st));
      if (o.ret == 0) o.stats.push_back("a: " + StatText(st, false));
      break;
    }
    case Op::kFlock:
      done(::flock(fd, c.flags));
      break;
    case Op::kOfdLock: {
      struct flock lk {};
      lk.l_type = static_cast<short>(c.flags);
      lk.l_whence = SEEK_SET;
      lk.l_start = c.off;
      lk.l_len = c.n;
      done(::fcntl(fd, F_OFD_SETLK, &lk));
      break;
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Known differences: mismatches dtkfs has today. Each names its reason; remove it when fixed.

struct KnownDifference {
  const char* name;
  const char* reason;
  std::function<bool(const Call&, const Outcome& native, const Outcome& mount)> matches;
};

bool IsSymlinkCall(const Call& c, const Outcome& native) {
  return !c.follow && !native.stats.empty() && native.stats[0].rfind("a: symlink", 0) == 0;
}

const std::vector<KnownDifference>& KnownDifferences() {
  static const std::vector<KnownDifference> known = {
      {"chown -1 -1 of a setgid file",
       "chown(f, -1, -1) by a non-owner of a file with S_ISGID but not S_IXGRP: natively "
       "EPERM (the kernel asks to clear S_ISGID, a mode change only the owner may make); "
       "through the mount it succeeds and changes nothing",
       [](const Call& c, const Outcome& n, const Outcome& m) {
         return (c.op == Op::kChown || c.op == Op::kLchown) && c.uid == static_cast<uid_t>(-1) &&
                c.gid == static_cast<gid_t>(-1) && n.err == EPERM && m.ret == 0;
       }},
  };
  return known;
}

// ---------------------------------------------------------------------------------------
// The trees: the starting state, its reset, and a comparable picture of a whole tree.

void SetAcl(const std::string& p, const char* name,
            const std::vector<std::array<uint32_t, 3>>& entries) {
  const std::string v = AclValue(entries);
  REQUIRE(::setxattr(p.c_str(), name, v.data(), v.size(), 0) == 0);
}

void MakeFile(const std::string& p, const std::string& data, mode_t mode, uid_t uid, gid_t gid) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  INFO(p);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  REQUIRE(::close(fd) == 0);
  REQUIRE(::chown(p.c_str(), uid, gid) == 0);
  REQUIRE(::chmod(p.c_str(), mode) == 0);  // after chown, which clears setuid
}

void MakeDir(const std::string& p, mode_t mode, uid_t uid, gid_t gid) {
  INFO(p);
  REQUIRE(::mkdir(p.c_str(), 0700) == 0);
  REQUIRE(::chown(p.c_str(), uid, gid) == 0);
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

// Empties root and builds the workspace root/w (as root, the same calls on both sides).
void BuildTree(const std::string& root) {
  for (const auto& e : fsys::directory_iterator(root)) fsys::remove_all(e.path());
  const std::string w = root + "/w";
  MakeDir(w, 0777, 0, 0);
  MakeDir(w + "/a", 0755, 0, 0);
  MakeDir(w + "/a/c", 0777, kNobody, kNobody);
  MakeDir(w + "/t", 01777, 0, 0);
  MakeDir(w + "/g", 02770, 0, kTeam);
  MakeDir(w + "/x", 0750, 0, 0);
  SetAcl(w + "/x", "system.posix_acl_access",
         {{kAclUserObj, 7, kAclNoId},
          {kAclUser, 7, kNobody},
          {kAclGroupObj, 5, kAclNoId},
          {kAclMask, 7, kAclNoId},
          {kAclOther, 0, kAclNoId}});
  SetAcl(w + "/x", "system.posix_acl_default",
         {{kAclUserObj, 7, kAclNoId},
          {kAclUser, 6, kNobody},
          {kAclGroupObj, 5, kAclNoId},
          {kAclGroup, 7, kTeam},
          {kAclMask, 7, kAclNoId},
          {kAclOther, 0, kAclNoId}});
  MakeDir(w + "/n", 0777, 0, 0);
  SetAcl(w + "/n", "system.posix_acl_access",
         {{kAclUserObj, 7, kAclNoId},
          {kAclUser, 0, kNobody},
          {kAclGroupObj, 7, kAclNoId},
          {kAclMask, 7, kAclNoId},
          {kAclOther, 7, kAclNoId}});

  MakeFile(w + "/f0", "hello world\n", 0644, 0, 0);
  REQUIRE(::setxattr((w + "/f0").c_str(), "user.a", "one", 3, 0) == 0);
  MakeFile(w + "/f1", "nobody's data", 0666, kNobody, kNobody);
  MakeFile(w + "/f2", "#!/bin/true\n", 04755, kNobody, kNobody);
  REQUIRE(::symlink("f0", (w + "/l0").c_str()) == 0);
  MakeDir(w + "/d0", 0755, kNobody, kNobody);
  MakeFile(w + "/d0/f1", "below", 0644, kNobody, kNobody);
  REQUIRE(::mkfifo((w + "/p0").c_str(), 0666) == 0);
  MakeFile(w + "/a/f0", "root's", 0644, 0, 0);
  REQUIRE(::symlink("../f1", (w + "/a/l0").c_str()) == 0);
  MakeFile(w + "/a/c/f0", "c", 0644, kNobody, kNobody);
  MakeFile(w + "/a/c/f1", "setgid", 02755, kNobody, kTeam);
  MakeFile(w + "/t/f0", "sticky", 0666, 0, 0);
  MakeFile(w + "/t/f1", "mine", 0644, kNobody, kNobody);
  MakeDir(w + "/t/d0", 0777, kTeamUser, kTeam);
  MakeFile(w + "/g/f0", "team", 0660, 0, kTeam);
  MakeFile(w + "/g/f1", "team setgid", 02770, kTeamUser, kTeam);
  REQUIRE(::setxattr((w + "/g/f1").c_str(), "user.b", "two", 3, 0) == 0);
  MakeFile(w + "/x/f0", "granted", 0600, 0, 0);
  SetAcl(w + "/x/f0", "system.posix_acl_access",
         {{kAclUserObj, 6, kAclNoId},
          {kAclUser, 4, kNobody},
          {kAclGroupObj, 0, kAclNoId},
          {kAclMask, 4, kAclNoId},
          {kAclOther, 0, kAclNoId}});
  REQUIRE(::symlink("f0", (w + "/x/l0").c_str()) == 0);
  MakeFile(w + "/n/f0", "denied", 0666, 0, 0);
  SetAcl(w + "/n/f0", "system.posix_acl_access",
         {{kAclUserObj, 6, kAclNoId},
          {kAclUser, 0, kNobody},
          {kAclGroupObj, 6, kAclNoId},
          {kAclMask, 6, kAclNoId},
          {kAclOther, 6, kAclNoId}});
  // The rest of every directory: a file of root's, one of nobody's, a directory and a link,
  // so that most calls find something to act on.
  for (const std::string& dir : kDirs) {
    const std::string d = dir.empty() ? w : w + "/" + dir;
    if (!fsys::exists(d + "/f0")) MakeFile(d + "/f0", "root's " + dir, 0644, 0, 0);
    if (!fsys::exists(d + "/f1")) MakeFile(d + "/f1", "nobody's " + dir, 0664, kNobody, kNobody);
    if (!fsys::exists(d + "/d0")) MakeDir(d + "/d0", 0775, kNobody, kTeam);
    if (!fsys::is_symlink(d + "/l0")) REQUIRE(::symlink("f1", (d + "/l0").c_str()) == 0);
  }
}

// Every entry below root (not following symlinks): its stat fields, a symlink's target, and
// (with_xattrs) every xattr's name and value, ACLs included.
std::map<std::string, std::string> Picture(const std::string& root, bool with_xattrs) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(root, ec); !ec && it != fsys::end(it);
       it.increment(ec)) {
    const std::string p = it->path().string();
    std::string s = PathStat(p, false);
    if (it->is_symlink()) s += " -> " + fsys::read_symlink(it->path()).string();
    if (with_xattrs) {
      char names[4096];
      const ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
      for (ssize_t i = 0; i < n;) {
        const std::string name(names + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        char value[4096];
        const ssize_t v = ::lgetxattr(p.c_str(), name.c_str(), value, sizeof value);
        s += " " + name + "=" +
             (v < 0 ? "?" : fmt::format("{:02x}", fmt::join(value, value + v, "")));
      }
    }
    out[p.substr(root.size())] = s;
  }
  if (ec) out["<walk>"] = ec.message();
  return out;
}

std::string PictureDifferences(const std::map<std::string, std::string>& native,
                               const std::map<std::string, std::string>& other) {
  std::string out;
  for (const auto& [p, s] : native) {
    auto it = other.find(p);
    if (it == other.end())
      out += fmt::format("  {}: native {}, missing on the other side\n", p, s);
    else if (it->second != s)
      out += fmt::format("  {}: native {}\n  {}  other  {}\n", p, s, std::string(p.size(), ' '),
                         it->second);
  }
  for (const auto& [p, s] : other)
    if (native.count(p) == 0) out += fmt::format("  {}: only on the other side: {}\n", p, s);
  return out;
}

// ---------------------------------------------------------------------------------------
// A run of calls in a forked child acting as one identity.

struct Mismatch {
  uint64_t index;
  std::string known;  // the KnownDifference's name, or "" for a failure
  std::string text;
};

struct RunResult {
  uint64_t next = 0;     // the first call not run
  bool stopped = false;  // at a mismatch that may have left the trees apart
  std::vector<Mismatch> mismatches;
  std::map<std::string, int> outcomes;  // "<op> <ok or errno name>": calls alike on both sides
  std::string error;                    // the child failed to run
};

std::string Escape(const std::string& s) {
  std::string out;
  for (char ch : s)
    out += ch == '\n' ? std::string("\\n") : ch == '\\' ? std::string("\\\\") : std::string(1, ch);
  return out;
}
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[i + 1] == 'n' ? '\n' : s[i + 1];
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// In the child: runs calls [from, to) until a mismatch that may have left the trees apart.
// Writes "M\t<index>\t<known>\t<text>" per mismatch and "E\t<next>\t<stopped>" at the end.
void ChildRun(int out, const Identity& id, uint64_t seed, uint64_t from, uint64_t to,
              const std::string& native_root, const std::string& mount_root) {
  auto say = [out](const std::string& line) {
    const std::string l = line + "\n";
    (void)!::write(out, l.data(), l.size());
  };
  if (::setgroups(id.groups.size(), id.groups.data()) != 0 || ::setgid(id.gid) != 0 ||
      ::setuid(id.uid) != 0) {
    say(fmt::format("X\tcannot become {}: {}", id.name, std::strerror(errno)));
    ::_exit(1);
  }
  ::umask(id.umask);
  Side native(native_root), mount(mount_root);
  uint64_t i = from;
  auto tally = [&](const Call& call, const Outcome& n) {
    say(fmt::format("C\t{} {}", OpName(call.op), n.failed() ? strerrorname_np(n.err) : "ok"));
  };
  for (; i < to; ++i) {
    Call call = Generator(seed, i).Next();
    // A call on a descriptor takes its slot's, or else the first open one: both sides hold
    // the same slots open (every open's outcome was compared), so they pick alike.
    if (UsesDescriptor(call.op) && native.fds[static_cast<size_t>(call.slot)] < 0)
      for (int k = 0; k < kSlots; ++k)
        if (native.fds[static_cast<size_t>(k)] >= 0) {
          call.slot = k;
          break;
        }
    const Outcome n = Execute(call, native);
    const Outcome m = Execute(call, mount);
    if (n == m) {
      tally(call, n);
      continue;
    }
    std::string known;
    for (const KnownDifference& k : KnownDifferences())
      if (k.matches(call, n, m)) {
        known = k.name;
        break;
      }
    say(fmt::format(
        "M\t{}\t{}\t{}", i, known,
        Escape(fmt::format("seed {} call #{} as {}: {}\n  native: {}\n  mount:  {}", seed, i,
                           id.name, call.Describe(), n.Describe(), m.Describe()))));
    // Both failed: neither tree changed, go on. Otherwise stop: the trees may differ now.
    if (!(n.failed() && m.failed())) {
      say(fmt::format("E\t{}\t1", i + 1));
      ::_exit(0);
    }
  }
  say(fmt::format("E\t{}\t0", i));
  ::_exit(0);
}

RunResult RunAs(const Identity& id, uint64_t seed, uint64_t from, uint64_t to,
                const std::string& native_root, const std::string& mount_root) {
  RunResult r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    r.error = "pipe failed";
    return r;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    // A write to a fifo nobody reads answers EPIPE on both sides (compared) instead of
    // killing the child (seed 3235975744).
    ::signal(SIGPIPE, SIG_IGN);
    ChildRun(p[1], id, seed, from, to, native_root, mount_root);
  }
  ::close(p[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  bool ended = false;
  size_t at = 0;
  for (size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    const std::string line = text.substr(at, nl - at);
    std::vector<std::string> f;  // at most 4 fields: the text may hold anything but '\n'
    size_t s = 0;
    for (size_t t; f.size() < 3 && (t = line.find('\t', s)) != std::string::npos; s = t + 1)
      f.push_back(line.substr(s, t - s));
    f.push_back(line.substr(s));
    if (f[0] == "C" && f.size() == 2)
      ++r.outcomes[f[1]];
    else if (f[0] == "M" && f.size() == 4)
      r.mismatches.push_back({std::stoull(f[1]), f[2], Unescape(f[3])});
    else if (f[0] == "E" && f.size() == 3) {
      r.next = std::stoull(f[1]);
      r.stopped = f[2] == "1";
      ended = true;
    } else
      r.error += line + "\n";
  }
  if (!ended || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    r.error += fmt::format("the child running calls {}..{} as {} did not finish (status {:#x})",
                           from, to, id.name, status);
  return r;
}

uint64_t CallsPerRun() {
  const char* v = std::getenv("DTKFS_DIFF_CALLS");
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : 4000;
}

}  // namespace

TEST_CASE("a seeded sequence of system calls does the same natively and through the mount",
          "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("the sequence runs as other users and chowns");
  const uint64_t seed = TestSeed("differential");
  const std::string top = fsys::path(fx.src()).parent_path();
  const std::string native = top + "/native";
  fsys::create_directories(native);
  REQUIRE(::chmod(top.c_str(), 0755) == 0);
  for (const std::string& d : {native, fx.src()}) REQUIRE(::chmod(d.c_str(), 0755) == 0);
  {
    auto m = fx.Mount({"-o", "allow_other"});
    INFO(m.err);
    REQUIRE(m.status == 0);
  }
  int rebuilds = 0;
  auto rebuild = [&] {
    ++rebuilds;
    BuildTree(native);
    BuildTree(fx.mnt());
  };
  rebuild();

  constexpr uint64_t kChunk = 100;        // calls per identity before the next takes over
  constexpr uint64_t kResetEvery = 1000;  // a fresh tree now and then, for variety
  const uint64_t total = CallsPerRun();
  std::vector<std::string> failures;
  std::map<std::string, int> known_seen, outcomes;
  const auto started = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < total;) {
    if (i > 0 && i % kResetEvery == 0) rebuild();
    const Identity& id = Identities()[(i / kChunk) % Identities().size()];
    const uint64_t end = std::min(total, (i / kChunk + 1) * kChunk);
    RunResult r = RunAs(id, seed, i, end, native, fx.mnt());
    INFO("seed " << seed);
    REQUIRE(r.error == "");
    for (const auto& [what, count] : r.outcomes) outcomes[what] += count;
    for (const Mismatch& mm : r.mismatches) {
      if (mm.known.empty())
        failures.push_back(mm.text);
      else
        ++known_seen[mm.known];
    }
    bool rebuild_now = r.stopped;
    if (!r.stopped) {
      // The trees as a whole: the source (xattrs and ACLs too), and the mount.
      const std::string to_source =
          PictureDifferences(Picture(native, true), Picture(fx.src(), true));
      const std::string to_mount =
          PictureDifferences(Picture(native, false), Picture(fx.mnt(), false));
      for (auto [what, d] : {std::pair{"source", to_source}, std::pair{"mount", to_mount}})
        if (!d.empty()) {
          failures.push_back(
              fmt::format("seed {}: after calls {}..{} as {}, native and {} differ:\n{}", seed, i,
                          r.next - 1, id.name, what, d));
          rebuild_now = true;
        }
    }
    if (rebuild_now) rebuild();
    i = r.next;
    if (failures.size() > 20) break;
  }
  // What the run covered: how many calls succeeded and failed alike, per operation with
  // DTKFS_DIFF_VERBOSE=1, so a generator that only produces ENOENT shows.
  int ok = 0, failed = 0;
  for (const auto& [what, count] : outcomes)
    (what.size() > 3 && what.substr(what.size() - 3) == " ok" ? ok : failed) += count;
  std::string known_text;
  for (const auto& [name, count] : known_seen) known_text += fmt::format(", {} '{}'", count, name);
  fmt::print(stderr,
             "differential: {} calls alike ({} succeeded, {} failed){}; {} rebuilds; {:.1f} s\n",
             ok + failed, ok, failed, known_text, rebuilds,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (const char* v = std::getenv("DTKFS_DIFF_VERBOSE"); v != nullptr && std::string(v) == "1")
    for (const auto& [what, count] : outcomes) fmt::print(stderr, "  {:6} {}\n", count, what);
  INFO("seed " << seed << " (repeat with DTKFS_TEST_SEED=" << seed << ")");
  for (const std::string& f : failures) FAIL_CHECK(f);
  CHECK(failures.empty());
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

namespace {

// Whether another process sees a lock on `held` (taken by a child: POSIX locks are per
// process) when it asks about `probe`, the same file by another path: F_GETLK for a POSIX
// record lock, flock(LOCK_NB) for a whole-file lock.
bool LockSeen(const std::string& held, const std::string& probe, bool posix) {
  int ready[2], done[2];
  REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(done, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    ::close(done[1]);  // the parent's end alone: its close is the signal
    const int fd = ::open(held.c_str(), O_RDWR | O_CLOEXEC);
    struct flock lk {};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    const bool locked = fd >= 0 && (posix ? ::fcntl(fd, F_SETLK, &lk) : ::flock(fd, LOCK_EX)) == 0;
    (void)!::write(ready[1], locked ? "1" : "0", 1);
    char c;
    (void)!::read(done[0], &c, 1);  // until the parent has looked
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(done[0]);
  // No REQUIRE until the child is told to go: it would wait for the test process's end.
  char c = '0';
  const bool locked = ::read(ready[0], &c, 1) == 1 && c == '1';
  const int fd = ::open(probe.c_str(), O_RDWR | O_CLOEXEC);
  bool asked = false, seen = false;
  if (locked && fd >= 0) {
    if (posix) {
      struct flock lk {};
      lk.l_type = F_WRLCK;
      lk.l_whence = SEEK_SET;
      asked = ::fcntl(fd, F_GETLK, &lk) == 0;
      seen = lk.l_type != F_UNLCK;
    } else {
      asked = true;
      seen = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    }
  }
  if (fd >= 0) ::close(fd);
  ::close(done[1]);
  ::close(ready[0]);
  int status;
  ::waitpid(pid, &status, 0);
  INFO("held " << held << ", asked about " << probe);
  REQUIRE(locked);
  REQUIRE(fd >= 0);
  REQUIRE(asked);
  return seen;
}

}  // namespace

TEST_CASE("flock between the mount and the source is one lock, as natively", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  WriteFileBytes(fx.src() + "/f", "locked");
  REQUIRE(fx.Mount().status == 0);
  CHECK(LockSeen(fx.mnt() + "/f", fx.src() + "/f", false));
  CHECK(LockSeen(fx.src() + "/f", fx.mnt() + "/f", false));
  CHECK(LockSeen(fx.mnt() + "/f", fx.mnt() + "/f", false));
  REQUIRE(fx.Unmount().status == 0);
}
