// SizeStore against a model: random trees, random edits, compactions (some of them failing
// on purpose, so frozen overlays pile up), readers running beside a writer, and the rename
// of a 100k-directory subtree.
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
// order, so subtree ranges that are off by one show up: "a-" < "a/x" < "a0".
const std::vector<std::string> kNames = {"a", "a-", "a0", "b", "b.c", "\x01", "\xff", "z z"};

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

}  // namespace

TEST_CASE("size store matches a from-scratch model through random edits and compactions",
          "[store]") {
  const uint64_t seed = SeedFromEnvOr(GENERATE(1u, 2u, 3u, 4u));
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  TempDir tmp;
  const std::string index = tmp / "index.mmap";

  Model model;
  GrowRandomTree(model, 120, 5, rng);
  REQUIRE(WriteModelIndex(index, model.Totals()).ok());
  auto base = IndexReader::Open(Env::Default(), index);
  REQUIRE(base.ok());
  auto store = std::make_unique<SizeStore>(*base);

  FaultEnv env(Fast());
  auto compactor = std::make_unique<Compactor>(*store, env, index, "");
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
        if (rng() % 2) {  // continue from the cold store, as a restarted daemon would
          compactor.reset();
          store = std::make_unique<SizeStore>(*reopened);
          compactor = std::make_unique<Compactor>(*store, env, index, "");
        }
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
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  Model model;
  GrowRandomTree(model, 150, 5, rng, /*file_size=*/1000);
  REQUIRE(WriteModelIndex(index, model.Totals()).ok());
  auto base = IndexReader::Open(Env::Default(), index);
  REQUIRE(base.ok());
  SizeStore store(*base);
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

TEST_CASE("size store renames a 100k-directory subtree", "[store]") {
  // big/dNNN/eNNNN: 100 x 1000 leaf directories, each holding one 7-byte file.
  constexpr uint64_t kMid = 100, kLeaf = 1000, kFile = 7;
  const Totals leaf{kFile, 1, 0};
  const Totals mid{kFile * kLeaf, kLeaf, kLeaf};
  const Totals big{kFile * kLeaf * kMid, kLeaf * kMid, kMid + kMid * kLeaf};
  const Totals dst{};
  const Totals root{big.bytes, big.files, big.dirs + 2};
  TempDir tmp;
  const std::string index = tmp / "index.mmap";
  IndexMeta meta;
  REQUIRE(WriteIndex(Fast(), index, meta, [&](const EntryEmitter& emit) {
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
  auto base = IndexReader::Open(Env::Default(), index);
  REQUIRE(base.ok());
  REQUIRE((*base)->size() == 2 + kMid + kMid * kLeaf + 1);
  SizeStore store(*base);

  // A reader beside the rename: the root never changes, and "dst" holds either nothing or
  // the whole subtree.
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto r = store.Lookup("");
      auto d = store.Lookup("dst");
      if (!r || !(*r == root)) bad++;
      if (!d || !(*d == dst || *d == Totals{big.bytes, big.files, big.dirs + 1})) bad++;
    }
  });

  auto t0 = std::chrono::steady_clock::now();
  Status s = store.RenameDir("big", "dst/moved");
  auto t1 = std::chrono::steady_clock::now();
  stop = true;
  reader.join();
  REQUIRE(s.ok());
  WARN(fmt::format("rename of a {}-directory subtree (base -> overlay): {:.1f} ms",
                   kMid * kLeaf + kMid + 1,
                   std::chrono::duration<double, std::milli>(t1 - t0).count()));
  CHECK(bad == 0);
  CHECK(store.Lookup("") == root);
  CHECK(store.Lookup("big") == std::nullopt);
  CHECK(store.Lookup("big/d050") == std::nullopt);
  CHECK(store.Lookup("big/d050/e0500") == std::nullopt);
  CHECK(store.Lookup("dst/moved") == big);
  CHECK(store.Lookup("dst/moved/d050") == mid);
  CHECK(store.Lookup("dst/moved/d099/e0999") == leaf);
  CHECK(store.Lookup("dst") == (Totals{big.bytes, big.files, big.dirs + 1}));
  CHECK(store.ListBelow("dst/moved", 1).size() == kMid);
  CHECK(store.ListBelow("dst", 0).size() == kMid * kLeaf + kMid + 1);
  CHECK(store.ListBelow("big", 0).empty());

  // And back out again, now that the whole subtree lives in the overlay.
  t0 = std::chrono::steady_clock::now();
  REQUIRE(store.RenameDir("dst/moved", "back").ok());
  t1 = std::chrono::steady_clock::now();
  WARN(fmt::format("rename of the same subtree (overlay -> overlay): {:.1f} ms",
                   std::chrono::duration<double, std::milli>(t1 - t0).count()));
  CHECK(store.Lookup("dst") == dst);
  CHECK(store.Lookup("back") == big);
  CHECK(store.Lookup("back/d000/e0000") == leaf);
  CHECK(store.Lookup("") == root);

  REQUIRE(Compactor(store, Fast(), index, "").CompactNow().ok());
  auto reopened = IndexReader::Open(Env::Default(), index);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->size() == 2 + kMid + kMid * kLeaf + 1);
  CHECK((*reopened)->Lookup("back") == big);
  CHECK((*reopened)->Lookup("back/d042/e0042") == leaf);
  CHECK((*reopened)->Find("big") == std::nullopt);
  CHECK((*reopened)->Find("dst/moved") == std::nullopt);
  CHECK((*reopened)->Lookup("") == root);
}
