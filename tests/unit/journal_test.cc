// The write-intent journal (src/store/journal.*) and recovery (src/store/recovery.*): the file
// format and its torn tails, marks once per directory per generation, group commit,
// retirement, a journal that cannot be written, power loss at every step of a mark, and the
// two races the design names: a directory removed and re-created at the same path, and an
// operation straddling a compaction freeze.
#include "store/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include "fs/filesystem.h"
#include "index/index_files.h"
#include "index/index_lifecycle.h"
#include "index/index_reader.h"
#include "scan/scanner.h"
#include "store/compactor.h"
#include "store/recovery.h"
#include "store/size_store.h"
#include "support/fault_env.h"
#include "support/files.h"
#include "support/power_loss_env.h"
#include "support/scanned_index.h"
#include "support/store_views.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using dtkfs::testing::ReadFileBytes;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

namespace {

JournalRecord Dirty(std::string p) { return {JournalRecord::Type::kDirty, std::move(p)}; }

std::vector<std::string> Paths(const JournalFile& f) {
  std::vector<std::string> out;
  for (const JournalRecord& r : f.records) out.push_back(r.path);
  return out;
}

dtkfs::testing::View ScannedTotals(const std::string& src) {
  auto scan = ScanTree(src, "", ScanOptions{});
  REQUIRE(scan.ok());
  return dtkfs::testing::ScanView(*scan);
}

// A Filesystem with a journal over src (a/b/f of 1234 bytes, a/g of 10), as a mount has them,
// without FUSE: for the races between size changes and the compaction freeze.
struct JournaledMount {
  TempDir dir;
  std::string src = dir / "src", index = dir / "index";
  std::unique_ptr<SizeStore> store;
  std::unique_ptr<Compactor> compactor;
  std::unique_ptr<fs::Filesystem> filesystem;
  std::unique_ptr<Journal> journal;

  JournaledMount() {
    std::filesystem::create_directories(src + "/a/b");
    WriteFileBytes(src + "/a/b/f", std::string(1234, 'f'));
    WriteFileBytes(src + "/a/g", std::string(10, 'g'));
    store = std::make_unique<SizeStore>(dtkfs::testing::ScanIndex(src, index));
    compactor = std::make_unique<Compactor>(*store, Env::Default(), index, src);
    const int root_fd = ::open(src.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(root_fd >= 0);
    filesystem = std::make_unique<fs::Filesystem>(root_fd, src, *store, *compactor, fs::Options{});
    compactor->SetFreezer(filesystem.get());
    journal = std::make_unique<Journal>(Env::Default(), index, 1);
    filesystem->SetJournal(journal.get());
  }
  // The inode at the path of names, looked up one name at a time as the kernel does.
  fs::Inode& Find(std::initializer_list<const char*> names) {
    fs::Inode* at = &filesystem->table().root();
    for (const char* name : names) {
      fuse_entry_param e;
      REQUIRE(filesystem->Lookup(*at, name, &e) == 0);
      at = &filesystem->Get(e.ino);
    }
    return *at;
  }
};

}  // namespace

TEST_CASE("journal format: records round-trip; any truncation is a torn tail", "[journal]") {
  std::string bytes = EncodeJournalHeader(7);
  const std::vector<std::string> paths = {"", "a", "a/b c", std::string("odd\xff\x01", 5)};
  std::vector<size_t> ends;
  for (const std::string& p : paths) {
    bytes += EncodeJournalRecord(Dirty(p));
    ends.push_back(bytes.size());
  }
  bytes += EncodeJournalRecord({JournalRecord::Type::kReplaced, "a/b c"});
  const JournalFile whole = DecodeJournal(bytes);
  CHECK(whole.generation == 7);
  CHECK_FALSE(whole.torn);
  REQUIRE(whole.records.size() == 5);
  CHECK(whole.records[4].type == JournalRecord::Type::kReplaced);
  const std::vector<std::string> all = Paths(whole);
  CHECK(std::vector<std::string>(all.begin(), all.begin() + 4) == paths);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at " << cut);
    const JournalFile f = DecodeJournal(bytes.substr(0, cut));
    size_t complete = 0;
    while (complete < ends.size() && ends[complete] <= cut) ++complete;
    CHECK(f.records.size() == complete);
    const bool at_boundary = cut == 0 || cut == 32 || std::count(ends.begin(), ends.end(), cut);
    CHECK(f.torn == !at_boundary);
  }
}

