// Compactor: the three persistence bugs of the seeds, pinned by name, plus coalescing,
// no-op runs, generations, the report, and rename maps folded into the index.
//
//   seed 000: a save that reported success and wrote nothing after a cold map load.
//   seed 003: a failed save that left memory ahead of disk.
//   seed 002: a compaction that lost the edits made while it ran.
#include "store/compactor.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "env/install_file.h"
#include "index/index_builder.h"
#include "index/index_reader.h"
#include "store/size_store.h"
#include "support/env_wrappers.h"
#include "support/fault_env.h"
#include "support/files.h"
#include "support/store_views.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using dtkfs::testing::FaultEnv;
using dtkfs::testing::ReadFileBytes;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

using dtkfs::testing::LiveView;
using dtkfs::testing::ReaderView;
using dtkfs::testing::ScanView;
using dtkfs::testing::View;

namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// What a cold start from the file on disk would see, through a new reader.
View FileView(const std::string& path) {
  auto r = IndexReader::Open(Env::Default(), path);
  REQUIRE(r.ok());
  return ReaderView(**r);
}

// "" or the first path where Lookup disagrees with want, or a gone path that is still there.
std::string Diff(const SizeStore& store, const View& want, const std::vector<std::string>& gone) {
  for (const auto& [p, t] : want) {
    auto got = store.Lookup(p);
    if (!got || !(*got == t)) return fmt::format("Lookup('{}') differs", p);
  }
  for (const auto& p : gone)
    if (store.Lookup(p)) return fmt::format("Lookup('{}') found a removed path", p);
  if (LiveView(store) != want) return "the listing differs";
  return "";
}

using dtkfs::testing::ForwardingEnv;
using dtkfs::testing::NoSyncEnv;

Env& Fast() { return dtkfs::testing::NoSyncDefault(); }

// Holds the first SyncFilesystem (the first step of a compaction after the freeze) until
// Release(), and sleeps before every write, so a test can act while a compaction is under
// way.
class SlowEnv final : public ForwardingEnv {
 public:
  SlowEnv(Env& base, std::chrono::milliseconds write_delay)
      : ForwardingEnv(base), write_delay_(write_delay) {}

  void WaitEntered() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return entered_; });
  }
  void Release() {
    std::lock_guard l(mu_);
    released_ = true;
    cv_.notify_all();
  }

  Status SyncFilesystem(const std::string& path) override {
    {
      std::unique_lock l(mu_);
      if (!entered_) {
        entered_ = true;
        cv_.notify_all();
        cv_.wait(l, [&] { return released_; });
      }
    }
    return ForwardingEnv::SyncFilesystem(path);
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    auto f = ForwardingEnv::NewWritableFile(path, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new SlowFile(std::move(f).value(), write_delay_));
  }

 private:
  class SlowFile final : public WritableFile {
   public:
    SlowFile(std::unique_ptr<WritableFile> base, std::chrono::milliseconds delay)
        : base_(std::move(base)), delay_(delay) {}
    Status WriteAt(uint64_t offset, std::string_view data) override {
      std::this_thread::sleep_for(delay_);
      return base_->WriteAt(offset, data);
    }
    Status Sync() override { return base_->Sync(); }
    Status Close() override { return base_->Close(); }
    const std::string& path() const override { return base_->path(); }

   private:
    std::unique_ptr<WritableFile> base_;
    std::chrono::milliseconds delay_;
  };

  const std::chrono::milliseconds write_delay_;
  std::mutex mu_;  // guards entered_, released_
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

constexpr int kBulk = 5000;  // enough entries that the entry table is written in pieces

