// PowerLossEnv (tests/support/power_loss_env.h): what survives a simulated power cut is what
// was synced (file data by Sync, names by SyncDir of their directory, everything by
// SyncFilesystem), and the env is safe to use from several threads.
#include "support/power_loss_env.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "env/install_file.h"
#include "support/env_wrappers.h"
#include "support/fault_env.h"
#include "support/files.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using dtkfs::testing::FaultEnv;
using dtkfs::testing::PowerLossEnv;
using dtkfs::testing::ReadFileBytes;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Env& Fast() { return dtkfs::testing::NoSyncDefault(); }

// Creates path through env with content, syncing the data if sync_data.
void Write(Env& env, const std::string& path, const std::string& content, bool sync_data) {
  auto f = env.NewWritableFile(path, 0600);
  REQUIRE(f.ok());
  REQUIRE((*f)->WriteAt(0, content).ok());
  if (sync_data) REQUIRE((*f)->Sync().ok());
  REQUIRE((*f)->Close().ok());
}

}  // namespace

TEST_CASE("power loss: data written and not synced is lost, synced data is kept", "[power]") {
  TempDir dir;
  PowerLossEnv env(Fast());
  const std::string synced = dir / "synced", unsynced = dir / "unsynced";
  Write(env, synced, "kept", true);
  Write(env, unsynced, "lost", false);
  REQUIRE(env.SyncDir(dir.path()).ok());     // both names are durable
  CHECK(ReadFileBytes(unsynced) == "lost");  // the process sees what it wrote
  CHECK(env.NotDurable() == std::vector<std::string>{unsynced});

  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(synced) == "kept");
  REQUIRE(Exists(unsynced));  // its name was synced, its data never
  CHECK(ReadFileBytes(unsynced).empty());
  CHECK(env.NotDurable().empty());
}

TEST_CASE("power loss: unsynced writes can be kept, or torn at a random point", "[power]") {
  TempDir dir;
  const std::string p = dir / "journal";
  PowerLossEnv env(Fast());
  auto append = [&] {
    auto f = env.NewWritableFile(p, 0600);
    REQUIRE(f.ok());
    REQUIRE((*f)->WriteAt(0, "AAAA").ok());
    REQUIRE((*f)->Sync().ok());
    REQUIRE((*f)->WriteAt(4, "BBBB").ok());
    REQUIRE((*f)->WriteAt(8, "CCCC").ok());
    REQUIRE((*f)->Close().ok());
    REQUIRE(env.SyncDir(dir.path()).ok());
  };
  const std::string all = "AAAABBBBCCCC";
  SECTION("kKeep") {
    env.SetUnsynced(PowerLossEnv::Unsynced::kKeep);
    append();
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(p) == all);
  }
  SECTION("kTornPrefix: a prefix of what was written, at least what was synced") {
    std::set<size_t> lengths;
    for (uint64_t seed = 0; seed < 40; ++seed) {
      env.SetUnsynced(PowerLossEnv::Unsynced::kTornPrefix, seed);
      append();
      REQUIRE(env.SimulatePowerLoss().ok());
      const std::string got = ReadFileBytes(p);
      INFO("seed " << seed << ": " << got);
      CHECK(got.size() >= 4);
      CHECK(all.compare(0, got.size(), got) == 0);
      lengths.insert(got.size());
    }
    CHECK(lengths.count(4) == 1);
    CHECK(lengths.count(12) == 1);
    CHECK(lengths.size() >= 5);  // torn inside a write too
  }
}

TEST_CASE("power loss: an overwrite in place not synced reverts to the synced bytes", "[power]") {
  TempDir dir;
  const std::string p = dir / "f";
  WriteFileBytes(p, "0123456789");  // before the env: durable
  PowerLossEnv env(Fast());
  {
    auto f = env.ReopenWritableFile(p);
    REQUIRE(f.ok());
    REQUIRE((*f)->WriteAt(2, "ab").ok());
    REQUIRE((*f)->Sync().ok());
    REQUIRE((*f)->WriteAt(5, "XYZ").ok());   // not synced
    REQUIRE((*f)->WriteAt(12, "end").ok());  // past the end, not synced
    REQUIRE((*f)->Close().ok());
  }
  CHECK(ReadFileBytes(p) == std::string("01ab4XYZ89\0\0end", 15));
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(p) == "01ab456789");
}