TEST_CASE("journal format: a flipped byte ends the journal at that record", "[journal]") {
  std::string bytes = EncodeJournalHeader(1);
  for (const char* p : {"a", "b", "c"}) bytes += EncodeJournalRecord(Dirty(p));
  const size_t second = 32 + EncodeJournalRecord(Dirty("a")).size();
  std::string bad = bytes;
  bad[second + 9] ^= 0x20;  // the path of the second record
  const JournalFile f = DecodeJournal(bad);
  CHECK(Paths(f) == std::vector<std::string>{"a"});
  CHECK(f.torn);
  bad = bytes;
  bad[9] ^= 1;  // the header's generation
  CHECK(DecodeJournal(bad).records.empty());
}

TEST_CASE("journal: one durable mark per directory per generation; retire removes files",
          "[journal]") {
  TempDir dir;
  const std::string index = dir / "x.idx";
  REQUIRE(StartExitStatus(Env::Default(), index).ok());
  Journal j(Env::Default(), index, 5);
  int asked = 0;
  auto path = [&](std::string p) {
    return [&asked, p] {
      ++asked;
      return std::optional<std::string>(p);
    };
  };
  REQUIRE(j.MarkDirty({1, 10}, path("a")).ok());
  REQUIRE(j.MarkDirty({1, 10}, path("a")).ok());  // marked: not even its path is asked
  REQUIRE(j.MarkDirty({1, 11}, path("b")).ok());
  j.Cover({1, 12});
  REQUIRE(j.MarkDirty({1, 12}, path("new")).ok());  // made in this generation: no record
  REQUIRE(j.MarkReplaced("a/x").ok());
  CHECK(asked == 2);
  auto set = ReadJournals(Env::Default(), index, 4);
  REQUIRE(set.ok());
  REQUIRE(set->pending.size() == 1);
  CHECK(set->pending[0].generation == 5);
  CHECK(Paths(set->pending[0]) == std::vector<std::string>{"a", "b", "a/x"});

  CHECK(j.Advance() == 5);
  REQUIRE(j.MarkDirty({1, 10}, path("a")).ok());  // a new generation marks again
  set = ReadJournals(Env::Default(), index, 4);
  REQUIRE(set.ok());
  REQUIRE(set->pending.size() == 2);
  CHECK(set->last_generation == 6);
  CHECK(j.HasFilesAfter(5));

  j.Retire(5);
  set = ReadJournals(Env::Default(), index, 0);
  REQUIRE(set.ok());
  REQUIRE(set->pending.size() == 1);
  CHECK(set->pending[0].generation == 6);
  CHECK(RemoveJournals(Env::Default(), index).ok());
  CHECK(ReadJournals(Env::Default(), index, 0)->pending.empty());
}

TEST_CASE("journal: concurrent marks share fsyncs (group commit) and all are durable",
          "[journal]") {
  TempDir dir;
  const std::string index = dir / "x.idx";
  Journal j(Env::Default(), index, 1);
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string p = "t" + std::to_string(t) + "/d" + std::to_string(i);
        if (!j.MarkDirty({static_cast<dev_t>(t), static_cast<ino_t>(i)}, [p] {
                return std::optional<std::string>(p);
              }).ok())
          ++failures;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  auto set = ReadJournals(Env::Default(), index, 0);
  REQUIRE(set.ok());
  CHECK(set->records() == kThreads * kEach);
  const Journal::Stats s = j.GetStats();
  CHECK(s.records == kThreads * kEach);
  CHECK(s.syncs <= s.records);
  INFO("syncs " << s.syncs << " for " << s.records << " records");
}

TEST_CASE("journal: a write that fails breaks the generation and says so in place", "[journal]") {
  TempDir dir;
  const std::string index = dir / "x.idx";
  REQUIRE(StartExitStatus(Env::Default(), index).ok());
  dtkfs::testing::FaultEnv env;
  env.fail_at(1, ENOSPC);  // step 0 creates the journal file, step 1 writes it
  Journal j(env, index, 1);
  auto a = [] { return std::optional<std::string>("a"); };
  CHECK(j.MarkDirty({1, 1}, a).ok());  // said in INDEX.last-exit: the operation may go on
  CHECK_THAT(j.GetStats().broken, Catch::Contains("No space left"));
  auto broken = ReadJournalBroken(Env::Default(), index);
  REQUIRE(broken.ok());
  REQUIRE(broken->has_value());
  CHECK_THAT(**broken, Catch::Contains("No space left"));
  // Covered by a compaction: working again, and INDEX.last-exit no longer says it broke.
  env.clear();
  j.Advance();
  j.Retire(1);
  CHECK(j.GetStats().broken.empty());
  CHECK_FALSE(ReadJournalBroken(Env::Default(), index)->has_value());
  CHECK(j.MarkDirty({1, 1}, a).ok());
  CHECK(ReadJournals(Env::Default(), index, 1)->records() == 1);

  // When even INDEX.last-exit cannot be written, the mark fails (the operation must not run).
  dtkfs::testing::FaultEnv dead;
  dead.crash_at(0);
  Journal k(dead, dir / "y.idx", 1);
  CHECK_FALSE(k.MarkDirty({1, 1}, a).ok());
}