// The base index of every test: a few small subtrees to edit, and "bulk" to make the file
// big enough that writing it takes several steps.
View BaseTree() {
  // directory -> {bytes, files} directly in it
  std::map<std::string, std::pair<uint64_t, uint64_t>> direct = {
      {"", {0, 0}},      {"keep", {100, 1}},  {"keep/a", {200, 2}},  {"keep/a/b", {300, 3}},
      {"gone", {10, 1}}, {"gone/x", {20, 2}}, {"gone/x/y", {30, 3}}, {"mv", {1, 1}},
      {"mv/c", {2, 1}},  {"mv/c/d", {3, 1}},  {"dst", {0, 0}},       {"bulk", {0, 0}},
  };
  for (int i = 0; i < kBulk; ++i) direct[fmt::format("bulk/n{:04}", i)] = {1, 1};
  View v;
  for (const auto& [d, bf] : direct) {
    std::string a = d;
    while (true) {
      v[a].bytes += bf.first;
      v[a].files += bf.second;
      if (a != d) v[a].dirs += 1;
      if (a.empty()) break;
      size_t slash = a.rfind('/');
      a = slash == std::string::npos ? std::string() : a.substr(0, slash);
    }
  }
  return v;
}

// The edits every scenario makes after the cold load: new directories and files, a change
// deep in the base, a removed subtree, a renamed subtree, a directory that lives and dies
// in the overlay only, and a base directory removed and made again.
void ApplyEdits(SizeStore& store) {
  REQUIRE(store.MakeDir("new").ok());
  REQUIRE(store.MakeDir("new/sub").ok());
  REQUIRE(store.AddDelta("new/sub", Delta{500, 2, 0}).ok());
  REQUIRE(store.AddDelta("keep/a", Delta{10, 1, 0}).ok());
  REQUIRE(store.AddDelta("keep/a/b", Delta{-300, -3, 0}).ok());
  REQUIRE(store.RemoveDir("gone").ok());
  REQUIRE(store.RenameDir("mv", "dst/mv2").ok());
  REQUIRE(store.MakeDir("tmpdir").ok());
  REQUIRE(store.RemoveDir("tmpdir").ok());
  REQUIRE(store.RemoveDir("bulk/n0001").ok());
  REQUIRE(store.MakeDir("bulk/n0001").ok());
  REQUIRE(store.RemoveDir("bulk/n0002").ok());
}
const std::vector<std::string> kGone = {"gone", "gone/x", "gone/x/y", "mv",
                                        "mv/c", "mv/c/d", "tmpdir",   "bulk/n0002"};

// A base index on disk, opened cold, a store over it, and the edits above applied.
std::vector<LinkRecord> BaseLinks() {
  return {{{1, 10}, 4, {"a/x", "mv/y"}}, {{1, 12}, 9, {"a/p", "a/q", "keep/r"}}};
}

struct Scenario {
  TempDir dir;
  std::string index = dir / "index.mmap";
  std::string source = dir.path();  // the "source tree" whose filesystem is synced
  View base_view = BaseTree();
  std::string base_bytes;
  std::shared_ptr<const IndexReader> base;
  std::unique_ptr<SizeStore> store;
  View live_view;  // the store after the edits

  Scenario() {
    IndexMeta meta;
    meta.generation = 1;
    meta.source_root = "/srv/tree";
    meta.link_table = EncodeLinkTable(BaseLinks());
    REQUIRE(WriteIndex(Fast(), index, meta, [&](const EntryEmitter& emit) {
              for (const auto& [p, t] : base_view) DTKFS_RETURN_IF_ERROR(emit(p, t));
              return Status::Ok();
            }).ok());
    base_bytes = ReadFileBytes(index);
    auto r = IndexReader::Open(Env::Default(), index);  // the cold map load
    REQUIRE(r.ok());
    base = *r;
    REQUIRE(ReaderView(*base) == base_view);
    store = std::make_unique<SizeStore>(base);
    ApplyEdits(*store);
    live_view = LiveView(*store);
    REQUIRE(live_view != base_view);
    REQUIRE(store->dirty());
  }
};

