// The crash loop (issue "the write-intent journal"): a real mount under seeded random
// workloads from several processes, through the mount and beside it, killed with SIGKILL at
// a random moment or at a named kill point (util/kill_point.h), then unmounted lazily and
// mounted again. Every directory's three xattrs must equal a walk of the source at once:
// the remount runs with verify=off, so nothing but the journal can make it exact.
//
// DTKFS_CRASH_TRIALS (default 20) sets the number of random kills; every named kill point
// gets a trial of its own besides. scripts/crash_soak.sh runs hundreds.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dtkfs/xattr_names.h"
#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/test_seed.h"
#include "util/kill_point.h"

using namespace dtkfs;
using namespace dtkfs::testing;

namespace {

// A path of depth 0..2 from a small alphabet, so that processes collide on names.
std::string RandomDir(std::mt19937_64& rng) {
  static const char* kTop[] = {"a", "b", "c", "d"};
  static const char* kSub[] = {"x", "y", "z"};
  switch (rng() % 4) {
    case 0:
      return "";
    case 1:
    case 2:
      return kTop[rng() % 4];
    default:
      return std::string(kTop[rng() % 4]) + "/" + kSub[rng() % 3];
  }
}

std::string Under(const std::string& root, const std::string& dir, const std::string& name) {
  return dir.empty() ? root + "/" + name : root + "/" + dir + "/" + name;
}

// One random size-changing operation under root; failures are part of the workload.
void RandomOp(const std::string& root, std::mt19937_64& rng) {
  const std::string dir = RandomDir(rng);
  const std::string file = Under(root, dir, "f" + std::to_string(rng() % 6));
  const std::string other = Under(root, RandomDir(rng), "f" + std::to_string(rng() % 6));
  const std::string sub = Under(root, dir, std::string(1, "xyz"[rng() % 3]));
  const std::string sub2 = Under(root, RandomDir(rng), std::string(1, "xyz"[rng() % 3]));
  switch (rng() % 13) {
    case 0:
    case 1: {  // write at a random place, or append
      const bool append = rng() % 2 == 0;
      const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : 0), 0644);
      if (fd < 0) break;
      const std::string data(rng() % 20000, 'w');
      if (append)
        (void)!::write(fd, data.data(), data.size());
      else
        (void)!::pwrite(fd, data.data(), data.size(), static_cast<off_t>(rng() % 30000));
      ::close(fd);
      break;
    }
    case 2:
      (void)!::truncate(file.c_str(), static_cast<off_t>(rng() % 40000));
      break;
    case 3:
      ::unlink(file.c_str());
      break;
    case 4:
    case 5:
      ::mkdir(sub.c_str(), 0755);
      break;
    case 6:
      ::rmdir(sub.c_str());
      break;
    case 7:
      ::rename(file.c_str(), other.c_str());
      break;
    case 8:  // a directory moves, onto an empty one or a new name
      ::rename(sub.c_str(), sub2.c_str());
      break;
    case 9:
      ::syscall(SYS_renameat2, AT_FDCWD, sub.c_str(), AT_FDCWD, sub2.c_str(), 2 /*EXCHANGE*/);
      break;
    case 10:
      ::link(file.c_str(), other.c_str());
      break;
    case 11:
      ::symlink("target-of-some-length", other.c_str());
      break;
    default: {
      const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT, 0644);
      if (fd < 0) break;
      (void)!::fallocate(fd, 0, 0, static_cast<off_t>(rng() % 50000));
      ::close(fd);
      break;
    }
  }
}

// A child process running RandomOp under root until killed (or steps run out).
pid_t StartWorker(const std::string& root, uint64_t seed, int steps) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < steps; ++i) RandomOp(root, rng);
    ::_exit(0);
  }
  return pid;
}

void StopWorkers(std::vector<pid_t>& pids) {
  for (pid_t p : pids) ::kill(p, SIGKILL);
  for (pid_t p : pids) ::waitpid(p, nullptr, 0);
  pids.clear();
}