TEST_CASE("journal: power lost at every step of a mark keeps every mark that returned",
          "[journal]") {
  TempDir dir;
  const std::string index = dir / "x.idx";
  // A clean run counts the steps.
  int steps = 0;
  {
    dtkfs::testing::PowerLossEnv env;
    REQUIRE(StartExitStatus(env, index).ok());
    const int start = env.steps();
    Journal j(env, index, 3);
    for (int i = 0; i < 3; ++i)
      REQUIRE(j.MarkDirty({1, static_cast<ino_t>(i)}, [i] {
                 return std::optional<std::string>("d" + std::to_string(i));
               }).ok());
    steps = env.steps() - start;
    REQUIRE(RemoveJournals(Env::Default(), index).ok());
  }
  REQUIRE(steps > 3);
  for (int cut = 0; cut <= steps; ++cut) {
    INFO("power cut at step " << cut);
    dtkfs::testing::PowerLossEnv env;
    REQUIRE(StartExitStatus(env, index).ok());
    env.CutPowerAt(env.steps() + cut);
    int returned = 0;
    {
      Journal j(env, index, 3);
      for (int i = 0; i < 3; ++i)
        if (j.MarkDirty({1, static_cast<ino_t>(i)},
                        [i] { return std::optional<std::string>("d" + std::to_string(i)); })
                .ok() &&
            j.GetStats().broken.empty())
          ++returned;
    }
    REQUIRE(env.SimulatePowerLoss().ok());
    auto set = ReadJournals(Env::Default(), index, 0);
    REQUIRE(set.ok());
    CHECK(set->records() >= static_cast<size_t>(returned));
    REQUIRE(RemoveJournals(Env::Default(), index).ok());
  }
}

TEST_CASE("regression: a directory removed and re-created at the same path is scanned whole",
          "[journal]") {
  TempDir dir;
  const std::string src = dir / "src";
  std::filesystem::create_directories(src + "/p/q/old");
  WriteFileBytes(src + "/p/q/f", std::string(500, 'o'));
  WriteFileBytes(src + "/p/q/old/g", std::string(300, 'o'));
  auto base = dtkfs::testing::ScanIndex(src, dir / "x.idx");
  // Through the mount: rmdir of q's contents and q, then mkdir q again with other content.
  std::filesystem::remove_all(src + "/p/q");
  std::filesystem::create_directories(src + "/p/q/new");
  WriteFileBytes(src + "/p/q/new/h", std::string(42, 'n'));

  auto recover = [&](bool with_replaced) {
    JournalSet journals;
    JournalFile f;
    f.generation = 1;
    f.records.push_back(Dirty("p"));  // rmdir and mkdir of q changed p's entries
    if (with_replaced) f.records.push_back({JournalRecord::Type::kReplaced, "p/q"});
    journals.pending.push_back(f);
    SizeStore store(base);
    auto report = RecoverFromJournal(store, src, journals);
    REQUIRE(report.ok());
    return dtkfs::testing::LiveView(store);
  };
  CHECK(recover(true) == ScannedTotals(src));
  // Without the record, p/q looks the same from p (a subdirectory named q) and its old
  // subtree would be kept: the record is what makes this exact.
  CHECK(recover(false) != ScannedTotals(src));
}

