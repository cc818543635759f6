// Power loss at every step of writing an index (a compaction, a scan's install), simulated
// with PowerLossEnv (tests/support/power_loss_env.h): after the cut, a fresh Env must find an
// index that opens and is wholly the old one or wholly the new one, with exactly the old or
// the new totals; once the call has returned success, only the new one.
#include <fmt/format.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "env/install_file.h"
#include "index/index_builder.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "index/index_reader.h"
#include "scan/scanner.h"
#include "store/compactor.h"
#include "store/size_store.h"
#include "support/env_wrappers.h"
#include "support/files.h"
#include "support/power_loss_env.h"
#include "support/store_views.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using dtkfs::testing::PowerLossEnv;
using dtkfs::testing::ReadFileBytes;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

using dtkfs::testing::LiveView;
using dtkfs::testing::ReaderView;
using dtkfs::testing::ScanView;
using dtkfs::testing::View;

namespace {

Env& Fast() { return dtkfs::testing::NoSyncDefault(); }

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}: {}\n", i, v[i]);
  return out;
}

constexpr int kBulk = 5000;  // enough entries that the entry table is written in pieces

// A base index on disk (written before the power-loss env exists, so durable), a store over
// it opened cold, and edits of every kind in its overlay.
struct Scenario {
  TempDir dir;
  std::string index = dir / "index.mmap";
  std::string source = dir.path();
  View base_view;
  std::string base_bytes;
  std::unique_ptr<SizeStore> store;
  View live_view;

  Scenario() {
    base_view[""] = Totals{0, 0, 0};
    for (const char* d : {"keep", "keep/a", "gone", "gone/x", "mv", "mv/c", "bulk"})
      base_view[d] = Totals{0, 0, 0};
    for (int i = 0; i < kBulk; ++i) base_view[fmt::format("bulk/n{:04}", i)] = Totals{1, 1, 0};
    // Consistent recursive totals: bulk's and the root's from their children.
    base_view["bulk"] = Totals{kBulk, kBulk, kBulk};
    base_view["keep"] = Totals{0, 0, 1};
    base_view["gone"] = Totals{0, 0, 1};
    base_view["mv"] = Totals{0, 0, 1};
    base_view[""] = Totals{kBulk, kBulk, kBulk + 7};
    IndexMeta meta;
    meta.generation = 1;
    meta.source_root = "/srv/tree";
    REQUIRE(WriteIndex(Fast(), index, meta, [&](const EntryEmitter& emit) {
              for (const auto& [p, t] : base_view) DTKFS_RETURN_IF_ERROR(emit(p, t));
              return Status::Ok();
            }).ok());
    base_bytes = ReadFileBytes(index);
    auto r = IndexReader::Open(Env::Default(), index);
    REQUIRE(r.ok());
    REQUIRE(ReaderView(**r) == base_view);
    store = std::make_unique<SizeStore>(*r);
    REQUIRE(store->MakeDir("new").ok());
    REQUIRE(store->MakeDir("new/sub").ok());
    REQUIRE(store->AddDelta("new/sub", Delta{500, 2, 0}).ok());
    REQUIRE(store->AddDelta("keep/a", Delta{10, 1, 0}).ok());
    REQUIRE(store->RemoveDir("gone").ok());
    REQUIRE(store->RenameDir("mv", "keep/mv2").ok());
    REQUIRE(store->RemoveDir("bulk/n0002").ok());
    live_view = LiveView(*store);
    REQUIRE(live_view != base_view);
  }
};

// After a power loss: the index at path opens through a fresh Env, and is byte for byte one
// of the candidates; returns which (-1: none).
int WhichIndex(const std::string& path, const std::vector<std::string>& candidates) {
  auto r = IndexReader::Open(Env::Default(), path);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const std::string bytes = ReadFileBytes(path);
  for (size_t i = 0; i < candidates.size(); ++i)
    if (bytes == candidates[i]) return static_cast<int>(i);
  return -1;
}

}  // namespace