// Asks the daemon for a compaction (what `dtkfs compact` does), from a child process: a
// request to a daemon that dies meanwhile may never be answered until the connection is
// aborted.
pid_t RequestCompaction(const std::string& mnt) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setxattr(mnt.c_str(), xattr::kControlCompact, "1", 1, 0);
    ::_exit(0);
  }
  return pid;
}

// Sets DTKFS_KILL_AT for the daemons started while it lives.
class KillAt {
 public:
  explicit KillAt(const std::string& point) { ::setenv("DTKFS_KILL_AT", point.c_str(), 1); }
  ~KillAt() { ::unsetenv("DTKFS_KILL_AT"); }
};

// While it lives, a thread that aborts mnt's connection as soon as daemon is gone, so that no
// request of the test (or of its workers) waits on a dead daemon.
class DeathWatch {
 public:
  DeathWatch(pid_t daemon, std::function<void()> abort)
      : thread_([this, daemon, abort = std::move(abort)] {
          while (!stop_.load()) {
            if (!ProcessAlive(daemon)) {
              abort();
              return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }) {}
  ~DeathWatch() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const std::vector<std::string> kMountOptions = {"-o", "verify=off,compact_threshold=64",
                                                "--compact-interval", "1"};

// One trial: mount (a daemon with the given kill point, if any), run the workload, kill the
// daemon (or let the kill point do it), clear the dead mount, remount, compare.
struct Trial {
  MountFixture& fx;
  uint64_t seed;
  std::string kill_point;  // "" : a random SIGKILL
  std::string failure;     // what went wrong ("" when the trial passed)
  std::string recovery;    // the remounted daemon's recovery status line
  bool strict = false;     // compared before any verification: the journal alone made it exact

  void Run() {
    std::mt19937_64 rng(seed);
    CommandResult mounted;
    {
      std::optional<KillAt> kill;
      // Journal points pass a few times first, so that most trials get past the changes
      // beside the mount (below) before they die.
      if (kill_point.rfind("journal.", 0) == 0)
        kill.emplace(fmt::format("{}:{}", kill_point, 4 + rng() % 24));
      else if (!kill_point.empty() && kill_point.rfind("recovery.", 0) != 0)
        kill.emplace(kill_point);
      mounted = fx.Mount(kMountOptions);
    }
    // Whether every change made beside the mount reached a live daemon (a size query waits
    // for the watcher to apply them, and the watcher marks them in the journal). If the
    // daemon died first, they were made while nothing watched, which is the verification's
    // job, not the journal's: the remount then verifies before it is compared.
    bool beside_seen = false;
    std::vector<pid_t> workers;
    if (mounted.status == 0) {
      const pid_t daemon = fx.DaemonPid();
      if (daemon <= 0) return Fail("the daemon does not answer after mounting");
      DeathWatch watch(daemon, [this] { fx.AbortConnection(); });
      const pid_t beside = StartWorker(fx.src(), rng(), 15);
      for (int i = 0; i < 2; ++i) workers.push_back(StartWorker(fx.mnt(), rng(), 1 << 30));
      ::waitpid(beside, nullptr, 0);
      char buf[32];
      beside_seen = ::getxattr(fx.mnt().c_str(), xattr::kTotalBytes, buf, sizeof buf) > 0 &&
                    ProcessAlive(daemon);
      workers.push_back(StartWorker(fx.mnt(), rng(), 1 << 30));
      if (kill_point.empty() || kill_point.rfind("recovery.", 0) == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 700));
        if (rng() % 3 == 0) workers.push_back(RequestCompaction(fx.mnt()));
        ::kill(daemon, SIGKILL);
      } else {
        // Compactions until the kill point is reached.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (ProcessAlive(daemon) && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          workers.push_back(RequestCompaction(fx.mnt()));
        }
        if (ProcessAlive(daemon)) {
          ::kill(daemon, SIGKILL);
          StopWorkers(workers);
          fx.AbortConnection();
          return Fail("kill point " + kill_point + " was never reached");
        }
      }
      for (int i = 0; i < 500 && !ProcessGone(daemon); ++i) {
        if (!ProcessAlive(daemon)) fx.AbortConnection();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!ProcessGone(daemon)) return Fail("the killed daemon does not go away");
    }
    StopWorkers(workers);
    dtkfs::testing::Run({"fusermount3", "-u", "-z", fx.mnt()});
    if (kill_point.rfind("recovery.", 0) == 0) {
      // A second crash, during recovery itself.
      KillAt kill(kill_point);
      fx.Mount(kMountOptions);
      fx.AbortConnection();
      dtkfs::testing::Run({"fusermount3", "-u", "-z", fx.mnt()});
    }
    strict = beside_seen;
    std::vector<std::string> options = kMountOptions;
    if (!strict) options[1] = "verify=on,compact_threshold=64";
    auto again = fx.Mount(options);
    if (again.status != 0) return Fail("remount failed: " + again.err);
    recovery = fx.StatusField("recovery");
    // (A recovery that rescanned, for hard links, has nothing to verify.)
    if (!strict && recovery.find("rescanned") == std::string::npos && !fx.WaitForVerify(1, 120))
      return Fail("the verification did not finish");
    if (std::string d = fx.Differences(); !d.empty()) return Fail("after the remount: " + d);
    if (auto u = fx.Unmount(); u.status != 0)
      return Fail("unmount after the remount failed: " + u.out + u.err);
  }
  void Fail(const std::string& why) {
    failure =
        fmt::format("seed {} kill {}: {}", seed, kill_point.empty() ? "random" : kill_point, why);
  }
};