TEST_CASE("recovery reconciles the marked directories and finds what is new below them",
          "[journal]") {
  TempDir dir;
  const std::string src = dir / "src";
  for (int i = 0; i < 20; ++i) {
    std::filesystem::create_directories(src + "/d" + std::to_string(i) + "/e");
    WriteFileBytes(src + "/d" + std::to_string(i) + "/e/f", std::string(10 + i, 'x'));
  }
  auto base = dtkfs::testing::ScanIndex(src, dir / "x.idx");
  // Changed: files in d1/e, a new subtree under d2, d3 gone (marked in the root), d4/e
  // marked but unchanged.
  WriteFileBytes(src + "/d1/e/more", std::string(1000, 'm'));
  std::filesystem::create_directories(src + "/d2/new/deep");
  WriteFileBytes(src + "/d2/new/deep/z", std::string(77, 'z'));
  std::filesystem::remove_all(src + "/d3");
  JournalSet journals;
  JournalFile f;
  f.generation = 4;
  for (const char* p : {"d1/e", "d2", "", "d4/e", "d3/e"}) f.records.push_back(Dirty(p));
  journals.pending.push_back(f);
  SizeStore store(base);
  auto report = RecoverFromJournal(store, src, journals);
  REQUIRE(report.ok());
  CHECK(dtkfs::testing::LiveView(store) == ScannedTotals(src));
  CHECK(report->reconciled == 4);  // d3/e went with d3
  CHECK(report->changed == 3);
  CHECK(report->rescanned == 1);
  CHECK(report->removed == 1);
  CHECK_FALSE(report->links_unknown);
  // A hard link made since the index: its other name may be anywhere.
  REQUIRE(::link((src + "/d5/e/f").c_str(), (src + "/d6/e/g").c_str()) == 0);
  f.records = {Dirty("d6/e")};
  journals.pending = {f};
  auto with_link = RecoverFromJournal(store, src, journals);
  REQUIRE(with_link.ok());
  CHECK(with_link->links_unknown);
}

TEST_CASE("regression: an operation straddling a freeze lands in the generation of its mark",
          "[journal][fs]") {
  JournaledMount m;
  const std::string &src = m.src, &index = m.index;
  fs::Filesystem& filesystem = *m.filesystem;
  Compactor& compactor = *m.compactor;
  Journal& journal = *m.journal;
  fs::Inode& f = m.Find({"a", "b", "f"});

  // A write: marked, then its syscall, then (later) its store update.
  std::promise<void> marked, release;
  auto writer = std::async(std::launch::async, [&] {
    fs::Filesystem::SizeChange change(filesystem);
    const int err = filesystem.accounting().WillChangeSize(f);
    marked.set_value();
    release.get_future().wait();
    WriteFileBytes(src + "/a/b/f", std::string(1334, 'f'));
    filesystem.accounting().Account(f, -1);
    return err;
  });
  marked.get_future().wait();
  const uint64_t mark_generation = journal.generation();
  // A compaction meanwhile: it must not retire the write's mark before the write lands.
  auto compaction = std::async(std::launch::async, [&] { return compactor.CompactNow(); });
  const bool finished_early =
      compaction.wait_for(std::chrono::milliseconds(300)) == std::future_status::ready;
  release.set_value();
  CHECK(writer.get() == 0);
  REQUIRE(compaction.get().ok());
  CHECK_FALSE(finished_early);
  // Either the new index holds the write, or the write's mark is still in a journal that
  // recovery would read: never neither.
  auto reader = IndexReader::Open(Env::Default(), index);
  REQUIRE(reader.ok());
  const bool in_index = (*reader)->Lookup("a/b")->bytes == 1334;
  auto pending = ReadJournals(Env::Default(), index, (*reader)->journal_generation());
  REQUIRE(pending.ok());
  bool still_marked = false;
  for (const JournalFile& file : pending->pending)
    for (const JournalRecord& r : file.records) still_marked |= r.path == "a/b";
  CHECK((in_index || still_marked));
  // The freeze does not wait for the write (it landed after it, in the next generation,
  // marked there again by its accounting); the retirement of its generation did.
  CHECK(still_marked);
  CHECK(journal.generation() > mark_generation);
}

