// Filesystem::DirTotals: a size query does not wait for an operation that holds the
// namespace lock across its system call (a rename on a cold disk took 18 ms in the
// big-trees benchmark, and every query waited for it).
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <shared_mutex>

#include "fs/filesystem.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "scan/scanner.h"
#include "store/compactor.h"
#include "store/size_store.h"
#include "support/files.h"
#include "support/scanned_index.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::fs;
using dtkfs::testing::TempDir;
using dtkfs::testing::WriteFileBytes;

namespace {

struct Mounted {
  TempDir dir;
  std::string src = dir / "src";
  std::unique_ptr<SizeStore> store;
  std::unique_ptr<Compactor> compactor;
  std::unique_ptr<Filesystem> fs;

  Mounted() {
    std::filesystem::create_directories(src + "/a/b");
    WriteFileBytes(src + "/a/b/f", std::string(1234, 'f'));
    const std::string index = dir / "index";
    store = std::make_unique<SizeStore>(dtkfs::testing::ScanIndex(src, index));
    compactor = std::make_unique<Compactor>(*store, Env::Default(), index, src);
    const int root_fd = ::open(src.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(root_fd >= 0);
    fs = std::make_unique<Filesystem>(root_fd, src, *store, *compactor, Options{});
  }
};

}  // namespace

TEST_CASE("a size query does not wait for a namespace operation's system call", "[fs]") {
  Mounted m;
  Inode& root = m.fs->table().root();
  REQUIRE(m.fs->DirTotals(root).has_value());
  CHECK(m.fs->DirTotals(root)->bytes == 1234);
  // An operation in its system call: the namespace lock held, nothing published yet. (The
  // query is declared first: if it waited, the lock is let go before the test waits for it.)
  std::future<std::optional<Totals>> query;
  std::unique_lock ns(m.fs->ns_mu());
  query = std::async(std::launch::async, [&] { return m.fs->DirTotals(root); });
  REQUIRE(query.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto totals = query.get();
  REQUIRE(totals.has_value());
  CHECK(totals->bytes == 1234);
  CHECK(totals->files == 1);
  CHECK(totals->dirs == 2);
}

TEST_CASE("a size query waits while a namespace change is being published", "[fs]") {
  Mounted m;
  Inode& root = m.fs->table().root();
  std::future<std::optional<Totals>> query;
  std::unique_lock ns(m.fs->ns_mu());
  std::optional<Filesystem::NamespaceChange> change(std::in_place, *m.fs);
  query = std::async(std::launch::async, [&] { return m.fs->DirTotals(root); });
  // It retries, then falls back to the namespace lock, which the change holds.
  CHECK(query.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  change.reset();
  ns.unlock();
  REQUIRE(query.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto totals = query.get();
  REQUIRE(totals.has_value());
  CHECK(totals->bytes == 1234);
}