// "write /tmp/x/index.mmap.tmp" -> "write" (the paths differ from scenario to scenario).
std::string Verb(const std::string& step) { return step.substr(0, step.find(' ')); }

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}: {}\n", i, v[i]);
  return out;
}

}  // namespace

TEST_CASE("seed-000: cold map load, edits, compact, reload keeps edits and drops deleted paths",
          "[compact]") {
  Scenario s;
  // Spot checks that the edits are what the live view says.
  CHECK(s.live_view.at("new/sub") == (Totals{500, 2, 0}));
  CHECK(s.live_view.at("dst/mv2/c/d") == (Totals{3, 1, 0}));
  CHECK(s.live_view.count("gone") == 0);

  Compactor compactor(*s.store, Env::Default(), s.index, s.source);
  REQUIRE(compactor.CompactNow().ok());
  // A success must mean the file changed (the seed's save wrote nothing and said ok).
  REQUIRE(ReadFileBytes(s.index) != s.base_bytes);
  CHECK_FALSE(Exists(TempPathFor(s.index)));

  // A new reader over the file, as a cold start would open it.
  auto reloaded = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(reloaded.ok());
  CHECK((*reloaded)->generation() == 2);
  CHECK((*reloaded)->source_root() == "/srv/tree");
  CHECK(ReaderView(**reloaded) == s.live_view);
  for (const auto& p : kGone) {
    INFO(p);
    CHECK_FALSE((*reloaded)->Find(p).has_value());
  }
  SizeStore cold(*reloaded);
  CHECK(Diff(cold, s.live_view, kGone) == "");
  // The live store still shows the same, now from the new base.
  CHECK_FALSE(s.store->dirty());
  CHECK(s.store->GetStats().generation == 2);
  CHECK(Diff(*s.store, s.live_view, kGone) == "");
}

