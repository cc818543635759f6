// Resolution never escapes the source (issue 12): while one thread, beside the mount, keeps
// swapping a directory of the source for a symlink that points out of it (to a sentinel
// directory outside the source, then to "/"), two others chmod, chown, utimens, setxattr,
// truncate and open (creating, truncating) through the mount on paths inside that
// directory. Afterwards nothing outside the source has changed: the sentinel's entries keep
// their modes, owners, sizes, times (ctime too: even a no-op chmod would show) and xattrs,
// "/" and a few directories below it keep theirs, and no probe name appeared in "/".
//
// The workers resolve their paths with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS) from the mount's root, and act on the descriptor (or, for the
// directory itself, by calls that do not follow a final symlink), so that nothing they do
// may legitimately leave the mount: whatever lands outside is dtkfs's doing. The daemon runs
// with the smallest descriptor budget, so it keeps reopening evicted descriptors by handle
// and by name while the names change under it.
//
// When the symlink points to "/", a call on the directory itself uses "/"'s own mode and
// owner (an escape would then show only in "/"'s ctime, not break the machine), and the
// names below it do not exist in "/".
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/test_seed.h"

namespace fsys = std::filesystem;
using namespace dtkfs::testing;

namespace {

constexpr uid_t kNobody = 65534;
constexpr const char* kFile = "dtkfs-race-f";
constexpr const char* kSub = "dtkfs-race-sub";
constexpr const char* kSubFile = "dtkfs-race-sub/dtkfs-race-g";
constexpr const char* kNew = "dtkfs-race-new";

int OpenBeneath(int dirfd, const std::string& rel, int flags, mode_t mode = 0) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
}

// Everything about a path that a change through an escaped call would show.
std::string StatOf(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return "missing";
  std::string s =
      fmt::format("mode 0{:o} uid {} gid {} size {} mtime {}.{:09} ctime {}.{:09}", st.st_mode,
                  st.st_uid, st.st_gid, S_ISDIR(st.st_mode) ? 0 : st.st_size, st.st_mtim.tv_sec,
                  st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  char names[4096];
  const ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
  for (ssize_t i = 0; i < n;) {
    const std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    char v[256];
    const ssize_t len = ::lgetxattr(p.c_str(), name.c_str(), v, sizeof v);
    s += " " + name + "=" + (len < 0 ? "?" : std::string(v, static_cast<size_t>(len)));
  }
  return s;
}

// Every entry at or below root (not following symlinks), as StatOf.
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out{{"", StatOf(root)}};
  for (const auto& e : fsys::recursive_directory_iterator(root))
    out[e.path().string().substr(root.size())] = StatOf(e.path().string());
  return out;
}

std::string Changes(const std::map<std::string, std::string>& before,
                    const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [p, s] : before) {
    auto it = after.find(p);
    if (it == after.end())
      out += fmt::format("  {}: gone (was {})\n", p, s);
    else if (it->second != s)
      out +=
          fmt::format("  {}: was {}\n  {}  now {}\n", p, s, std::string(p.size(), ' '), it->second);
  }
  for (const auto& [p, s] : after)
    if (before.count(p) == 0) out += fmt::format("  {}: new: {}\n", p, s);
  return out;
}

// The directory d, and what the sentinel holds: the same names.
void MakeBox(const std::string& dir) {
  fsys::create_directories(dir + "/" + kSub);
  WriteFileBytes(dir + "/" + kFile, std::string(100, 'f'));
  WriteFileBytes(dir + "/" + kSubFile, std::string(50, 'g'));
  for (const std::string& p : {dir, dir + "/" + kSub, dir + "/" + kFile, dir + "/" + kSubFile}) {
    REQUIRE(::chmod(p.c_str(), fsys::is_directory(p) ? 0750 : 0640) == 0);
    REQUIRE(::setxattr(p.c_str(), "user.keep", "1", 1, 0) == 0);
  }
}

struct Counts {
  std::atomic<uint64_t> ok{0}, failed{0}, swaps{0};
};