TEST_CASE("power loss at every step of a compaction leaves the old or the new index", "[power]") {
  // Unsynced data dropped, torn, or kept whole: the index is synced before it is named, so
  // it must make no difference.
  const auto unsynced = GENERATE(PowerLossEnv::Unsynced::kDrop, PowerLossEnv::Unsynced::kTornPrefix,
                                 PowerLossEnv::Unsynced::kKeep);
  INFO("unsynced data: " << static_cast<int>(unsynced));
  // A clean run: its steps, and the file it makes.
  std::vector<std::string> clean_log;
  std::string new_bytes;
  {
    Scenario s;
    PowerLossEnv env(Fast());
    Compactor compactor(*s.store, env, s.index, s.source);
    REQUIRE(compactor.CompactNow().ok());
    clean_log = env.log();
    CHECK(env.NotDurable().empty());
    REQUIRE(env.SimulatePowerLoss().ok());
    new_bytes = ReadFileBytes(s.index);
    REQUIRE(new_bytes != s.base_bytes);
    REQUIRE(WhichIndex(s.index, {new_bytes}) == 0);
  }
  INFO("clean run:\n" << Join(clean_log));
  REQUIRE(clean_log.size() >= 8);
  REQUIRE(clean_log.front().rfind("syncfs ", 0) == 0);
  REQUIRE(clean_log.back().rfind("syncdir ", 0) == 0);
  const int steps = static_cast<int>(clean_log.size());
  for (int n = 0; n <= steps; ++n) {
    INFO(fmt::format("power cut at step {} ({})", n, n < steps ? clean_log[n] : "none"));
    Scenario s;
    PowerLossEnv env(Fast());
    env.SetUnsynced(unsynced, static_cast<uint64_t>(n));
    Status st;
    {
      Compactor compactor(*s.store, env, s.index, s.source);
      env.CutPowerAt(n);
      st = compactor.CompactNow();
      CHECK(st.ok() == (n == steps));
      CHECK(env.power_cut() == (n < steps));
    }
    REQUIRE(env.SimulatePowerLoss().ok());
    // Only the disk counts now, read through a fresh Env.
    const int which = WhichIndex(s.index, {s.base_bytes, new_bytes});
    REQUIRE(which >= 0);
    if (st.ok()) CHECK(which == 1);  // a success is durable
    // The new index is visible from the rename on, but durable only once its directory is
    // synced: a cut at that last step must bring the old one back.
    if (n == steps - 1) CHECK(which == 0);
    auto reopened = IndexReader::Open(Env::Default(), s.index);
    REQUIRE(reopened.ok());
    SizeStore restarted(*reopened);
    CHECK(LiveView(restarted) == (which == 1 ? s.live_view : s.base_view));

    // A restarted daemon compacts over what the cut left (a stale .tmp too), and that
    // compaction survives the next power loss.
    REQUIRE(restarted.MakeDir("after").ok());
    const View want = LiveView(restarted);
    Compactor again(restarted, env, s.index, s.source);
    REQUIRE(again.CompactNow().ok());
    REQUIRE(env.SimulatePowerLoss().ok());
    auto final_index = IndexReader::Open(Env::Default(), s.index);
    REQUIRE(final_index.ok());
    CHECK(ReaderView(**final_index) == want);
    CHECK_FALSE(Exists(TempPathFor(s.index)));
  }
}

namespace {

// A small source tree; grow() adds to it, so a second scan differs.
struct Source {
  TempDir root;
  Source() {
    for (const char* d : {"a", "a/b", "c"}) REQUIRE(::mkdir((root / d).c_str(), 0755) == 0);
    WriteFileBytes(root / "a/f", std::string(100, 'x'));
    WriteFileBytes(root / "a/b/g", std::string(30, 'y'));
  }
  void Grow() {
    REQUIRE(::mkdir((root / "c/d").c_str(), 0755) == 0);
    WriteFileBytes(root / "c/d/h", std::string(7, 'z'));
    WriteFileBytes(root / "a/f2", std::string(11, 'w'));
  }
  ScanResult Scan() {
    auto scan = ScanTree(root.path(), "", ScanOptions{});
    REQUIRE(scan.ok());
    return std::move(scan).value();
  }
};

}  // namespace