TEST_CASE("seed-003: a failed save leaves memory and disk exactly as before", "[compact]") {
  // A clean run first: how many steps a compaction takes, their names, and the file it makes.
  int steps = 0;
  std::vector<std::string> clean_log;
  std::string new_bytes;
  {
    Scenario s;
    FaultEnv env(Fast());
    Compactor compactor(*s.store, env, s.index, s.source);
    REQUIRE(compactor.CompactNow().ok());
    steps = env.steps();
    clean_log = env.log();
    new_bytes = ReadFileBytes(s.index);
    REQUIRE(FileView(s.index) == s.live_view);
  }
  INFO("clean run:\n" << Join(clean_log));
  int rename_step = -1;
  for (int i = 0; i < steps; ++i)
    if (clean_log[i].rfind("rename ", 0) == 0) rename_step = i;
  REQUIRE(rename_step > 0);
  REQUIRE(clean_log.front().rfind("syncfs ", 0) == 0);
  REQUIRE(clean_log.back().rfind("syncdir ", 0) == 0);
  REQUIRE(std::count_if(clean_log.begin(), clean_log.end(),
                        [](const std::string& s) { return s.rfind("write ", 0) == 0; }) >= 3);

  SECTION("an error at any step") {
    for (int err : {ENOSPC, EIO}) {
      for (int n = 0; n < steps; ++n) {
        const bool after_rename = n > rename_step;
        INFO(fmt::format("errno {} at step {} ({}), after the rename: {}", err, n, clean_log[n],
                         after_rename));
        Scenario s;
        FaultEnv env(Fast());
        Compactor compactor(*s.store, env, s.index, s.source);
        env.fail_at(n, err);
        Status st = compactor.CompactNow();
        REQUIRE_FALSE(st.ok());
        INFO("status: " << st.ToString());
        CHECK(st.errno_value() == err);
        CHECK(st.message().find(s.dir.path()) != std::string::npos);  // names a path
        REQUIRE(env.log().size() > static_cast<size_t>(n));
        CHECK(Verb(env.log()[n]) == Verb(clean_log[n]));  // the same step as in the clean run

        // Memory: exactly the live view, still over the old base.
        CHECK(Diff(*s.store, s.live_view, kGone) == "");
        CHECK(s.store->GetStats().generation == 1);
        CHECK(s.store->dirty());
        // Disk: the old bytes, unless the failure came after the rename made the new file
        // visible (then it is the merged content, which has the same meaning as memory).
        CHECK(ReadFileBytes(s.index) == (after_rename ? new_bytes : s.base_bytes));
        CHECK_FALSE(Exists(TempPathFor(s.index)));
        const auto report = compactor.GetReport();
        CHECK(report.runs == 1);
        CHECK_FALSE(report.last_status.ok());
        CHECK(report.last_status.message() == st.message());
        CHECK(report.generation == 1);

        // The retry succeeds and saves exactly what memory shows.
        env.clear();
        REQUIRE(compactor.CompactNow().ok());
        CHECK(Diff(*s.store, s.live_view, kGone) == "");
        CHECK(FileView(s.index) == s.live_view);
        CHECK(ReadFileBytes(s.index) == new_bytes);
        CHECK_FALSE(Exists(TempPathFor(s.index)));
        CHECK(compactor.GetReport().generation == 2);
        CHECK(compactor.GetReport().last_status.ok());
        CHECK(s.store->GetStats().generation == 2);
      }
    }
  }

  SECTION("a crash at any step") {
    for (int n = 0; n < steps; ++n) {
      const bool after_rename = n > rename_step;
      INFO(fmt::format("crash at step {} ({}), after the rename: {}", n, clean_log[n],
                       after_rename));
      Scenario s;
      {
        FaultEnv env(Fast());
        Compactor compactor(*s.store, env, s.index, s.source);
        env.crash_at(n);
        REQUIRE_FALSE(compactor.CompactNow().ok());
      }
      // The process is gone; only the disk counts. The index opens and is wholly old or
      // wholly new.
      auto reopened = IndexReader::Open(Env::Default(), s.index);
      REQUIRE(reopened.ok());
      const std::string bytes = ReadFileBytes(s.index);
      const bool is_old = bytes == s.base_bytes;
      const bool is_new = bytes == new_bytes;
      REQUIRE((is_old || is_new));
      CHECK(is_new == after_rename);
      SizeStore restarted(*reopened);
      CHECK(LiveView(restarted) == (is_new ? s.live_view : s.base_view));

      // A restarted daemon compacts over whatever the crash left behind (a stale .tmp too).
      REQUIRE(restarted.MakeDir("after-crash").ok());
      Compactor again(restarted, Fast(), s.index, s.source);
      REQUIRE(again.CompactNow().ok());
      CHECK(FileView(s.index) == LiveView(restarted));
      CHECK_FALSE(Exists(TempPathFor(s.index)));
    }
  }
}