// One worker: random calls through the mount on paths in box/d and box/s until stop.
// safe_mode/safe_uid/safe_gid: what a call on the directory itself may set.
void Worker(int mnt_fd, unsigned seed, const std::atomic<bool>& stop, bool to_root,
            mode_t safe_mode, uid_t safe_uid, gid_t safe_gid, const std::string& mnt,
            Counts& counts) {
  std::mt19937 rng(seed);
  const std::vector<std::string> dirs = {"box/d", "box/s"};
  const std::vector<std::string> below = {kFile, kSub, kSubFile, kNew};
  while (!stop.load()) {
    const std::string dir = dirs[rng() % dirs.size()];
    const bool itself = rng() % 4 == 0;
    const std::string rel = itself ? dir : dir + "/" + below[rng() % below.size()];
    bool ok = false;
    const int op = static_cast<int>(rng() % 7);
    if (itself && op >= 4) {
      // On the directory's own name, without following it if it is the symlink now.
      const std::string p = mnt + "/" + rel;
      if (op == 4) ok = ::lchown(p.c_str(), safe_uid, safe_gid) == 0;
      if (op == 5 && !to_root) {
        const timespec t[2] = {{1000000000, 0}, {1000000000, 0}};
        ok = ::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW) == 0;
      }
      if (op == 6 && !to_root) ok = ::lsetxattr(p.c_str(), "user.race", "x", 1, 0) == 0;
    } else if (op == 3) {
      // open: create (or truncate) and write.
      const int fd = OpenBeneath(mnt_fd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ok = ::write(fd, "race", 4) == 4;
        ::close(fd);
      }
    } else {
      const int fd = OpenBeneath(mnt_fd, rel, O_RDONLY);
      if (fd >= 0) {
        struct stat st;
        const bool is_dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        const mode_t mode = itself ? safe_mode : (rng() % 2 ? 0604 : 0660) | (is_dir ? 0111 : 0);
        const uid_t uid = itself ? safe_uid : (rng() % 2 ? kNobody : 0);
        const gid_t gid = itself ? safe_gid : (rng() % 2 ? kNobody : 0);
        switch (op % 3) {
          case 0:
            ok = ::fchmod(fd, mode) == 0 && ::fchown(fd, uid, gid) == 0;
            break;
          case 1: {
            if (itself && to_root) break;
            const timespec t[2] = {{1000000000, 0}, {1000000000, 0}};
            ok = ::futimens(fd, t) == 0 && ::fsetxattr(fd, "user.race", "x", 1, 0) == 0;
            break;
          }
          case 2:
            if (!is_dir) {
              ::close(fd);
              const int w = OpenBeneath(mnt_fd, rel, O_WRONLY);
              ok = w >= 0 && ::ftruncate(w, static_cast<off_t>(rng() % 200)) == 0;
              if (w >= 0) ::close(w);
              continue;
            }
            break;
        }
        ::close(fd);
      }
    }
    (ok ? counts.ok : counts.failed)++;
  }
}

// Beside the mount: box/d and box/s (a symlink to target) trade places, atomically
// (RENAME_EXCHANGE) or in steps (the directory moved aside, a symlink made in its place).
void Swapper(const std::string& box, const std::atomic<bool>& stop, Counts& counts) {
  const std::string d = box + "/d", s = box + "/s", aside = box + "/aside";
  unsigned n = 0;
  while (!stop.load()) {
    if (++n % 3 != 0) {
      if (::renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, s.c_str(), RENAME_EXCHANGE) == 0)
        counts.swaps++;
      continue;
    }
    // Whichever of d and s is the directory goes aside; a symlink to the same target takes
    // its name; then the directory comes back over it.
    struct stat st;
    const std::string dir = ::lstat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? d : s;
    const std::string link = dir == d ? s : d;
    char target[4096];
    const ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = '\0';
    if (::rename(dir.c_str(), aside.c_str()) != 0) continue;
    ::symlink(target, dir.c_str());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    ::rename(aside.c_str(), dir.c_str());  // over the symlink
    counts.swaps++;
  }
}

