// SizeStore against a model: random trees, random edits, compactions (some of them failing
// on purpose, so frozen overlays pile up), readers running beside a writer, and the rename
// of a 100k-directory subtree. Each runs with renames rewritten in place and with rename maps
// (SetRenameMapThreshold), and rename maps get a model test of their own: chains of renames,
// renames back, names made again, exchanges, freezes and compactions in between.
//
// The model is deliberately dumb: the set of directories and the sizes of the files directly
// in each; every directory's Totals are recomputed from scratch before each comparison, so
// nothing the store does incrementally is trusted.
#include "store/size_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "index/index_builder.h"
#include "index/index_reader.h"
#include "store/compactor.h"
#include "support/env_wrappers.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "support/test_seed.h"

using namespace dtkfs;
using dtkfs::testing::FaultEnv;
using dtkfs::testing::TempDir;

namespace {

using View = std::map<std::string, Totals>;

// Parent of a non-root path, written out here rather than borrowed from util/path so that
// the model shares no code with the store.
std::string ModelParent(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

bool SameOrBelow(const std::string& p, const std::string& dir) {
  if (dir.empty()) return true;
  return p == dir ||
         (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/');
}

size_t ModelDepth(const std::string& p) {
  return p.empty() ? 0 : 1 + static_cast<size_t>(std::count(p.begin(), p.end(), '/'));
}

struct Model {
  // directory -> sizes of the non-directory entries directly in it
  std::map<std::string, std::vector<uint64_t>> dirs{{"", {}}};

  View Totals() const {
    View out;
    for (const auto& [d, files] : dirs) out[d];
    for (const auto& [d, files] : dirs) {
      uint64_t bytes = 0;
      for (uint64_t s : files) bytes += s;
      std::string a = d;
      while (true) {
        out[a].bytes += bytes;
        out[a].files += files.size();
        if (a != d) out[a].dirs += 1;
        if (a.empty()) break;
        a = ModelParent(a);
      }
    }
    return out;
  }

  std::vector<std::string> DirList() const {
    std::vector<std::string> v;
    for (const auto& [d, f] : dirs) v.push_back(d);
    return v;
  }

  void RemoveTree(const std::string& p) {
    for (auto it = dirs.begin(); it != dirs.end();) {
      if (SameOrBelow(it->first, p))
        it = dirs.erase(it);
      else
        ++it;
    }
  }

  void MoveTree(const std::string& from, const std::string& to) {
    std::vector<std::pair<std::string, std::vector<uint64_t>>> moved;
    for (auto it = dirs.begin(); it != dirs.end();) {
      if (SameOrBelow(it->first, from)) {
        moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
        it = dirs.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [p, f] : moved) dirs[p] = std::move(f);
  }

  void ExchangeTrees(const std::string& a, const std::string& b) {
    std::vector<std::pair<std::string, std::vector<uint64_t>>> moved;
    for (auto it = dirs.begin(); it != dirs.end();) {
      if (SameOrBelow(it->first, a)) {
        moved.emplace_back(b + it->first.substr(a.size()), std::move(it->second));
      } else if (SameOrBelow(it->first, b)) {
        moved.emplace_back(a + it->first.substr(b.size()), std::move(it->second));
      } else {
        ++it;
        continue;
      }
      it = dirs.erase(it);
    }
    for (auto& [p, f] : moved) dirs[p] = std::move(f);
  }

  // How many levels the subtree at dir reaches below it.
  size_t Height(const std::string& dir) const {
    size_t deepest = ModelDepth(dir);
    for (const auto& [d, f] : dirs)
      if (SameOrBelow(d, dir)) deepest = std::max(deepest, ModelDepth(d));
    return deepest - ModelDepth(dir);
  }
};

Env& Fast() { return dtkfs::testing::NoSyncDefault(); }

Status WriteModelIndex(const std::string& path, const View& totals, uint64_t generation = 1) {
  IndexMeta meta;
  meta.generation = generation;
  return WriteIndex(Fast(), path, meta, [&](const EntryEmitter& emit) {
    for (const auto& [p, t] : totals) DTKFS_RETURN_IF_ERROR(emit(p, t));
    return Status::Ok();
  });
}

std::string Show(const std::optional<Totals>& t) {
  if (!t) return "absent";
  return fmt::format("{{bytes {} files {} dirs {}}}", t->bytes, t->files, t->dirs);
}

// The entries of `all` strictly below dir, at most max_depth levels down (0: all).
std::vector<std::pair<std::string, Totals>> ModelListBelow(const View& all, const std::string& dir,
                                                           size_t max_depth) {
  std::vector<std::pair<std::string, Totals>> out;
  const size_t d0 = ModelDepth(dir);
  for (const auto& [p, t] : all) {
    if (p == dir || !SameOrBelow(p, dir)) continue;
    if (max_depth == 0 || ModelDepth(p) - d0 <= max_depth) out.emplace_back(p, t);
  }
  return out;
}

// Compares the store with the model; returns "" or the first difference. (Catch assertions
// per directory would be slow at thousands of ops times hundreds of directories.)
std::string Diff(const SizeStore& store, const Model& model, const std::set<std::string>& ever,
                 std::mt19937_64& rng) {
  const View expected = model.Totals();
  for (const auto& [p, t] : expected) {
    auto got = store.Lookup(p);
    if (!got || !(*got == t))
      return fmt::format("Lookup('{}') = {}, model says {}", p, Show(got), Show(t));
  }
  for (const auto& p : ever) {
    if (expected.count(p)) continue;
    auto got = store.Lookup(p);
    if (got) return fmt::format("Lookup('{}') = {} but it was removed", p, Show(got));
  }
  auto all = store.ListBelow("", 0);
  auto want_all = ModelListBelow(expected, "", 0);
  if (all != want_all)
    return fmt::format("ListBelow('', 0): {} entries, model has {}", all.size(), want_all.size());
  // A few subtree listings, children only and all depths.
  const auto dirs = model.DirList();
  for (int i = 0; i < 3; ++i) {
    const std::string& d = dirs[rng() % dirs.size()];
    for (size_t depth : {size_t{0}, size_t{1}, size_t{2}}) {
      if (store.ListBelow(d, depth) != ModelListBelow(expected, d, depth))
        return fmt::format("ListBelow('{}', {}) differs from the model", d, depth);
    }
  }
  return "";
}

// Names chosen to sit on both sides of '/' (0x2f) and its successor '0' (0x30) in byte
// order, so subtree ranges that are off by one show up: "a-" < "a/x" < "a0". "a\x01" is
// the next name after "a" itself, so a rename map that takes more than "a" shows up too.
const std::vector<std::string> kNames = {"a",   "a\x01", "a-",   "a0", "b",
                                         "b.c", "\x01",  "\xff", "z z"};

std::string NewChildName(const Model& m, const std::string& parent, std::mt19937_64& rng) {
  for (int tries = 0; tries < 20; ++tries) {
    std::string name = kNames[rng() % kNames.size()];
    if (rng() % 3 == 0) name += std::to_string(rng() % 5);
    std::string p = parent.empty() ? name : parent + "/" + name;
    if (!m.dirs.count(p)) return p;
  }
  return "";
}

void GrowRandomTree(Model& m, size_t dirs, size_t max_depth, std::mt19937_64& rng,
                    uint64_t file_size = 0) {
  while (m.dirs.size() < dirs) {
    auto list = m.DirList();
    const std::string& parent = list[rng() % list.size()];
    if (ModelDepth(parent) >= max_depth) continue;
    std::string p = NewChildName(m, parent, rng);
    if (p.empty()) continue;
    auto& files = m.dirs[p];
    for (uint64_t k = rng() % 4; k > 0; --k) files.push_back(file_size ? file_size : rng() % 5000);
  }
}

uint64_t SeedFromEnvOr(uint64_t fallback) {
  const char* s = std::getenv("DTKFS_TEST_SEED");
  return s ? std::strtoull(s, nullptr, 10) : fallback;
}

// Rename maps for every rename (0), or only for subtrees bigger than the default.
constexpr size_t kMapsAlways = 0;
constexpr size_t kMapsDefault = SizeStore::kDefaultRenameMapThreshold;

// A size store over an index written from model, with its compactor: what the random
// tests start from, and what a restarted daemon continues with (Restart).
struct ModelStore {
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  FaultEnv env{Fast()};
  size_t threshold;
  std::unique_ptr<SizeStore> store;
  std::unique_ptr<Compactor> compactor;

  ModelStore(const Model& model, size_t map_threshold) : threshold(map_threshold) {
    REQUIRE(WriteModelIndex(index, model.Totals()).ok());
    auto base = IndexReader::Open(Env::Default(), index);
    REQUIRE(base.ok());
    Restart(*base);
  }
  void Restart(std::shared_ptr<const IndexReader> base) {
    compactor.reset();
    store = std::make_unique<SizeStore>(std::move(base));
    store->SetRenameMapThreshold(threshold);
    compactor = std::make_unique<Compactor>(*store, env, index, "");
  }
};

}  // namespace

TEST_CASE("size store matches a from-scratch model through random edits and compactions",
          "[store]") {
  const uint64_t seed = SeedFromEnvOr(GENERATE(1u, 2u, 3u, 4u));
  const size_t threshold = GENERATE(as<size_t>{}, kMapsAlways, kMapsDefault);
  CAPTURE(seed, threshold);
  std::mt19937_64 rng(seed);
  Model model;
  GrowRandomTree(model, 120, 5, rng);
  ModelStore ms(model, threshold);
  const std::string& index = ms.index;
  FaultEnv& env = ms.env;
  auto& store = ms.store;
  auto& compactor = ms.compactor;
  std::set<std::string> ever;
  for (const auto& [d, f] : model.dirs) ever.insert(d);
  REQUIRE(Diff(*store, model, ever, rng) == "");

  int compactions = 0, failed_compactions = 0, reloads = 0;
  int rmdir_empty = 0, rmdir_tree = 0, rename_deep = 0, rename_other_parent = 0;
  const int kOps = 2000;
  for (int op = 0; op < kOps; ++op) {
    CAPTURE(op);
    auto dirs = model.DirList();
    const std::string dir = dirs[rng() % dirs.size()];
    const int kind = static_cast<int>(rng() % 100);
    std::string what;
    if (kind < 25) {  // create a file
      uint64_t size = rng() % 10000;
      what = fmt::format("create {} bytes in '{}'", size, dir);
      REQUIRE(store->AddDelta(dir, Delta{static_cast<int64_t>(size), 1, 0}).ok());
      model.dirs[dir].push_back(size);
    } else if (kind < 38) {  // resize a file
      auto& files = model.dirs[dir];
      if (files.empty()) continue;
      uint64_t& f = files[rng() % files.size()];
      uint64_t to = rng() % 10000;
      what = fmt::format("resize in '{}' {} -> {}", dir, f, to);
      REQUIRE(store->AddDelta(dir, Delta{static_cast<int64_t>(to) - static_cast<int64_t>(f), 0, 0})
                  .ok());
      f = to;
    } else if (kind < 48) {  // remove a file
      auto& files = model.dirs[dir];
      if (files.empty()) continue;
      size_t i = rng() % files.size();
      what = fmt::format("unlink {} bytes in '{}'", files[i], dir);
      REQUIRE(store->AddDelta(dir, Delta{-static_cast<int64_t>(files[i]), -1, 0}).ok());
      files.erase(files.begin() + static_cast<ptrdiff_t>(i));
    } else if (kind < 68) {  // mkdir
      if (model.dirs.size() > 250 || ModelDepth(dir) >= 7) continue;
      std::string p = NewChildName(model, dir, rng);
      if (p.empty()) continue;
      what = fmt::format("mkdir '{}'", p);
      REQUIRE(store->MakeDir(p).ok());
      model.dirs[p];
      ever.insert(p);
    } else if (kind < 76) {  // rmdir, empty or a whole subtree
      if (dir.empty() || model.dirs.size() < 40) continue;
      what = fmt::format("rmdir '{}'", dir);
      REQUIRE(store->RemoveDir(dir).ok());
      (model.Totals().at(dir).dirs == 0 ? rmdir_empty : rmdir_tree)++;
      model.RemoveTree(dir);
    } else if (kind < 92) {  // rename a subtree, mostly into another parent
      if (dir.empty()) continue;
      std::string parent = dirs[rng() % dirs.size()];
      if (SameOrBelow(parent, dir)) continue;
      size_t subtree_depth = 0;
      for (const auto& d : dirs)
        if (SameOrBelow(d, dir)) subtree_depth = std::max(subtree_depth, ModelDepth(d));
      if (subtree_depth - ModelDepth(dir) + ModelDepth(parent) > 9) continue;  // keep it bounded
      std::string to = NewChildName(model, parent, rng);
      if (to.empty()) continue;
      what = fmt::format("rename '{}' -> '{}'", dir, to);
      REQUIRE(store->RenameDir(dir, to).ok());
      if (subtree_depth - ModelDepth(dir) >= 2) rename_deep++;
      if (parent != ModelParent(dir)) rename_other_parent++;
      model.MoveTree(dir, to);
      for (const auto& [d, f] : model.dirs) ever.insert(d);
    } else if (kind < 96) {  // operations that must be refused and change nothing
      what = "refused operations";
      CHECK_FALSE(store->MakeDir(dir).ok());  // exists (or is the root)
      CHECK_FALSE(store->MakeDir("no/such/child").ok());
      CHECK_FALSE(store->RemoveDir("").ok());
      CHECK_FALSE(store->RemoveDir("no/such").ok());
      CHECK_FALSE(store->AddDelta("no/such/dir", Delta{1, 1, 0}).ok());
      CHECK_FALSE(store->RenameDir("", "x").ok());
      CHECK_FALSE(store->RenameDir("no/such", "x").ok());
      if (!dir.empty()) {
        CHECK_FALSE(store->RenameDir(dir, dir + "/inside").ok());
        CHECK_FALSE(store->RenameDir(dir, "no/such/target").ok());
        const std::string& other = dirs[rng() % dirs.size()];
        if (!other.empty()) CHECK_FALSE(store->RenameDir(dir, other).ok());  // target exists
      }
    } else {  // compaction; a third of them fail at a random step and leave frozen overlays
      const bool fail = rng() % 3 == 0;
      env.reset_steps();
      if (fail) env.fail_at(static_cast<int>(rng() % 10), rng() % 2 ? EIO : ENOSPC);
      Status s = compactor->CompactNow();
      env.clear();
      what = fmt::format("compaction (fail injected: {}) -> {}", fail, s.ToString());
      if (!fail) REQUIRE(s.ok());
      ++compactions;
      if (!s.ok()) ++failed_compactions;
      if (s.ok() && !store->dirty()) {
        // Everything is in the file: a cold start from it must equal the model too.
        auto reopened = IndexReader::Open(Env::Default(), index);
        REQUIRE(reopened.ok());
        SizeStore cold(*reopened);
        INFO("cold reload after " << what);
        REQUIRE(Diff(cold, model, ever, rng) == "");
        ++reloads;
        if (rng() % 2) ms.Restart(*reopened);  // continue cold, as a restarted daemon would
      }
    }
    INFO("after " << what);
    REQUIRE(Diff(*store, model, ever, rng) == "");
  }
  INFO(
      fmt::format("{} compactions ({} failed), {} cold reloads, {} dirs at the end; rmdir: {} "
                  "empty, {} subtrees; renames: {} of subtrees 2+ levels deep, {} into another "
                  "parent",
                  compactions, failed_compactions, reloads, model.dirs.size(), rmdir_empty,
                  rmdir_tree, rename_deep, rename_other_parent));
  CHECK(compactions > 20);
  CHECK(rmdir_empty > 0);
  CHECK(rmdir_tree > 0);
  CHECK(rename_deep > 0);
  CHECK(rename_other_parent > 0);
  CHECK(failed_compactions > 0);
  CHECK(reloads > 0);
  // A final compaction persists everything.
  REQUIRE(compactor->CompactNow().ok());
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  SizeStore cold(*reopened);
  REQUIRE(Diff(cold, model, ever, rng) == "");
}

TEST_CASE("size store readers see only whole updates while a writer and a compactor run",
          "[store]") {
  // Every file is 1000 bytes, so every directory's totals satisfy bytes == 1000 * files in
  // any consistent state; an update applied in pieces would break it.
  const uint64_t seed = SeedFromEnvOr(7);
  const size_t threshold = GENERATE(as<size_t>{}, kMapsAlways, kMapsDefault);
  CAPTURE(seed, threshold);
  std::mt19937_64 rng(seed);
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  Model model;
  GrowRandomTree(model, 150, 5, rng, /*file_size=*/1000);
  REQUIRE(WriteModelIndex(index, model.Totals()).ok());
  auto base = IndexReader::Open(Env::Default(), index);
  REQUIRE(base.ok());
  SizeStore store(*base);
  store.SetRenameMapThreshold(threshold);
  Compactor compactor(store, Fast(), index, "");

  // Candidate paths for readers: everything that existed at the start, plus names the
  // writer may create (a reader mostly sees some of them absent; that is fine).
  std::vector<std::string> candidates = model.DirList();
  for (const auto& n : kNames) candidates.push_back(n);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, listings{0};
  std::mutex bad_mu;
  std::vector<std::string> bad;
  auto report = [&](std::string s) {
    std::lock_guard l(bad_mu);
    if (bad.size() < 10) bad.push_back(std::move(s));
  };
  auto check = [&](std::string_view p, const Totals& t) {
    if (t.bytes != 1000 * t.files)
      report(fmt::format("'{}' seen as bytes {} files {}", p, t.bytes, t.files));
  };
  auto reader = [&](uint64_t reader_seed) {
    std::mt19937_64 r(reader_seed);
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      auto root = store.Lookup("");
      if (!root)
        report("root absent");
      else
        check("", *root);
      const std::string& p = candidates[r() % candidates.size()];
      if (auto t = store.Lookup(p)) check(p, *t);
      if (++n % 64 == 0) {
        // One listing is taken under one lock: it must be a consistent tree as well.
        auto all = store.ListBelow("", 0);
        listings.fetch_add(1, std::memory_order_relaxed);
        std::map<std::string, uint64_t> below;  // dir -> number of listed dirs below it
        for (const auto& [q, t] : all) {
          check(q, t);
          for (std::string a = ModelParent(q);; a = ModelParent(a)) {
            below[a]++;
            if (a.empty()) break;
          }
        }
        for (const auto& [q, t] : all) {
          if (t.dirs != below[q])
            report(fmt::format("listing: '{}' says {} dirs below, listing has {}", q, t.dirs,
                               below[q]));
        }
      }
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread r1(reader, seed * 31 + 1), r2(reader, seed * 31 + 2);
  // A background compactor, so publishes happen under the readers too (seed 002's setting).
  std::atomic<int> background_runs{0};
  std::atomic<int> background_failures{0};
  std::thread bg([&] {
    while (!stop.load()) {
      if (!compactor.CompactNow().ok()) background_failures++;
      background_runs++;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  // At least kOps edits and at least half a second of them, so several compactions overlap.
  const int kOps = 10000;
  const auto writer_start = std::chrono::steady_clock::now();
  int done = 0;
  for (int op = 0; op < kOps ||
                   std::chrono::steady_clock::now() - writer_start < std::chrono::milliseconds(500);
       ++op) {
    auto dirs = model.DirList();
    const std::string dir = dirs[rng() % dirs.size()];
    const int kind = static_cast<int>(rng() % 100);
    Status s;
    if (kind < 40) {
      s = store.AddDelta(dir, Delta{1000, 1, 0});
      model.dirs[dir].push_back(1000);
    } else if (kind < 65) {
      auto& files = model.dirs[dir];
      if (files.empty()) continue;
      s = store.AddDelta(dir, Delta{-1000, -1, 0});
      files.pop_back();
    } else if (kind < 82) {
      if (model.dirs.size() > 300 || ModelDepth(dir) >= 7) continue;
      std::string p = NewChildName(model, dir, rng);
      if (p.empty()) continue;
      s = store.MakeDir(p);
      model.dirs[p];
    } else if (kind < 88) {
      if (dir.empty() || model.dirs.size() < 60) continue;
      s = store.RemoveDir(dir);
      model.RemoveTree(dir);
    } else {
      if (dir.empty()) continue;
      std::string parent = dirs[rng() % dirs.size()];
      if (SameOrBelow(parent, dir) || ModelDepth(parent) > 5) continue;
      std::string to = NewChildName(model, parent, rng);
      if (to.empty()) continue;
      s = store.RenameDir(dir, to);
      model.MoveTree(dir, to);
    }
    INFO("op " << op << ": " << s.ToString());
    REQUIRE(s.ok());
    ++done;
  }
  stop = true;
  r1.join();
  r2.join();
  bg.join();
  WARN(fmt::format(
      "{} writes in {:.2f} s; {} reads of the root and a random directory, {} "
      "whole-tree listings; {} background compactions",
      done, std::chrono::duration<double>(std::chrono::steady_clock::now() - writer_start).count(),
      reads.load(), listings.load(), background_runs.load()));
  std::string seen;
  for (const auto& b : bad) seen += b + "\n";
  INFO("inconsistent states seen by readers:\n" << seen);
  REQUIRE(bad.empty());
  CHECK(background_failures == 0);
  CHECK(reads > 0);
  CHECK(background_runs > 0);
  std::mt19937_64 check_rng(seed);
  std::set<std::string> none;
  REQUIRE(Diff(store, model, none, check_rng) == "");
  REQUIRE(compactor.CompactNow().ok());
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  SizeStore cold(*reopened);
  REQUIRE(Diff(cold, model, none, check_rng) == "");
}

namespace {

// big/dNNN/eNNNN: 100 x 1000 leaf directories, each holding one 7-byte file, and an empty
// "dst" beside "big".
struct BigTree {
  static constexpr uint64_t kMid = 100, kLeaf = 1000, kFile = 7;
  static constexpr size_t kEntries = 2 + kMid + kMid * kLeaf + 1;  // with "", "big", "dst"
  const Totals leaf{kFile, 1, 0};
  const Totals mid{kFile * kLeaf, kLeaf, kLeaf};
  const Totals big{kFile * kLeaf * kMid, kLeaf* kMid, kMid + kMid* kLeaf};
  const Totals dst{};
  const Totals dst_holding_big{big.bytes, big.files, big.dirs + 1};
  const Totals root{big.bytes, big.files, big.dirs + 2};

  // Writes the tree as the index at path and opens it.
  std::shared_ptr<const IndexReader> Write(const std::string& path) const {
    IndexMeta meta;
    REQUIRE(WriteIndex(Fast(), path, meta, [&](const EntryEmitter& emit) {
              DTKFS_RETURN_IF_ERROR(emit("", root));
              DTKFS_RETURN_IF_ERROR(emit("big", big));
              for (uint64_t m = 0; m < kMid; ++m) {
                const std::string mp = fmt::format("big/d{:03}", m);
                DTKFS_RETURN_IF_ERROR(emit(mp, mid));
                for (uint64_t l = 0; l < kLeaf; ++l)
                  DTKFS_RETURN_IF_ERROR(emit(fmt::format("{}/e{:04}", mp, l), leaf));
              }
              return emit("dst", dst);
            }).ok());
    auto base = IndexReader::Open(Env::Default(), path);
    REQUIRE(base.ok());
    REQUIRE((*base)->size() == kEntries);
    return *base;
  }
};

double Millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

TEST_CASE("size store renames a 100k-directory subtree", "[store]") {
  // SIZE_MAX: the subtree is rewritten in place, as before rename maps (timed for comparison).
  const size_t threshold = GENERATE(as<size_t>{}, std::numeric_limits<size_t>::max(), kMapsDefault);
  const char* how = threshold == kMapsDefault ? "rename map" : "rewritten in place";
  CAPTURE(how);
  const BigTree t;
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  SizeStore store(t.Write(index));
  store.SetRenameMapThreshold(threshold);

  // A reader beside the rename: the root never changes, and "dst" holds either nothing or
  // the whole subtree.
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto r = store.Lookup("");
      auto d = store.Lookup("dst");
      if (!r || !(*r == t.root)) bad++;
      if (!d || !(*d == t.dst || *d == t.dst_holding_big)) bad++;
    }
  });

  auto t0 = std::chrono::steady_clock::now();
  Status s = store.RenameDir("big", "dst/moved");
  auto t1 = std::chrono::steady_clock::now();
  stop = true;
  reader.join();
  REQUIRE(s.ok());
  WARN(fmt::format("rename of a {}-directory subtree from the base ({}): {:.1f} ms",
                   BigTree::kEntries - 2, how, Millis(t1 - t0)));
  CHECK(bad == 0);
  CHECK(store.Lookup("") == t.root);
  CHECK(store.Lookup("big") == std::nullopt);
  CHECK(store.Lookup("big/d050") == std::nullopt);
  CHECK(store.Lookup("big/d050/e0500") == std::nullopt);
  CHECK(store.Lookup("dst/moved") == t.big);
  CHECK(store.Lookup("dst/moved/d050") == t.mid);
  CHECK(store.Lookup("dst/moved/d099/e0999") == t.leaf);
  CHECK(store.Lookup("dst") == t.dst_holding_big);
  CHECK(store.ListBelow("dst/moved", 1).size() == BigTree::kMid);
  CHECK(store.ListBelow("dst", 0).size() == BigTree::kMid * BigTree::kLeaf + BigTree::kMid + 1);
  CHECK(store.ListBelow("big", 0).empty());

  // And back out again, from the overlay (or through the map).
  t0 = std::chrono::steady_clock::now();
  REQUIRE(store.RenameDir("dst/moved", "back").ok());
  t1 = std::chrono::steady_clock::now();
  WARN(fmt::format("rename of the same subtree again ({}): {:.1f} ms", how, Millis(t1 - t0)));
  CHECK(store.Lookup("dst") == t.dst);
  CHECK(store.Lookup("back") == t.big);
  CHECK(store.Lookup("back/d000/e0000") == t.leaf);
  CHECK(store.Lookup("") == t.root);

  REQUIRE(Compactor(store, Fast(), index, "").CompactNow().ok());
  CHECK(store.rename_levels() == 0);
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->size() == BigTree::kEntries);
  CHECK((*reopened)->Lookup("back") == t.big);
  CHECK((*reopened)->Lookup("back/d042/e0042") == t.leaf);
  CHECK((*reopened)->Find("big") == std::nullopt);
  CHECK((*reopened)->Find("dst/moved") == std::nullopt);
  CHECK((*reopened)->Lookup("") == t.root);
}

TEST_CASE("size store moves a 100k-directory subtree with rename maps without touching it",
          "[store]") {
  // The point of rename maps is how long readers wait; timing is left to the WARN below (a
  // timed threshold would flake on a loaded machine). What is checked is the structure: a
  // rename writes the two ancestor chains and nothing of the subtree.
  const BigTree t;
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  SizeStore store(t.Write(index));       // the default threshold, far below 100k
  REQUIRE(store.MakeDir("other").ok());  // so the first rename freezes a non-empty overlay
  const Totals root{t.root.bytes, t.root.files, t.root.dirs + 1};
  const Totals dst_holding_empty{0, 0, 1};  // once "dst/moved" is exchanged with "other"

  // A reader beside the renames: the root never changes, and the names the subtree passes
  // through hold either nothing much or all of it.
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<int64_t> worst_ns{0};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    const Totals empty{};
    while (!stop.load()) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = store.Lookup("");
      const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count();
      if (ns > worst_ns.load()) worst_ns = ns;
      if (!r || !(*r == root)) bad++;
      auto o = store.Lookup("other");
      if (o && !(*o == empty || *o == t.big)) bad++;
      auto d = store.Lookup("dst");
      if (!d || !(*d == t.dst || *d == t.dst_holding_big || *d == dst_holding_empty)) bad++;
      reads++;
    }
  });
  while (reads.load() == 0) std::this_thread::yield();

  const size_t active_before = store.GetStats().active_entries;
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(store.RenameDir("big", "dst/moved").ok());
  auto t1 = std::chrono::steady_clock::now();
  auto stats = store.GetStats();
  CHECK(stats.rename_levels == 1);
  CHECK(store.rename_levels() == 1);
  CHECK(stats.frozen_entries == active_before);  // the active overlay, frozen as it was
  CHECK(stats.active_entries <= 2);              // "dst" and "": the chains, no subtree
  CHECK(store.Lookup("") == root);
  CHECK(store.Lookup("big") == std::nullopt);
  CHECK(store.Lookup("big/d050/e0500") == std::nullopt);
  CHECK(store.Lookup("dst") == t.dst_holding_big);
  CHECK(store.Lookup("dst/moved") == t.big);
  CHECK(store.Lookup("dst/moved/d099/e0999") == t.leaf);
  CHECK(store.ListBelow("dst/moved", 1).size() == BigTree::kMid);
  CHECK(store.ListBelow("big", 0).empty());

  // Exchanged with an empty directory, then renamed back to its first name.
  auto t2 = std::chrono::steady_clock::now();
  REQUIRE(store.ExchangeDirs("dst/moved", "other").ok());
  auto t3 = std::chrono::steady_clock::now();
  CHECK(store.rename_levels() == 2);
  CHECK(store.GetStats().active_entries <= 2);
  CHECK(store.Lookup("other") == t.big);
  CHECK(store.Lookup("other/d007/e0007") == t.leaf);
  CHECK(store.Lookup("dst/moved") == Totals{});
  CHECK(store.Lookup("dst") == dst_holding_empty);
  CHECK(store.Lookup("dst/moved/d007") == std::nullopt);
  REQUIRE(store.RenameDir("other", "big").ok());
  stop = true;
  reader.join();
  CHECK(store.rename_levels() == 3);
  CHECK(store.GetStats().active_entries <= 2);
  WARN(fmt::format(
      "{}-directory subtree through rename maps: rename {:.3f} ms, exchange {:.3f} ms; a "
      "reader's worst Lookup in {} reads: {:.3f} ms",
      BigTree::kEntries - 2, Millis(t1 - t0), Millis(t3 - t2), reads.load(),
      static_cast<double>(worst_ns.load()) / 1e6));
  CHECK(bad == 0);

  CHECK(store.Lookup("") == root);
  CHECK(store.Lookup("big") == t.big);
  CHECK(store.Lookup("big/d099/e0999") == t.leaf);
  CHECK(store.Lookup("other") == std::nullopt);
  CHECK(store.Lookup("dst") == dst_holding_empty);
  CHECK(store.ListBelow("big", 1).size() == BigTree::kMid);
  CHECK(store.ListBelow("", 0).size() == BigTree::kEntries);  // + dst/moved, - the root

  // Compaction folds the maps into the index.
  REQUIRE(Compactor(store, Fast(), index, "").CompactNow().ok());
  CHECK(store.rename_levels() == 0);
  CHECK(store.GetStats().frozen_entries == 0);
  CHECK_FALSE(store.dirty());
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->size() == BigTree::kEntries + 1);
  CHECK((*reopened)->Lookup("") == root);
  CHECK((*reopened)->Lookup("big/d042/e0042") == t.leaf);
  CHECK((*reopened)->Lookup("dst/moved") == Totals{});
  CHECK((*reopened)->Find("other") == std::nullopt);
  CHECK((*reopened)->Find("dst/moved/d000") == std::nullopt);
}

