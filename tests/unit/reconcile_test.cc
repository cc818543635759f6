// Reconcile (src/store/reconcile.h): after changes made straight in the source, reconciling the
// directories they touched makes the store equal a fresh reference walk; again, it changes
// nothing.
#include "store/reconcile.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "env/env.h"
#include "index/index_lifecycle.h"
#include "index/index_reader.h"
#include "support/files.h"
#include "support/reference_walk.h"
#include "support/scanned_index.h"
#include "support/temp_dir.h"
#include "support/test_seed.h"

using namespace dtkfs;
using namespace dtkfs::testing;

namespace {

struct Fixture {
  TempDir dir;
  std::string src = dir / "src";
  std::unique_ptr<SizeStore> store;

  void Index() {
    store = std::make_unique<SizeStore>(dtkfs::testing::ScanIndex(src, dir / "index"));
  }
  std::map<std::string, Totals> StoreView() const {
    std::map<std::string, Totals> out;
    if (auto root = store->Lookup("")) out[""] = *root;
    for (auto& [p, t] : store->ListBelow("", 0)) out[p] = t;
    return out;
  }
  ReconcileReport Reconcile(const std::string& d) {
    auto r = dtkfs::Reconcile(*store, src, d);
    REQUIRE(r.ok());
    return *r;
  }
};

void Mkdir(const std::string& p) { REQUIRE(::mkdir(p.c_str(), 0755) == 0); }

}  // namespace

TEST_CASE("reconcile: changes beside the index, one kind at a time", "[store][reconcile]") {
  Fixture fx;
  Mkdir(fx.src);
  Mkdir(fx.src + "/a");
  Mkdir(fx.src + "/a/b");
  Mkdir(fx.src + "/d");
  WriteFileBytes(fx.src + "/f", "12345");
  WriteFileBytes(fx.src + "/a/b/g", std::string(100, 'g'));
  WriteFileBytes(fx.src + "/d/h", "h");
  fx.Index();
  REQUIRE(DescribeDifferences(ReferenceWalk(fx.src), fx.StoreView()) == "");

  WriteFileBytes(fx.src + "/a/new", std::string(70, 'n'));   // a file appears
  WriteFileBytes(fx.src + "/a/b/g", std::string(300, 'g'));  // a file grows
  REQUIRE(::unlink((fx.src + "/f").c_str()) == 0);           // a file goes
  Mkdir(fx.src + "/c");                                      // a subtree appears
  Mkdir(fx.src + "/c/x");
  WriteFileBytes(fx.src + "/c/x/y", std::string(9, 'y'));
  REQUIRE(std::system(("rm -rf " + fx.src + "/d").c_str()) == 0);  // a subtree goes
  Mkdir(fx.src + "/f");                                            // a file becomes a dir
  WriteFileBytes(fx.src + "/f/z", "zz");

  CHECK(fx.Reconcile("a").own == Delta{70, 1, 0});
  CHECK(fx.Reconcile("a/b").own == Delta{200, 0, 0});
  const ReconcileReport root = fx.Reconcile("");
  CHECK(root.dirs_added == 2);  // c and f
  CHECK(root.dirs_removed == 1);
  CHECK(root.own == Delta{-5, -1, 0});
  CHECK(DescribeDifferences(ReferenceWalk(fx.src), fx.StoreView()) == "");

  // Idempotent: nothing left to do anywhere.
  for (const char* d : {"", "a", "a/b", "c", "c/x", "f"}) CHECK_FALSE(fx.Reconcile(d).changed());
  // A directory gone from the source leaves the store too.
  REQUIRE(std::system(("rm -rf " + fx.src + "/c").c_str()) == 0);
  CHECK(fx.Reconcile("c").gone);
  CHECK(DescribeDifferences(ReferenceWalk(fx.src), fx.StoreView()) == "");
  CHECK(dtkfs::Reconcile(*fx.store, fx.src, "nowhere").status().code() == Status::Code::kNotFound);
}

TEST_CASE("reconcile: random changes, then every directory reconciled, equal a walk",
          "[store][reconcile]") {
  const unsigned seed = TestSeed("reconcile random");
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  Fixture fx;
  Mkdir(fx.src);
  std::vector<std::string> dirs = {""};
  for (int i = 0; i < 30; ++i) {
    const std::string parent = dirs[rng() % dirs.size()];
    const std::string d = parent.empty() ? fmt::format("d{}", i) : fmt::format("{}/d{}", parent, i);
    Mkdir(fx.src + "/" + d);
    dirs.push_back(d);
    WriteFileBytes(fx.src + "/" + d + "/f", std::string(rng() % 1000, 'x'));
  }
  fx.Index();
  for (int i = 0; i < 40; ++i) {  // changes beside the index
    const std::string d = dirs[rng() % dirs.size()];
    const std::string p = fx.src + (d.empty() ? "" : "/" + d);
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) continue;
    switch (rng() % 4) {
      case 0:
        WriteFileBytes(fmt::format("{}/n{}", p, i), std::string(rng() % 500, 'n'));
        break;
      case 1:
        ::unlink((p + "/f").c_str());
        break;
      case 2:
        Mkdir(fmt::format("{}/m{}", p, i));
        break;
      case 3:
        if (!d.empty()) REQUIRE(std::system(("rm -rf '" + p + "'").c_str()) == 0);
        break;
    }
  }
  // Verification: reconcile top-down every directory the store knows (new ones arrive with
  // their parent's reconcile, whole).
  std::vector<std::string> todo = {""};
  while (!todo.empty()) {
    const std::string d = todo.back();
    todo.pop_back();
    auto r = dtkfs::Reconcile(*fx.store, fx.src, d);
    if (!r.ok()) continue;  // removed with a parent meanwhile
    if (r->gone) continue;
    for (auto& [p, t] : fx.store->ListBelow(d, 1)) todo.push_back(p);
  }
  CHECK(DescribeDifferences(ReferenceWalk(fx.src), fx.StoreView()) == "");
}