TEST_CASE("power loss at every step of a scan's install leaves the old or the new index",
          "[power]") {
  Source src;
  const ScanResult old_scan = src.Scan();
  src.Grow();
  const ScanResult new_scan = src.Scan();
  REQUIRE(ScanView(old_scan) != ScanView(new_scan));
  TempDir index_dir;
  const IndexTarget target{src.root.path(), index_dir / "index.mmap"};

  SECTION("over an existing index") {
    REQUIRE(InstallScan(Fast(), target, old_scan, 1).ok());
    const std::string old_bytes = ReadFileBytes(target.index);
    PowerLossEnv env(Fast());
    REQUIRE(InstallScan(env, target, new_scan, 2).ok());
    const std::vector<std::string> clean_log = env.log();
    REQUIRE(env.SimulatePowerLoss().ok());
    const std::string new_bytes = ReadFileBytes(target.index);
    INFO("clean run:\n" << Join(clean_log));
    const int steps = static_cast<int>(clean_log.size());
    for (int n = 0; n <= steps; ++n) {
      INFO(fmt::format("power cut at step {} ({})", n, n < steps ? clean_log[n] : "none"));
      WriteFileBytes(target.index, old_bytes);  // not through env: durable
      env.CutPowerAt(n);
      const Status st = InstallScan(env, target, new_scan, 2);
      CHECK(st.ok() == (n == steps));
      REQUIRE(env.SimulatePowerLoss().ok());
      const int which = WhichIndex(target.index, {old_bytes, new_bytes});
      REQUIRE(which >= 0);
      if (st.ok()) CHECK(which == 1);
      auto r = IndexReader::Open(Env::Default(), target.index);
      REQUIRE(r.ok());
      CHECK(ReaderView(**r) == ScanView(which == 1 ? new_scan : old_scan));
      CHECK((*r)->generation() == (which == 1 ? 2u : 1u));
    }
  }

  SECTION("the first index: none, or the new one") {
    PowerLossEnv env(Fast());
    REQUIRE(InstallScan(env, target, new_scan, 1).ok());
    const std::vector<std::string> clean_log = env.log();
    REQUIRE(env.SimulatePowerLoss().ok());
    const std::string new_bytes = ReadFileBytes(target.index);
    INFO("clean run:\n" << Join(clean_log));
    const int steps = static_cast<int>(clean_log.size());
    for (int n = 0; n <= steps; ++n) {
      INFO(fmt::format("power cut at step {} ({})", n, n < steps ? clean_log[n] : "none"));
      ::unlink(target.index.c_str());
      env.CutPowerAt(n);
      const Status st = InstallScan(env, target, new_scan, 1);
      REQUIRE(env.SimulatePowerLoss().ok());
      if (!Exists(target.index)) {
        CHECK_FALSE(st.ok());
        continue;
      }
      CHECK(WhichIndex(target.index, {new_bytes}) == 0);
      CHECK(st.ok() == (n == steps));
    }
  }
}

TEST_CASE("power loss at every step of WriteIndex over a stale tmp file", "[power]") {
  // A crash may leave INDEX.tmp behind; the next install removes it first (an unsynced
  // removal that a power cut brings back), which must not make the index any less whole.
  TempDir dir;
  const std::string index = dir / "index.mmap";
  auto write = [&](Env& env, uint64_t generation, int entries) {
    IndexMeta meta;
    meta.generation = generation;
    return WriteIndex(env, index, meta, [&](const EntryEmitter& emit) {
      DTKFS_RETURN_IF_ERROR(emit("", Totals{0, 0, static_cast<uint64_t>(entries)}));
      for (int i = 0; i < entries; ++i)
        DTKFS_RETURN_IF_ERROR(emit(fmt::format("d{:05}", i), Totals{}));
      return Status::Ok();
    });
  };
  REQUIRE(write(Fast(), 1, 10).ok());
  const std::string old_bytes = ReadFileBytes(index);
  WriteFileBytes(TempPathFor(index), "half of an index");
  PowerLossEnv env(Fast());
  REQUIRE(write(env, 2, 6000).ok());
  const std::vector<std::string> clean_log = env.log();
  REQUIRE(env.SimulatePowerLoss().ok());
  const std::string new_bytes = ReadFileBytes(index);
  INFO("clean run:\n" << Join(clean_log));
  const int steps = static_cast<int>(clean_log.size());
  for (int n = 0; n <= steps; ++n) {
    INFO(fmt::format("power cut at step {} ({})", n, n < steps ? clean_log[n] : "none"));
    WriteFileBytes(index, old_bytes);
    WriteFileBytes(TempPathFor(index), "half of an index");
    env.CutPowerAt(n);
    const Status st = write(env, 2, 6000);
    REQUIRE(env.SimulatePowerLoss().ok());
    const int which = WhichIndex(index, {old_bytes, new_bytes});
    REQUIRE(which >= 0);
    if (st.ok()) CHECK(which == 1);
  }
}

TEST_CASE("regression: an index directory made by LocateIndex survives a power loss", "[power]") {
  // `dtkfs scan` into a new index directory reported success, but the directory's own name
  // was never synced into its parent: a power cut could lose the whole index directory.
  Source src;
  TempDir state;
  const std::string wanted = state / "cache/dtkfs/index.mmap";
  PowerLossEnv env(Fast());
  auto target = LocateIndex(env, src.root.path(), wanted, "");
  REQUIRE(target.ok());
  REQUIRE(InstallScan(env, *target, src.Scan(), 1).ok());
  CHECK(env.NotDurable().empty());
  REQUIRE(env.SimulatePowerLoss().ok());
  REQUIRE(Exists(target->index));
  auto r = IndexReader::Open(Env::Default(), target->index);
  REQUIRE(r.ok());
  CHECK(ReaderView(**r) == ScanView(src.Scan()));
}
