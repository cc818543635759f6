// Recovery costs what changed (issue "the write-intent journal", "Cost"): on a tree of many
// directories where 100 changed through the mount before a kill -9, the next mount reconciles
// those 100 directories and reads nothing else. The time against a full scan is measured by
// bench/journal_bench.sh (docs/benchmarks.md), not here: tests do not time.
// DTKFS_RECOVERY_COST_DIRS sets the tree's directories (default 2,000 of 10 files each).
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <string>

#include "support/files.h"
#include "support/mount_fixture.h"
#include "support/test_seed.h"

using namespace dtkfs::testing;

TEST_CASE("recovery after a crash reconciles only the directories that changed", "[crash]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  int dirs = 2000;
  if (const char* v = std::getenv("DTKFS_RECOVERY_COST_DIRS")) dirs = std::max(200, std::atoi(v));
  for (int d = 0; d < dirs; ++d) {
    const std::string dir = fx.src() + "/g" + std::to_string(d % 20) + "/d" + std::to_string(d);
    std::filesystem::create_directories(dir);
    for (int f = 0; f < 10; ++f) WriteFileBytes(dir + "/f" + std::to_string(f), "0123456789");
  }
  REQUIRE(fx.Mount({"-o", "verify=off"}).status == 0);
  REQUIRE(Run({DtkfsBinary(), "compact", fx.mnt()}).status == 0);  // nothing left to recover
  std::mt19937 rng(TestSeed("recovery cost"));
  std::set<int> changed;
  while (changed.size() < 100)
    changed.insert(static_cast<int>(rng() % static_cast<unsigned>(dirs)));
  for (int d : changed)
    std::ofstream(fx.mnt() + "/g" + std::to_string(d % 20) + "/d" + std::to_string(d) + "/f0",
                  std::ios::app)
        << "more bytes";
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.CrashDaemon());

  auto again = fx.Mount({"-o", "verify=off"});
  INFO(again.err);
  REQUIRE(again.status == 0);
  CHECK(again.err.find("scanning") == std::string::npos);
  const std::string recovery = fx.StatusField("recovery");
  INFO(recovery);
  std::smatch m;
  REQUIRE(std::regex_search(recovery, m,
                            std::regex(R"((\d+) directories reconciled \((\d+) changed)")));
  CHECK(std::stoi(m[1]) == 100);
  CHECK(std::stoi(m[2]) == 100);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}