// Runs the race for `seconds` with box/s pointing at target.
void Race(MountFixture& fx, const std::string& target, bool to_root, unsigned seed, double seconds,
          Counts& counts) {
  const std::string box = fx.src() + "/box";
  fsys::remove_all(box);
  fsys::create_directories(box);
  MakeBox(box + "/d");
  REQUIRE(::symlink(target.c_str(), (box + "/s").c_str()) == 0);
  struct stat root;
  REQUIRE(::stat("/", &root) == 0);
  const int mnt_fd = ::open(fx.mnt().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(mnt_fd >= 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.emplace_back(Swapper, box, std::cref(stop), std::ref(counts));
  for (unsigned w = 0; w < 2; ++w)
    threads.emplace_back(Worker, mnt_fd, seed + w, std::cref(stop), to_root,
                         to_root ? root.st_mode & 07777 : 0750, to_root ? root.st_uid : 0,
                         to_root ? root.st_gid : 0, fx.mnt(), std::ref(counts));
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  ::close(mnt_fd);
}

}  // namespace

TEST_CASE("swapping a directory for a symlink out of the source changes nothing outside it",
          "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  DTKFS_ROOT_ONLY("chown to another user, and the daemon acting for root");
  const unsigned seed = TestSeed("swap race");
  const std::string top = fsys::path(fx.src()).parent_path();
  const std::string sentinel = top + "/sentinel";
  MakeBox(sentinel);
  // A time in the past, so that any change of time shows.
  REQUIRE(Run({"find", sentinel, "-exec", "touch", "-h", "-d", "2001-02-03", "{}", "+"}).status ==
          0);
  const auto sentinel_before = Snapshot(sentinel);
  const std::vector<std::string> outside = {"/", "/etc", "/usr", top, fx.state()};
  std::map<std::string, std::string> outside_before;
  for (const std::string& p : outside) outside_before[p] = StatOf(p);
  {
    auto m = fx.Mount({"-o", "fd_budget=4"});
    INFO(m.err);
    REQUIRE(m.status == 0);
  }
  // fx.state() changes as the daemon writes its index: only its owner and mode must hold.
  outside_before.erase(fx.state());

  Counts to_sentinel, to_root;
  Race(fx, sentinel, false, seed, 5.0, to_sentinel);
  Race(fx, "/", true, seed + 100, 5.0, to_root);
  fmt::print(stderr,
             "swap race: towards the sentinel {} swaps, {} calls succeeded, {} failed; "
             "towards / {} swaps, {} succeeded, {} failed\n",
             to_sentinel.swaps.load(), to_sentinel.ok.load(), to_sentinel.failed.load(),
             to_root.swaps.load(), to_root.ok.load(), to_root.failed.load());
  INFO("towards the sentinel: " << to_sentinel.swaps << " swaps, " << to_sentinel.ok
                                << " calls succeeded, " << to_sentinel.failed << " failed");
  INFO("towards /: " << to_root.swaps << " swaps, " << to_root.ok << " calls succeeded, "
                     << to_root.failed << " failed");

  CHECK(Changes(sentinel_before, Snapshot(sentinel)) == "");
  std::map<std::string, std::string> outside_after;
  for (const auto& [p, unused] : outside_before) outside_after[p] = StatOf(p);
  CHECK(Changes(outside_before, outside_after) == "");
  for (const std::string& name : {kFile, kSub, kNew}) {
    const std::string p = std::string("/") + name;
    const bool escaped = fsys::exists(fsys::symlink_status(p));
    if (escaped) fsys::remove_all(p);  // created outside the source: take it away again
    CHECK_FALSE(escaped);
  }
  // The race did race: both sides ran and the calls often reached their files.
  CHECK(to_sentinel.swaps > 100);
  CHECK(to_root.swaps > 100);
  CHECK(to_sentinel.ok > 100);
  CHECK(to_root.ok > 100);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}