void MakeStartTree(const std::string& src) {
  for (const char* d : {"a/x", "a/y", "b/x", "c/z", "d"})
    std::filesystem::create_directories(src + "/" + d);
  for (const char* f : {"a/f0", "a/x/f1", "b/f2", "c/z/f3", "f4"})
    WriteFileBytes(src + "/" + f, std::string(1000, 's'));
}

}  // namespace

TEST_CASE("crash loop: kill -9 at random moments and at every kill point, exact at remount",
          "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  fx.UseBinary(KillableBinary());
  MakeStartTree(fx.src());
  const unsigned seed = TestSeed("crash loop");
  std::mt19937_64 rng(seed);
  int trials = 20;
  if (const char* v = std::getenv("DTKFS_CRASH_TRIALS")) trials = std::max(1, std::atoi(v));
  std::vector<std::string> kills;
  for (int i = 0; i < trials; ++i) kills.emplace_back();
  for (std::string_view p : kill_point::kKillPoints) kills.emplace_back(p);
  std::shuffle(kills.begin(), kills.end(), rng);
  int recovered = 0, strict = 0;
  for (const std::string& kill : kills) {
    Trial t{fx, rng(), kill};
    t.Run();
    INFO("trial " << t.seed << " (" << (kill.empty() ? "random" : kill) << ")");
    REQUIRE(t.failure == "");
    if (t.recovery.find("reconciled") != std::string::npos) ++recovered;
    strict += t.strict ? 1 : 0;
  }
  // Most crashes leave marks to recover from (a kill right after a compaction may not), and
  // most trials are exact from the journal alone.
  CHECK(recovered >= static_cast<int>(kills.size()) / 3);
  CHECK(strict >= static_cast<int>(kills.size()) / 2);
  // A clean unmount leaves nothing to recover: the next mount maps the index alone.
  REQUIRE(fx.Mount(kMountOptions).status == 0);
  REQUIRE(fx.Unmount().status == 0);
  REQUIRE(fx.Mount(kMountOptions).status == 0);
  CHECK(fx.StatusField("recovery") == "none");
  CHECK(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
  for (const auto& e : std::filesystem::directory_iterator(fx.state()))
    CHECK(e.path().filename().string().find(".journal.") == std::string::npos);
}
