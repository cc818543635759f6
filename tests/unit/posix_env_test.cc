// The POSIX Env's mappings: what another process does to a mapped file cannot reach the
// bytes a reader holds (src/env/map_guard.h).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "env/env.h"
#include "support/mount_fixture.h"
#include "support/temp_dir.h"

using namespace dtkfs;
using namespace dtkfs::testing;

TEST_CASE("regression: a mapped file truncated by another process keeps its bytes (no SIGBUS)",
          "[env]") {
  TempDir dir;
  const std::string path = dir / "mapped";
  std::string bytes(3 * 4096 + 17, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  std::ofstream(path, std::ios::binary) << bytes;

  auto file = Env::Default().MapReadOnly(path);
  REQUIRE(file.ok());
  REQUIRE(!(*file)->detached());
  int tries = 0;  // coreutils truncate opens non-blocking: EAGAIN until the guard lets go
  while (Run({"truncate", "-s", "0", path}).status != 0) {
    REQUIRE(++tries < 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  REQUIRE(st.st_size == 0);
  // Every byte still readable and unchanged: a read past the file's new end would be SIGBUS.
  CHECK(std::string((*file)->data(), (*file)->size()) == bytes);
  CHECK((*file)->detached());
}

TEST_CASE("regression: a file open for writing when mapped is copied and marked for rewrite",
          "[env]") {
  TempDir dir;
  const std::string path = dir / "mapped";
  const std::string bytes(10000, 'q');
  std::ofstream(path, std::ios::binary) << bytes;
  const int writer = ::open(path.c_str(), O_WRONLY);  // no read lease can be had now
  REQUIRE(writer >= 0);
  auto file = Env::Default().MapReadOnly(path);
  ::close(writer);
  REQUIRE(file.ok());
  CHECK((*file)->detached());  // the compactor then rewrites it
  CHECK(std::string((*file)->data(), (*file)->size()) == bytes);
  // Truncated now: the copy never reads the file again, so nothing can fault.
  REQUIRE(::truncate(path.c_str(), 0) == 0);
  CHECK(std::string((*file)->data(), (*file)->size()) == bytes);
}

TEST_CASE("regression: a mapped index must be this user's: the file mapped is the one checked",
          "[env]") {
  if (::geteuid() != 0) {
    WARN("needs root to give a file away: not run");
    return;
  }
  TempDir dir;
  const std::string path = dir / "theirs";
  std::ofstream(path, std::ios::binary) << std::string(100, 'x');
  REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
  auto file = Env::Default().MapReadOnly(path);
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().message().find("owned by uid 65534") != std::string::npos);
}

// Found by the breaker: ReadFileToString allocated (and zero-filled) max_bytes whatever the
// file's size. ReadJournals passes 1 GiB, so every mount that recovered from a journal of a
// few bytes, and every journal retirement that met a newer file, took 1 GiB of memory: a
// daemon under a memory limit was killed at the mount that was to recover it.
TEST_CASE("regression: reading a small file with a large bound allocates what the file holds",
          "[env]") {
  TempDir dir;
  std::ofstream(dir / "small") << "a few bytes";
  std::string big(3 * 4096 + 5, 'b');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::ofstream(dir / "big") << big;
  auto max_rss_kib = [] {
    struct rusage ru;
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
  };
  const long before = max_rss_kib();
  for (int i = 0; i < 3; ++i) {
    auto small = Env::Default().ReadFileToString(dir / "small", (size_t{1} << 30) + 1);
    REQUIRE(small.ok());
    CHECK(*small == "a few bytes");
  }
  CHECK(max_rss_kib() - before < 64 * 1024);
  // Bounds and sizes still hold: the bound cuts, a file larger than its first guess is read
  // whole.
  CHECK(*Env::Default().ReadFileToString(dir / "big", 10) == big.substr(0, 10));
  CHECK(*Env::Default().ReadFileToString(dir / "big", 1 << 20) == big);
  CHECK(*Env::Default().ReadFileToString(dir / "big", big.size()) == big);
  CHECK(Env::Default().ReadFileToString(dir / "small", 0)->empty());
}