TEST_CASE("seed-002: edits made while a compaction runs are all present after it", "[compact]") {
  Scenario s;
  // A second store over the same base, given the same edits and never compacted: the
  // meaning the compacted store must keep.
  SizeStore reference(s.base);
  ApplyEdits(reference);
  REQUIRE(LiveView(reference) == s.live_view);
  const View at_freeze = s.live_view;

  SlowEnv env(Fast(), std::chrono::milliseconds(15));
  Compactor compactor(*s.store, env, s.index, s.source);
  Status first;
  std::atomic<bool> running{true};
  std::thread t([&] {
    first = compactor.CompactNow();
    running = false;
  });

  auto both = [&](const std::function<Status(SizeStore&)>& edit) {
    REQUIRE(edit(*s.store).ok());
    REQUIRE(edit(reference).ok());
  };
  std::vector<std::string> gone;
  // Phase 1: the overlay is frozen and the compaction is held before it writes anything.
  env.WaitEntered();
  both([](SizeStore& st) { return st.MakeDir("during"); });
  for (int i = 0; i < 200; ++i) {
    const std::string p = fmt::format("during/i{:03}", i);
    both([&](SizeStore& st) { return st.MakeDir(p); });
    both([&](SizeStore& st) { return st.AddDelta(p, Delta{i + 1, 1, 0}); });
  }
  both([](SizeStore& st) { return st.RemoveDir("keep/a/b"); });             // base + frozen
  both([](SizeStore& st) { return st.AddDelta("dst/mv2/c", {5, 1, 0}); });  // frozen only
  both([](SizeStore& st) { return st.RenameDir("new", "dst/new2"); });      // frozen subtree
  both([](SizeStore& st) { return st.RemoveDir("bulk/n0003"); });           // base only
  both([](SizeStore& st) { return st.RemoveDir("bulk/n0001"); });           // remade in frozen
  gone.insert(gone.end(), {"keep/a/b", "new", "new/sub", "bulk/n0003", "bulk/n0001"});

  // Phase 2: let it write (slowly) while more edits arrive.
  env.Release();
  int during_writes = 0;
  for (int j = 0; j < 300; ++j) {
    const std::string p = fmt::format("during/j{:03}", j);
    both([&](SizeStore& st) { return st.MakeDir(p); });
    both([&](SizeStore& st) { return st.AddDelta(p, Delta{1000, 1, 0}); });
    if (j % 3 == 0) both([&](SizeStore& st) { return st.AddDelta("keep", Delta{1, 1, 0}); });
    if (running) ++during_writes;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  t.join();
  REQUIRE(first.ok());
  WARN(during_writes << " of 300 phase-2 edits landed while the compaction was writing");
  CHECK(during_writes > 0);

  // Every edit is visible, and the first compaction's file holds what was frozen.
  const View want = LiveView(reference);
  CHECK(Diff(*s.store, want, gone) == "");
  for (int i = 0; i < 200; ++i)
    CHECK(s.store->Lookup(fmt::format("during/i{:03}", i)) ==
          (Totals{static_cast<uint64_t>(i + 1), 1, 0}));
  CHECK(s.store->Lookup("during/j299") == (Totals{1000, 1, 0}));
  CHECK(FileView(s.index) == at_freeze);
  CHECK(s.store->dirty());

  // A second compaction persists the rest.
  REQUIRE(compactor.CompactNow().ok());
  CHECK_FALSE(s.store->dirty());
  CHECK(Diff(*s.store, want, gone) == "");
  CHECK(FileView(s.index) == want);
  auto reopened = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->generation() == 3);
  SizeStore cold(*reopened);
  CHECK(Diff(cold, want, gone) == "");
}

TEST_CASE("compactor coalesces concurrent requests into at most one more run", "[compact]") {
  Scenario s;
  constexpr int kThreads = 8;
  for (int k = 0; k < kThreads; ++k) REQUIRE(s.store->MakeDir(fmt::format("t{}", k)).ok());
  SlowEnv env(Fast(), std::chrono::milliseconds(0));
  Compactor compactor(*s.store, env, s.index, s.source);

  Status first;
  std::thread holder([&] { first = compactor.CompactNow(); });
  env.WaitEntered();  // run 1 is under way and held

  // Each thread makes an edit after run 1 froze, then asks for a compaction: when its call
  // returns, the file on disk must hold its edit.
  std::vector<Status> results(kThreads);
  std::vector<std::optional<Totals>> persisted(kThreads);
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      const std::string p = fmt::format("t{}", k);
      results[k] = s.store->AddDelta(p, Delta{1000, 1, 0});
      if (!results[k].ok()) return;
      results[k] = compactor.CompactNow();
      auto r = IndexReader::Open(Env::Default(), s.index);
      if (r.ok()) persisted[k] = (*r)->Lookup(p);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let them queue up
  env.Release();
  holder.join();
  for (auto& th : threads) th.join();

  REQUIRE(first.ok());
  for (int k = 0; k < kThreads; ++k) {
    INFO("thread " << k << ": " << results[k].ToString());
    CHECK(results[k].ok());
    CHECK(persisted[k] == (Totals{1000, 1, 0}));
  }
  const auto report = compactor.GetReport();
  INFO("runs: " << report.runs);
  CHECK(report.runs >= 2);
  CHECK(report.runs <= 3);  // the held run plus at most two more, however many asked
  CHECK(report.last_status.ok());
  CHECK_FALSE(s.store->dirty());
  CHECK(FileView(s.index) == LiveView(*s.store));
}