TEST_CASE("size store rename maps match a model through rename chains, exchanges and compactions",
          "[store]") {
  // 4: small subtrees rewritten in place and bigger ones mapped, mixed in one store.
  const size_t threshold = GENERATE(as<size_t>{}, kMapsAlways, 4, kMapsDefault);
  const unsigned seed = dtkfs::testing::TestSeed("size store rename maps");
  CAPTURE(seed, threshold);
  std::mt19937_64 rng(seed);
  Model model;
  GrowRandomTree(model, 80, 4, rng);
  ModelStore ms(model, threshold);
  const std::string& index = ms.index;
  FaultEnv& env = ms.env;
  auto& store = ms.store;
  auto& compactor = ms.compactor;
  std::set<std::string> ever;
  for (const auto& [d, f] : model.dirs) ever.insert(d);
  std::vector<std::pair<std::string, std::string>> renamed;  // (from, to), newest last

  struct {
    int chained = 0, back = 0, remade = 0, exchanges = 0, exchange_then_rename = 0;
    int freezes = 0, compactions = 0, failed = 0, reloads = 0;
    size_t most_maps = 0;
  } seen;

  // from -> a new name below parent, in both; "" when the name or the depth does not fit.
  auto rename_into = [&](const std::string& from, const std::string& parent) -> std::string {
    if (SameOrBelow(parent, from) || model.Height(from) + ModelDepth(parent) >= 8) return "";
    std::string to = NewChildName(model, parent, rng);
    if (to.empty()) return "";
    Status s = store->RenameDir(from, to);
    INFO(fmt::format("rename '{}' -> '{}': {}", from, to, s.ToString()));
    REQUIRE(s.ok());
    model.MoveTree(from, to);
    renamed.emplace_back(from, to);
    return to;
  };
  // The newest recorded rename that fits, or nullptr.
  auto find_renamed = [&](const std::function<bool(const std::string&, const std::string&)>& fits)
      -> const std::pair<std::string, std::string>* {
    for (auto it = renamed.rbegin(); it != renamed.rend() && it - renamed.rbegin() < 30; ++it)
      if (fits(it->first, it->second)) return &*it;
    return nullptr;
  };

  const int kOps = 1500;
  for (int op = 0; op < kOps; ++op) {
    CAPTURE(op);
    auto dirs = model.DirList();
    const std::string dir = dirs[rng() % dirs.size()];
    const std::string parent = dirs[rng() % dirs.size()];
    const int kind = static_cast<int>(rng() % 100);
    std::string what;
    if (kind < 12) {  // create a file
      const uint64_t size = rng() % 10000;
      what = fmt::format("create {} bytes in '{}'", size, dir);
      REQUIRE(store->AddDelta(dir, Delta{static_cast<int64_t>(size), 1, 0}).ok());
      model.dirs[dir].push_back(size);
    } else if (kind < 18) {  // remove a file
      auto& files = model.dirs[dir];
      if (files.empty()) continue;
      what = fmt::format("unlink {} bytes in '{}'", files.back(), dir);
      REQUIRE(store->AddDelta(dir, Delta{-static_cast<int64_t>(files.back()), -1, 0}).ok());
      files.pop_back();
    } else if (kind < 30) {  // mkdir
      if (model.dirs.size() > 200 || ModelDepth(dir) >= 6) continue;
      const std::string p = NewChildName(model, dir, rng);
      if (p.empty()) continue;
      what = fmt::format("mkdir '{}'", p);
      REQUIRE(store->MakeDir(p).ok());
      model.dirs[p];
    } else if (kind < 36) {  // rmdir of a directory or a subtree
      if (dir.empty() || model.dirs.size() < 30) continue;
      what = fmt::format("rmdir '{}'", dir);
      REQUIRE(store->RemoveDir(dir).ok());
      model.RemoveTree(dir);
    } else if (kind < 50) {  // rename
      if (dir.empty()) continue;
      const std::string to = rename_into(dir, parent);
      if (to.empty()) continue;
      what = fmt::format("rename '{}' -> '{}'", dir, to);
    } else if (kind < 58) {  // rename again a subtree renamed before: a chain of maps
      auto* r = find_renamed(
          [&](const std::string&, const std::string& to) { return model.dirs.count(to) != 0; });
      if (r == nullptr) continue;
      const std::string from = r->second;
      const std::string to = rename_into(from, parent);
      if (to.empty()) continue;
      what = fmt::format("rename again '{}' -> '{}'", from, to);
      seen.chained++;
    } else if (kind < 64) {  // rename back to the first name
      auto* r = find_renamed([&](const std::string& from, const std::string& to) {
        return model.dirs.count(to) != 0 && model.dirs.count(from) == 0 &&
               model.dirs.count(ModelParent(from)) != 0 && !SameOrBelow(from, to) &&
               model.Height(to) + ModelDepth(from) <= 8;
      });
      if (r == nullptr) continue;
      const auto [from, to] = *r;
      what = fmt::format("rename back '{}' -> '{}'", to, from);
      REQUIRE(store->RenameDir(to, from).ok());
      model.MoveTree(to, from);
      renamed.emplace_back(to, from);
      seen.back++;
    } else if (kind < 70) {  // a directory made again where one was renamed away
      auto* r = find_renamed([&](const std::string& from, const std::string&) {
        return model.dirs.count(from) == 0 && model.dirs.count(ModelParent(from)) != 0;
      });
      if (r == nullptr) continue;
      const std::string p = r->first;
      const std::string child = p + "/" + kNames[rng() % kNames.size()];
      what = fmt::format("mkdir again '{}' and '{}'", p, child);
      REQUIRE(store->MakeDir(p).ok());
      REQUIRE(store->MakeDir(child).ok());
      REQUIRE(store->AddDelta(child, Delta{11, 1, 0}).ok());
      model.dirs[p];
      model.dirs[child].push_back(11);
      seen.remade++;
    } else if (kind < 80) {  // exchange, and now and then rename one side straight after
      const std::string& a = dir;
      const std::string& b = parent;
      if (a.empty() || b.empty() || SameOrBelow(a, b) || SameOrBelow(b, a)) continue;
      if (model.Height(a) + ModelDepth(b) > 8 || model.Height(b) + ModelDepth(a) > 8) continue;
      what = fmt::format("exchange '{}' and '{}'", a, b);
      REQUIRE(store->ExchangeDirs(a, b).ok());
      model.ExchangeTrees(a, b);
      seen.exchanges++;
      if (rng() % 2 == 0) {
        const auto now = model.DirList();  // the exchange moved some of dirs
        const std::string to = rename_into(a, now[rng() % now.size()]);
        if (!to.empty()) {
          what += fmt::format(", then rename '{}' -> '{}'", a, to);
          seen.exchange_then_rename++;
        }
      }
    } else if (kind < 86) {  // a freeze with no compaction after it (as a failed one leaves)
      what = "freeze";
      store->Freeze();
      seen.freezes++;
    } else if (kind < 94) {  // compaction; a quarter fail at a random step
      const bool fail = rng() % 4 == 0;
      env.reset_steps();
      if (fail) env.fail_at(static_cast<int>(rng() % 10), EIO);
      Status s = compactor->CompactNow();
      env.clear();
      what = fmt::format("compaction (fail injected: {}) -> {}", fail, s.ToString());
      if (!fail) REQUIRE(s.ok());
      seen.compactions++;
      if (!s.ok()) seen.failed++;
      if (s.ok()) {
        CHECK(store->rename_levels() == 0);  // all folded in: nothing ran beside it
        CHECK(store->GetStats().frozen_entries == 0);
      }
      if (s.ok() && !store->dirty()) {
        auto reopened = IndexReader::Open(Env::Default(), index);
        REQUIRE(reopened.ok());
        SizeStore cold(*reopened);
        INFO("cold reload after " << what);
        REQUIRE(Diff(cold, model, ever, rng) == "");
        seen.reloads++;
        if (rng() % 2) {
          compactor.reset();
          store = std::make_unique<SizeStore>(*reopened);
          store->SetRenameMapThreshold(threshold);
          compactor = std::make_unique<Compactor>(*store, env, index, "");
        }
      }
    } else {  // refused, changing nothing
      what = "refused exchanges";
      CHECK_FALSE(store->ExchangeDirs("", dir).ok());
      CHECK_FALSE(store->ExchangeDirs(dir, "no/such").ok());
      for (const auto& d : dirs) {
        if (d != dir && SameOrBelow(d, dir)) {
          CHECK_FALSE(store->ExchangeDirs(dir, d).ok());
          CHECK_FALSE(store->ExchangeDirs(d, dir).ok());
          break;
        }
      }
      if (!dir.empty()) CHECK_FALSE(store->ExchangeDirs(dir, dir).ok());
    }
    for (const auto& [d, f] : model.dirs) ever.insert(d);
    seen.most_maps = std::max(seen.most_maps, store->rename_levels());
    INFO("after " << what);
    REQUIRE(Diff(*store, model, ever, rng) == "");
  }
  INFO(fmt::format(
      "renames again {}, back {}, names made again {}, exchanges {} ({} then renamed), "
      "freezes {}, compactions {} ({} failed), cold reloads {}, most rename maps at once {}, "
      "{} dirs at the end",
      seen.chained, seen.back, seen.remade, seen.exchanges, seen.exchange_then_rename, seen.freezes,
      seen.compactions, seen.failed, seen.reloads, seen.most_maps, model.dirs.size()));
  CHECK(seen.chained > 0);
  CHECK(seen.back > 0);
  CHECK(seen.remade > 0);
  CHECK(seen.exchanges > 0);
  CHECK(seen.exchange_then_rename > 0);
  CHECK(seen.compactions > 10);
  CHECK(seen.failed > 0);
  if (threshold == kMapsAlways) CHECK(seen.most_maps >= 3);
  if (threshold == kMapsDefault) CHECK(seen.most_maps == 0);  // every subtree is small
  REQUIRE(compactor->CompactNow().ok());
  CHECK(store->rename_levels() == 0);
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  SizeStore cold(*reopened);
  REQUIRE(Diff(cold, model, ever, rng) == "");
}