TEST_CASE("power loss: a create not followed by a directory sync is lost", "[power]") {
  TempDir dir;
  PowerLossEnv env(Fast());
  const std::string p = dir / "new";
  Write(env, p, "data", true);  // data synced, name not
  REQUIRE(Exists(p));
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK_FALSE(Exists(p));

  SECTION("a sync of another directory does not help") {
    REQUIRE(::mkdir((dir / "other").c_str(), 0700) == 0);
    Write(env, p, "data", true);
    REQUIRE(env.SyncDir(dir / "other").ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK_FALSE(Exists(p));
  }
  SECTION("a sync of its directory keeps it (any spelling of the directory)") {
    Write(env, p, "data", true);
    REQUIRE(env.SyncDir(dir.path() + "//./").ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(p) == "data");
  }
}

TEST_CASE("power loss: a rename not followed by a directory sync is reverted", "[power]") {
  TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  WriteFileBytes(a, "old a");
  WriteFileBytes(b, "old b");
  PowerLossEnv env(Fast());

  SECTION("over an existing file") {
    REQUIRE(env.Rename(a, b).ok());
    CHECK_FALSE(Exists(a));
    CHECK(ReadFileBytes(b) == "old a");
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(a) == "old a");
    CHECK(ReadFileBytes(b) == "old b");
  }
  SECTION("to a new name, which disappears") {
    const std::string c = dir / "c";
    REQUIRE(env.Rename(a, c).ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(a) == "old a");
    CHECK_FALSE(Exists(c));
  }
  SECTION("with the directory synced it is kept") {
    REQUIRE(env.Rename(a, b).ok());
    REQUIRE(env.SyncDir(dir.path()).ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK_FALSE(Exists(a));
    CHECK(ReadFileBytes(b) == "old a");
  }
  SECTION("the InstallFile sequence is durable only once the directory is synced") {
    auto body = [](WritableFile& f) { return f.WriteAt(0, "new b"); };
    // Cut power before each step of an install: b is wholly old until the directory sync
    // returns, then wholly new; b.tmp is never left behind (it was never durably named).
    std::vector<std::string> steps;
    {
      REQUIRE(InstallFile(env, b, 0600, body).ok());
      steps = env.log();
      REQUIRE(env.SimulatePowerLoss().ok());
      CHECK(ReadFileBytes(b) == "new b");
      WriteFileBytes(b, "old b");
      REQUIRE(env.SimulatePowerLoss().ok());
    }
    REQUIRE(steps.size() == 6);  // create, write, sync, close, rename, syncdir
    for (size_t n = 0; n <= steps.size(); ++n) {
      INFO(fmt::format("power cut at step {} ({})", n, n < steps.size() ? steps[n] : "none"));
      env.CutPowerAt(static_cast<int>(n));
      const Status s = InstallFile(env, b, 0600, body);
      CHECK(s.ok() == (n == steps.size()));
      CHECK(env.power_cut() == (n < steps.size()));
      REQUIRE(env.SimulatePowerLoss().ok());
      CHECK(ReadFileBytes(b) == (n == steps.size() ? "new b" : "old b"));
      CHECK_FALSE(Exists(TempPathFor(b)));
      WriteFileBytes(b, "old b");
    }
  }
}

TEST_CASE("power loss: a remove not followed by a directory sync is undone", "[power]") {
  TempDir dir;
  const std::string a = dir / "a";
  WriteFileBytes(a, "here");
  PowerLossEnv env(Fast());
  REQUIRE(env.Remove(a).ok());
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(a) == "here");

  REQUIRE(env.Remove(a).ok());
  REQUIRE(env.SyncDir(dir.path()).ok());
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK_FALSE(Exists(a));
}

TEST_CASE("power loss: a new file's stale name is removed first, and that is undone too",
          "[power]") {
  TempDir dir;
  const std::string p = dir / "p";
  WriteFileBytes(p, "stale");
  PowerLossEnv env(Fast());
  Write(env, p, "fresh", true);  // NewWritableFile replaces the old file
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(p) == "stale");
}

TEST_CASE("power loss: syncfs makes every name and every byte durable", "[power]") {
  TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  WriteFileBytes(a, "old a");
  PowerLossEnv env(Fast());
  Write(env, b, "b data", false);
  REQUIRE(env.Rename(a, dir / "c").ok());
  REQUIRE(env.SyncFilesystem(dir.path()).ok());
  CHECK(env.NotDurable().empty());
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(b) == "b data");
  CHECK_FALSE(Exists(a));
  CHECK(ReadFileBytes(dir / "c") == "old a");
}