TEST_CASE("compactor with nothing to do returns ok and leaves the file alone", "[compact]") {
  Scenario s;
  FaultEnv env(Fast());
  Compactor compactor(*s.store, env, s.index, s.source);
  REQUIRE(compactor.CompactNow().ok());
  REQUIRE_FALSE(s.store->dirty());
  struct stat before;
  REQUIRE(::stat(s.index.c_str(), &before) == 0);
  const std::string bytes = ReadFileBytes(s.index);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a rewrite would move mtime

  env.reset_steps();
  REQUIRE(compactor.CompactNow().ok());
  CHECK(env.steps() == 0);
  struct stat after;
  REQUIRE(::stat(s.index.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(ReadFileBytes(s.index) == bytes);
  const auto report = compactor.GetReport();
  CHECK(report.runs == 2);
  CHECK(report.generation == 2);
  CHECK(report.last_status.ok());
  CHECK(s.store->GetStats().generation == 2);

  // Also straight after a cold load with no edits at all.
  auto reopened = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(reopened.ok());
  SizeStore untouched(*reopened);
  Compactor idle(untouched, env, s.index, s.source);
  env.reset_steps();
  REQUIRE(idle.CompactNow().ok());
  CHECK(env.steps() == 0);
  CHECK(idle.GetReport().generation == 2);
  CHECK(ReadFileBytes(s.index) == bytes);
}

TEST_CASE("compactor generation grows by one per real run and the report keeps failures",
          "[compact]") {
  Scenario s;
  FaultEnv env(Fast());
  Compactor compactor(*s.store, env, s.index, s.source);
  CHECK(compactor.GetReport().runs == 0);
  for (uint64_t i = 1; i <= 3; ++i) {
    REQUIRE(s.store->AddDelta("keep", Delta{1, 1, 0}).ok());
    REQUIRE(compactor.CompactNow().ok());
    const auto report = compactor.GetReport();
    CHECK(report.runs == i);
    CHECK(report.generation == 1 + i);
    CHECK(report.last_entries == s.live_view.size());
    CHECK(s.store->GetStats().generation == 1 + i);
    auto r = IndexReader::Open(Env::Default(), s.index);
    REQUIRE(r.ok());
    CHECK((*r)->generation() == 1 + i);
  }
  const auto good = compactor.GetReport();

  // A failing run: the report says so, with the same status the caller got.
  REQUIRE(s.store->AddDelta("keep", Delta{1, 1, 0}).ok());
  env.reset_steps();
  env.fail_at(3, ENOSPC);  // a write of the new file
  Status st = compactor.CompactNow();
  REQUIRE_FALSE(st.ok());
  auto report = compactor.GetReport();
  CHECK(report.runs == 4);
  CHECK_FALSE(report.last_status.ok());
  CHECK(report.last_status.errno_value() == ENOSPC);
  CHECK(report.last_status.message() == st.message());
  CHECK(report.generation == 4);  // unchanged: nothing new on disk
  CHECK(report.last_entries == good.last_entries);
  CHECK(report.last_time >= good.last_time);
  CHECK(s.store->GetStats().generation == 4);

  env.clear();
  REQUIRE(compactor.CompactNow().ok());
  report = compactor.GetReport();
  CHECK(report.runs == 5);
  CHECK(report.last_status.ok());
  CHECK(report.generation == 5);
  CHECK(FileView(s.index) == LiveView(*s.store));
}

TEST_CASE("compaction carries the link table forward, or writes the freezer's", "[compact]") {
  Scenario s;
  FaultEnv env(Fast());
  Compactor compactor(*s.store, env, s.index, s.source);
  REQUIRE(compactor.CompactNow().ok());
  auto first = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(first.ok());
  CHECK((*first)->generation() == 2);
  CHECK((*first)->links().bytes() == EncodeLinkTable(BaseLinks()));

  // The mount's freezer: the store's freeze plus its own table of the same moment.
  std::vector<LinkRecord> live = {{{1, 12}, 11, {"a/p", "keep/r"}}, {{2, 1}, 3, {"n/a", "n/b"}}};
  struct LiveFreezer : Compactor::Freezer {
    SizeStore* store;
    const std::vector<LinkRecord>* live;
    int freezes = 0;
    Compactor::Frozen FreezeForCompaction() override {
      ++freezes;
      Compactor::Frozen out;
      out.snap = store->Freeze();
      out.link_table = EncodeLinkTable(*live);
      return out;
    }
  } freezer;
  freezer.store = s.store.get();
  freezer.live = &live;
  int& freezes = freezer.freezes;
  compactor.SetFreezer(&freezer);
  // Only the link table changed (a hard link renamed inside one directory): still dirty, and
  // a failed run keeps it so until a run succeeds.
  REQUIRE_FALSE(s.store->dirty());
  s.store->NoteLinksChanged();
  CHECK(s.store->dirty());
  env.reset_steps();
  env.fail_at(2, ENOSPC);
  CHECK_FALSE(compactor.CompactNow().ok());
  CHECK(s.store->dirty());
  env.clear();
  REQUIRE(compactor.CompactNow().ok());
  CHECK_FALSE(s.store->dirty());
  CHECK(freezes == 2);
  auto second = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(second.ok());
  CHECK((*second)->generation() == 3);
  REQUIRE((*second)->links().size() == 2);
  CHECK((*second)->links().at(0) == live[0]);
  CHECK((*second)->links().at(1) == live[1]);
  CHECK(FileView(s.index) == s.live_view);

  // Nothing changed since: no run, no write.
  env.reset_steps();
  REQUIRE(compactor.CompactNow().ok());
  CHECK(env.steps() == 0);
}

TEST_CASE("compaction folds rename maps into an index equal to the store that rewrites",
          "[compact]") {
  Scenario s;
  // The reference rewrites every renamed subtree in place; "mapped" records every rename
  // and exchange as a rename map. Both start from the same base and get the same edits.
  SizeStore& rewriting = *s.store;
  rewriting.SetRenameMapThreshold(std::numeric_limits<size_t>::max());
  SizeStore mapped(s.base);
  mapped.SetRenameMapThreshold(0);
  ApplyEdits(mapped);
  REQUIRE(LiveView(mapped) == s.live_view);
  CHECK(mapped.rename_levels() == 1);  // ApplyEdits renames one subtree

  auto both = [&](const std::function<Status(SizeStore&)>& edit) {
    REQUIRE(edit(rewriting).ok());
    REQUIRE(edit(mapped).ok());
  };
  // A chain of renames, a name made again, an exchange, a rename back, with a freeze between
  // (what a failed compaction leaves), and the 5000-entry "bulk" moved and edited.
  both([](SizeStore& st) { return st.RenameDir("dst/mv2", "keep/a/mv3"); });
  both([](SizeStore& st) { return st.MakeDir("dst/mv2"); });
  both([](SizeStore& st) { return st.AddDelta("dst/mv2", Delta{7, 1, 0}); });
  both([](SizeStore& st) { return st.ExchangeDirs("keep/a/mv3", "new"); });
  mapped.Freeze();
  both([](SizeStore& st) { return st.RenameDir("new", "mv"); });  // mv/c/d is back
  both([](SizeStore& st) { return st.RenameDir("bulk", "keep/bulk"); });
  both([](SizeStore& st) { return st.AddDelta("keep/bulk/n0042", Delta{1, 1, 0}); });
  both([](SizeStore& st) { return st.RemoveDir("keep/bulk/n0043"); });
  both([](SizeStore& st) { return st.ExchangeDirs("keep", "dst"); });
  both([](SizeStore& st) { return st.MakeDir("bulk"); });
  const View want = LiveView(rewriting);
  const std::vector<std::string> gone = {"new/sub",   "bulk/n0000",     "keep/bulk",
                                         "dst/mv2/c", "dst/bulk/n0043", "keep/a/mv3"};
  REQUIRE(Diff(mapped, want, gone) == "");
  CHECK(want.at("mv/c/d") == (Totals{3, 1, 0}));
  CHECK(want.at("dst/bulk/n0042") == (Totals{2, 2, 0}));
  CHECK(rewriting.rename_levels() == 0);
  CHECK(mapped.rename_levels() == 6);  // one per rename and exchange

  FaultEnv env(Fast());
  Compactor compactor(mapped, env, s.index, s.source);
  REQUIRE(compactor.CompactNow().ok());
  CHECK(mapped.rename_levels() == 0);
  CHECK(mapped.GetStats().frozen_entries == 0);
  CHECK_FALSE(mapped.dirty());
  CHECK(FileView(s.index) == want);
  CHECK(Diff(mapped, want, gone) == "");
  auto reopened = IndexReader::Open(Env::Default(), s.index);
  REQUIRE(reopened.ok());
  SizeStore cold(*reopened);
  CHECK(Diff(cold, want, gone) == "");

  // Folded in, the maps leave nothing for the next run to do.
  env.reset_steps();
  REQUIRE(compactor.CompactNow().ok());
  CHECK(env.steps() == 0);
}

TEST_CASE("a rename map pushed while a compaction runs stays above the new base", "[compact]") {
  Scenario s;
  s.store->SetRenameMapThreshold(0);
  SizeStore reference(s.base);
  ApplyEdits(reference);
  auto both = [&](const std::function<Status(SizeStore&)>& edit) {
    REQUIRE(edit(*s.store).ok());
    REQUIRE(edit(reference).ok());
  };
  both([](SizeStore& st) { return st.RenameDir("dst/mv2", "mv"); });  // a map in the freeze
  const View at_freeze = LiveView(reference);
  REQUIRE(s.store->rename_levels() == 1);

  SlowEnv env(Fast(), std::chrono::milliseconds(0));
  Compactor compactor(*s.store, env, s.index, s.source);
  Status first;
  std::thread t([&] { first = compactor.CompactNow(); });
  env.WaitEntered();  // frozen, nothing written yet
  both([](SizeStore& st) { return st.RenameDir("bulk", "dst/bulk"); });
  both([](SizeStore& st) { return st.AddDelta("dst/bulk/n0007", Delta{5, 1, 0}); });
  both([](SizeStore& st) { return st.ExchangeDirs("keep", "new"); });
  CHECK(s.store->rename_levels() == 3);
  env.Release();
  t.join();
  REQUIRE(first.ok());

  // The freeze's map went into the file; the two made since stay, over the new base.
  CHECK(FileView(s.index) == at_freeze);
  CHECK(s.store->rename_levels() == 2);
  CHECK(s.store->dirty());
  const View want = LiveView(reference);
  const std::vector<std::string> gone = {"bulk", "bulk/n0007", "dst/mv2", "keep/a/b"};
  CHECK(Diff(*s.store, want, gone) == "");
  CHECK(s.store->Lookup("dst/bulk/n0007") == (Totals{6, 2, 0}));
  CHECK(s.store->Lookup("new/a") == (Totals{210, 3, 1}));

  REQUIRE(compactor.CompactNow().ok());
  CHECK(s.store->rename_levels() == 0);
  CHECK_FALSE(s.store->dirty());
  CHECK(FileView(s.index) == want);
  CHECK(Diff(*s.store, want, gone) == "");
}