// Found by the breaker: the freeze closed a gate and waited for every size change in
// flight, and new ones waited at the gate. One truncate stuck in the source (a lease held
// beside the mount: up to lease-break-time, 45 s) held every write of the mount for as long
// as a compaction wanted to freeze. Now nothing waits at the freeze; only the retirement of
// the stuck change's generation waits for it.
TEST_CASE("regression: a size change stuck in its syscall does not hold other writers",
          "[journal][fs]") {
  JournaledMount m;
  const std::string& src = m.src;
  fs::Filesystem& filesystem = *m.filesystem;
  Compactor& compactor = *m.compactor;
  SizeStore& store = *m.store;
  fs::Inode& f = m.Find({"a", "b", "f"});
  fs::Inode& g = m.Find({"a", "g"});

  std::promise<void> marked, release;
  auto stuck = std::async(std::launch::async, [&] {
    fs::Filesystem::SizeChange change(filesystem);
    const int err = filesystem.accounting().WillChangeSize(f);
    marked.set_value();
    release.get_future().wait();  // its syscall, stuck in the source
    WriteFileBytes(src + "/a/b/f", std::string(1334, 'f'));
    filesystem.accounting().Account(f, -1);
    return err;
  });
  marked.get_future().wait();
  auto compaction = std::async(std::launch::async, [&] { return compactor.CompactNow(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the freeze has run
  // Another writer, another file: it must not wait for the stuck one.
  auto other = std::async(std::launch::async, [&] {
    fs::Filesystem::SizeChange change(filesystem);
    const int err = filesystem.accounting().WillChangeSize(g);
    WriteFileBytes(src + "/a/g", std::string(500, 'g'));
    filesystem.accounting().Account(g, -1);
    return err;
  });
  const bool other_done =
      other.wait_for(std::chrono::milliseconds(2000)) == std::future_status::ready;
  // The compaction does not retire the stuck change's mark while it is stuck.
  const bool compaction_done =
      compaction.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
  release.set_value();
  CHECK(other_done);
  CHECK_FALSE(compaction_done);
  CHECK(stuck.get() == 0);
  CHECK(other.get() == 0);
  REQUIRE(compaction.get().ok());
  CHECK(store.Lookup("a")->bytes == 1334 + 500);
}

// Found by the breaker: WillPlaceDir asked SizeStore::Persisted whether the state a crash
// leaves may hold a path, and Persisted looked through the rename maps above the base and
// stopped at a tombstone in a frozen overlay. A big directory (a rename map) renamed away,
// then a new one made at its old path, wrote no "replaced" record: recovery kept the old
// subtree there (counted twice), or lost writes inside a directory renamed away and back.
TEST_CASE("regression: a path renamed away through a rename map is still persisted", "[journal]") {
  TempDir dir;
  const std::string src = dir / "src";
  std::filesystem::create_directories(src + "/a/X/s");
  std::filesystem::create_directories(src + "/c");
  WriteFileBytes(src + "/a/X/s/f", std::string(500, 'o'));
  SizeStore store(dtkfs::testing::ScanIndex(src, dir / "x.idx"));
  store.SetRenameMapThreshold(0);  // every rename pushes a map, as a big one does
  REQUIRE(store.RenameDir("a/X", "c/X").ok());
  CHECK_FALSE(store.Lookup("a/X"));
  // The index on disk still holds a/X: a directory made there must be scanned whole.
  CHECK(store.Persisted("a/X"));
  CHECK(store.Persisted("c/X"));  // the same directory, under its new name: harmless
  CHECK_FALSE(store.Persisted("a/Y"));
}

TEST_CASE("regression: a path removed before a freeze is persisted until the compaction lands",
          "[journal]") {
  TempDir dir;
  const std::string src = dir / "src";
  std::filesystem::create_directories(src + "/a/X/s");
  WriteFileBytes(src + "/a/X/s/f", std::string(500, 'o'));
  SizeStore store(dtkfs::testing::ScanIndex(src, dir / "x.idx"));
  REQUIRE(store.RemoveDir("a/X").ok());
  CHECK(store.Persisted("a/X"));
  // The compaction freezes the tombstone; until its index is installed, the old one (with
  // a/X) is what a crash leaves.
  auto snapshot = store.Freeze();
  CHECK(store.Persisted("a/X"));
  CHECK_FALSE(store.Persisted("a/Y"));
}

// Found by the breaker: a journal file named with a generation near 2^64 (planted, or a
// damaged name) made the next journal begin at max + 1, which wrapped to generation 1,
// below what the index covers: after a crash its marks were read as obsolete and lost.
TEST_CASE("regression: a journal generation that would wrap the next one is refused", "[journal]") {
  TempDir dir;
  const std::string index = dir / "x.idx";
  WriteFileBytes(index + ".journal.18446744073709551615", "garbage");
  auto set = ReadJournals(Env::Default(), index, 3);
  REQUIRE_FALSE(set.ok());
  CHECK_THAT(set.status().message(), Catch::Contains("out of range"));
  std::filesystem::remove(index + ".journal.18446744073709551615");
  WriteFileBytes(index + ".journal.281474976710656", EncodeJournalHeader(281474976710656));
  CHECK(ReadJournals(Env::Default(), index, 3).ok());  // 2^48 itself is still read
}