TEST_CASE("power loss: directories made by CreateDirs need their parent synced", "[power]") {
  TempDir dir;
  PowerLossEnv env(Fast());
  const std::string d = dir / "x/y";
  REQUIRE(env.CreateDirs(d, 0700).ok());
  Write(env, d + "/f", "f", true);
  REQUIRE(env.SyncDir(d).ok());  // f's name is durable in y, but y and x are not
  SECTION("unsynced parents: the whole new subtree is gone") {
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK_FALSE(Exists(dir / "x"));
  }
  SECTION("x synced into the temp dir, y not: x stays, empty") {
    REQUIRE(env.SyncDir(dir.path()).ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(Exists(dir / "x"));
    CHECK_FALSE(Exists(d));
  }
  SECTION("both synced: the file is there") {
    REQUIRE(env.SyncDir(dir.path()).ok());
    REQUIRE(env.SyncDir(dir / "x").ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(d + "/f") == "f");
  }
}

TEST_CASE("power loss: a cut refuses every later step, and files of before are dead after it",
          "[power]") {
  TempDir dir;
  const std::string p = dir / "p";
  PowerLossEnv env(Fast());
  auto f = env.NewWritableFile(p, 0600);  // step 0
  REQUIRE(f.ok());
  env.CutPowerNow();
  CHECK_FALSE(env.power_cut());
  const Status w = (*f)->WriteAt(0, "x");  // step 1: refused
  CHECK(w.errno_value() == EIO);
  CHECK(env.power_cut());
  CHECK(ReadFileBytes(p).empty());  // the write did not happen
  CHECK_FALSE(env.SyncDir(dir.path()).ok());
  CHECK(env.steps() == 3);
  CHECK(env.log() ==
        std::vector<std::string>{"create " + p, "write " + p, "syncdir " + dir.path()});

  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK_FALSE(Exists(p));
  CHECK(env.steps() == 0);
  CHECK_FALSE(env.power_cut());
  // The process that had f open is gone: f can do nothing more, and new calls work.
  CHECK((*f)->WriteAt(0, "late").errno_value() == EIO);
  CHECK_FALSE((*f)->Sync().ok());
  CHECK_FALSE(Exists(p));
  Write(env, p, "again", true);
  REQUIRE(env.SyncDir(dir.path()).ok());
  REQUIRE(env.SimulatePowerLoss().ok());
  CHECK(ReadFileBytes(p) == "again");
}

TEST_CASE("power loss: over a FaultEnv, a failed call changes nothing durable", "[power]") {
  TempDir dir;
  const std::string p = dir / "p";
  WriteFileBytes(p, "old");
  FaultEnv fault(Fast());
  PowerLossEnv env(fault);
  auto body = [](WritableFile& f) { return f.WriteAt(0, "new"); };
  REQUIRE(InstallFile(env, p, 0600, body).ok());
  const int steps = fault.steps();
  REQUIRE(env.SimulatePowerLoss().ok());
  REQUIRE(ReadFileBytes(p) == "new");
  for (int n = 0; n < steps; ++n) {
    INFO(fmt::format("crash at step {} ({})", n, fault.log()[n]));
    WriteFileBytes(p, "old");
    fault.reset_steps();
    fault.crash_at(n);
    CHECK_FALSE(InstallFile(env, p, 0600, body).ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    CHECK(ReadFileBytes(p) == "old");
    CHECK_FALSE(Exists(TempPathFor(p)));
  }
}

TEST_CASE("power loss: the env is safe to use from several threads", "[power]") {
  TempDir dir;
  PowerLossEnv env(Fast());
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  // Each writer installs its own files durably (InstallFileVia) and writes one more file
  // whose data it never syncs, while another thread keeps syncing the directory and the
  // filesystem. Catch2 is not thread-safe: threads only record failures.
  std::vector<std::vector<std::string>> failures(kThreads + 1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string durable = dir / fmt::format("d{}-{}", t, r % 5);
        const std::string content = fmt::format("thread {} round {}", t, r);
        Status s = InstallFileVia(env, durable, durable + ".tmp", 0600,
                                  [&](WritableFile& f) { return f.WriteAt(0, content); });
        if (!s.ok()) failures[t].push_back(s.ToString());
        auto f = env.NewWritableFile(dir / fmt::format("u{}", t), 0600);
        if (!f.ok()) {
          failures[t].push_back(f.status().ToString());
          continue;
        }
        s = (*f)->WriteAt(0, content);
        if (s.ok()) s = (*f)->Close();
        if (!s.ok()) failures[t].push_back(s.ToString());
        if (r % 7 == 0) {
          s = env.Rename(dir / fmt::format("u{}", t), dir / fmt::format("v{}", t));
          if (!s.ok()) failures[t].push_back(s.ToString());
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) {
      Status s = i % 3 == 0 ? env.SyncFilesystem(dir.path()) : env.SyncDir(dir.path());
      if (!s.ok()) failures[kThreads].push_back(s.ToString());
      (void)env.NotDurable();
      std::this_thread::yield();
    }
  });
  for (int t = 0; t < kThreads; ++t) threads[t].join();
  stop = true;
  threads.back().join();
  for (const auto& f : failures) CHECK(f.empty());

  REQUIRE(env.SimulatePowerLoss().ok());
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < 5; ++k) {
      const std::string durable = dir / fmt::format("d{}-{}", t, k);
      int last = kRounds - 1;
      while (last % 5 != k) --last;
      CHECK(ReadFileBytes(durable) == fmt::format("thread {} round {}", t, last));
      CHECK_FALSE(Exists(durable + ".tmp"));
    }
    // Unsynced data is gone, or a syncfs caught it whole: never a torn mix.
    for (const char* name : {"u", "v"}) {
      const std::string p = dir / fmt::format("{}{}", name, t);
      if (!Exists(p)) continue;
      const std::string got = ReadFileBytes(p);
      INFO(p << ": " << got);
      CHECK((got.empty() || got.rfind(fmt::format("thread {} round ", t), 0) == 0));
    }
  }
}
