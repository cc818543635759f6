// ScanTree against the independent ReferenceWalk on generated trees: every kind of entry,
// awkward names, depth beyond PATH_MAX, a wide directory, random trees, start subdirectories,
// thread counts, and the error paths.
#include "scan/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/reference_walk.h"
#include "support/temp_dir.h"

namespace dtkfs {
namespace {

using testing::DescribeDifferences;
using testing::ReferenceWalk;
using testing::TempDir;
using TotalsMap = std::map<std::string, Totals>;

// ---- building trees -------------------------------------------------------------------------

// A file of the given apparent size. Sparse (ftruncate): only the apparent size counts, and
// files without data blocks are much cheaper to create and remove on a busy disk.
void MakeFileAt(int dir_fd, const std::string& name, uint64_t size) {
  int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  ::close(fd);
}
void MakeFile(const std::string& path, uint64_t size) { MakeFileAt(AT_FDCWD, path, size); }
// A file holding size real bytes.
void MakeDataFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  const std::string data(size, 'x');
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(size));
  ::close(fd);
}
void MakeDir(const std::string& path) { REQUIRE(::mkdir(path.c_str(), 0755) == 0); }
void MakeSymlink(const std::string& target, const std::string& path) {
  REQUIRE(::symlink(target.c_str(), path.c_str()) == 0);
}
void MakeHardLink(const std::string& from, const std::string& to) {
  REQUIRE(::link(from.c_str(), to.c_str()) == 0);
}
void MakeFifo(const std::string& path) { REQUIRE(::mkfifo(path.c_str(), 0644) == 0); }

// A bound unix socket leaves a socket inode behind; false when the path does not fit.
bool MakeSocket(const std::string& path) {
  struct sockaddr_un addr {};
  if (path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A name of exactly len bytes starting with prefix.
std::string LongName(const std::string& prefix, size_t len = 255) {
  std::string s = prefix;
  s.resize(len, 'n');
  return s;
}

// depth nested directories with 255-byte names below root_fd/start_name, created relative to
// fds (the paths exceed PATH_MAX). Every tenth level also holds a file of level bytes and a
// symlink. Returns the relative path of the deepest directory.
std::string MakeDeepChain(int root_fd, const std::string& first, int depth) {
  int fd = ::dup(root_fd);
  std::string rel;
  for (int level = 0; level < depth; ++level) {
    std::string name = level == 0 ? first : LongName(fmt::format("level{:03}-", level));
    REQUIRE(::mkdirat(fd, name.c_str(), 0755) == 0);
    int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(next >= 0);
    ::close(fd);
    fd = next;
    rel += (rel.empty() ? "" : "/") + name;
    if (level % 10 == 0) {
      MakeFileAt(fd, LongName(fmt::format("file{:03}-", level)), static_cast<uint64_t>(level));
      REQUIRE(::symlinkat("../x", fd, "up") == 0);
    }
  }
  ::close(fd);
  return rel;
}

// Removes everything below dir_fd relative to fds (boost's remove_all is not relied on for
// paths beyond PATH_MAX). Closes dir_fd.
void RemoveContentsAt(int dir_fd) {
  int list_fd = ::dup(dir_fd);
  DIR* dir = ::fdopendir(list_fd);
  REQUIRE(dir != nullptr);
  std::vector<std::pair<std::string, bool>> names;
  while (struct dirent* d = ::readdir(dir)) {
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    struct stat st;
    REQUIRE(::fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
    names.emplace_back(d->d_name, S_ISDIR(st.st_mode));
  }
  ::closedir(dir);
  for (const auto& [name, is_dir] : names) {
    if (is_dir) {
      ::fchmodat(dir_fd, name.c_str(), 0755, 0);
      RemoveContentsAt(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    REQUIRE(::unlinkat(dir_fd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0);
  }
  ::close(dir_fd);
}

// A TempDir that empties itself relative to fds first, for trees deeper than PATH_MAX.
class DeepTempDir {
 public:
  ~DeepTempDir() {
    int fd = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) RemoveContentsAt(fd);
  }
  std::string path() const { return dir_.path(); }
  std::string operator/(const std::string& rel) const { return dir_ / rel; }

 private:
  TempDir dir_;
};

// ---- checking -------------------------------------------------------------------------------

bool MemcmpLess(const std::string& a, const std::string& b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c < 0 || (c == 0 && a.size() < b.size());
}

// The reference restricted to start and the directories below it.
TotalsMap Subtree(const TotalsMap& all, const std::string& start) {
  if (start.empty()) return all;
  TotalsMap out;
  const std::string prefix = start + "/";
  for (const auto& [p, t] : all)
    if (p == start || p.compare(0, prefix.size(), prefix) == 0) out.emplace(p, t);
  return out;
}

ScanResult Scan(const std::string& root, const std::string& start, unsigned threads) {
  ScanOptions options;
  options.threads = threads;
  auto r = ScanTree(root, start, options);
  INFO("ScanTree(" << root << ", " << start.size() << "-byte start): " << r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Scans root/start with the given threads and checks the result against the reference
// exactly: same directories, same totals, memcmp order, start first, no errors.
ScanResult CheckScan(const std::string& root, const TotalsMap& reference, const std::string& start,
                     unsigned threads) {
  ScanResult r = Scan(root, start, threads);
  INFO("root " << root << ", start of " << start.size() << " bytes, " << threads << " threads");
  for (const auto& e : r.errors) UNSCOPED_INFO("scan error: " << e.ToString(root));
  CHECK(r.errors.empty());

  REQUIRE_FALSE(r.dirs.empty());
  CHECK(r.dirs.front().first == start);
  size_t unsorted = 0;
  for (size_t i = 1; i < r.dirs.size(); ++i)
    if (!MemcmpLess(r.dirs[i - 1].first, r.dirs[i].first)) ++unsorted;
  CHECK(unsorted == 0);  // strictly increasing: sorted and no duplicates

  TotalsMap actual(r.dirs.begin(), r.dirs.end());
  const TotalsMap expected = Subtree(reference, start);
  const std::string diff = DescribeDifferences(expected, actual);
  INFO(diff);
  CHECK(diff.empty());
  CHECK(actual.size() == r.dirs.size());

  const Totals& top = expected.at(start);
  CHECK(r.entries == top.files + top.dirs);
  return r;
}

// The full check with one and two threads, and the two results identical.
void CheckAllThreads(const std::string& root, const TotalsMap& reference,
                     const std::string& start = "") {
  ScanResult one = CheckScan(root, reference, start, 1);
  ScanResult two = CheckScan(root, reference, start, 2);
  CHECK(one.dirs == two.dirs);
  CHECK(one.entries == two.entries);
}

// ---- random trees ---------------------------------------------------------------------------

std::string RandomName(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<int> byte(1, 255);
  std::uniform_int_distribution<size_t> len(1, 24);
  const size_t n = kind(rng) == 0 ? 255 : len(rng);
  std::string s;
  while (s.size() < n) {
    char c = static_cast<char>(kind(rng) < 3 ? byte(rng) : 'a' + byte(rng) % 26);
    if (c != '/') s += c;
  }
  if (s == "." || s == "..") s += "x";
  return s;
}

// A random tree of about ops entries below root: directories, files (empty to sparse-huge),
// symlinks, hard links, fifos, with random byte names.
void MakeRandomTree(const std::string& root, uint64_t seed, int ops) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> dirs{root};
  std::vector<std::string> files;
  std::uniform_int_distribution<int> action(0, 99);
  for (int i = 0; i < ops; ++i) {
    const std::string& parent =
        dirs[std::uniform_int_distribution<size_t>(0, dirs.size() - 1)(rng)];
    const std::string p = parent + "/" + RandomName(rng);
    struct stat st;
    if (p.size() > 3000 || ::lstat(p.c_str(), &st) == 0) continue;  // too deep, or taken
    const int a = action(rng);
    if (a < 20) {
      MakeDir(p);
      dirs.push_back(p);
    } else if (a < 75) {
      const int k = action(rng);
      uint64_t size = k < 10   ? 0
                      : k < 90 ? std::uniform_int_distribution<uint64_t>(1, 4000)(rng)
                               : std::uniform_int_distribution<uint64_t>(1, 1ull << 34)(rng);
      MakeFile(p, size);
      files.push_back(p);
    } else if (a < 85) {
      std::string target = a % 2 ? std::string("/") : RandomName(rng);
      MakeSymlink(target, p);
    } else if (a < 95) {
      if (files.empty()) continue;
      MakeHardLink(files[std::uniform_int_distribution<size_t>(0, files.size() - 1)(rng)], p);
    } else {
      MakeFifo(p);
    }
  }
}

// ---- tests ----------------------------------------------------------------------------------

TEST_CASE("scan counts every kind of entry like the reference walk", "[scan]") {
  TempDir t;
  const std::string r = t.path();
  MakeDir(t / "a");
  MakeDir(t / "a/b");
  MakeDir(t / "a/b/c");
  MakeDataFile(t / "a/one", 1);
  MakeDataFile(t / "a/b/hundred", 100);
  MakeFile(t / "a/b/c/empty", 0);
  // Hard links: same directory and across directories; each link counts.
  MakeFile(t / "a/linked", 1000);
  MakeHardLink(t / "a/linked", t / "a/linked-again");
  MakeHardLink(t / "a/linked", t / "a/b/c/linked-far");
  // Symlinks count their own size and are never followed.
  MakeSymlink("one", t / "a/to-file");
  MakeSymlink("b", t / "a/to-dir");
  MakeSymlink("/", t / "a/to-root");
  MakeSymlink("does/not/exist", t / "a/dangling");
  MakeSymlink(std::string(1000, 'x'), t / "a/long-target");
  MakeFifo(t / "a/b/fifo");
  const bool have_socket = MakeSocket(t / "a/sock");
  const bool have_device = ::mknod((t / "a/null").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0;
  // Sparse: the apparent size counts, far beyond the disk's use and 32 bits.
  MakeFile(t / "a/b/sparse", (1ull << 36) + 7);
  // Empty directories, nested and not.
  MakeDir(t / "empty");
  MakeDir(t / "empties");
  MakeDir(t / "empties/x");
  MakeDir(t / "empties/x/y");

  const TotalsMap ref = ReferenceWalk(r);
  // The reference itself, by hand, so neither side can be wrong the same way.
  CHECK(ref.at("a/b/c") == Totals{1000, 2, 0});
  CHECK(ref.at("a/b").bytes == 100 + 1000 + ((1ull << 36) + 7) + 0 /*fifo*/);
  CHECK(ref.at("a/b").files == 5);
  CHECK(ref.at("a/b").dirs == 1);
  CHECK(ref.at("a").files == 13u + (have_socket ? 1u : 0u) + (have_device ? 1u : 0u));
  CHECK(ref.at("empties") == Totals{0, 0, 2});
  CHECK(ref.at("empty") == Totals{0, 0, 0});
  CHECK(ref.at("").dirs == 7);
  CHECK(ref.size() == 8);

  CheckAllThreads(r, ref);
  CheckAllThreads(r, ref, "a");
  CheckAllThreads(r, ref, "a/b");
  CheckAllThreads(r, ref, "empties/x/y");
}

TEST_CASE("scan handles awkward names and sorts paths in memcmp order", "[scan]") {
  TempDir t;
  const std::vector<std::string> names = {"with space",
                                          "new\nline",
                                          "bad\xff\xfe utf8",
                                          "tab\there",
                                          "-dash",
                                          ".hidden",
                                          "a",
                                          "a b",
                                          "a\x01",
                                          "a0",
                                          "a\xff",
                                          "Z",
                                          "\xc3\xa9t\xc3\xa9",
                                          LongName("long-")};
  uint64_t size = 1;
  for (const auto& n : names) {
    MakeDir(t / n);
    MakeFile(t / n + "/" + n, size);
    MakeDir(t / n + "/" + LongName("sub-"));
    MakeFile(t / n + "/" + LongName("sub-") + "/" + LongName("f-"), size * 3);
    size *= 2;
  }
  const TotalsMap ref = ReferenceWalk(t.path());
  CHECK(ref.size() == 1 + 2 * names.size());
  CheckAllThreads(t.path(), ref);
  CheckAllThreads(t.path(), ref, "new\nline");
  CheckAllThreads(t.path(), ref, "bad\xff\xfe utf8");

  // The order is the index's: "a" < "a b" < "a/..." < "a0" < "a\xff" (bytes unsigned).
  ScanResult r = Scan(t.path(), "", 2);
  std::vector<std::string> order;
  for (const auto& [p, _] : r.dirs)
    if (p.rfind("a", 0) == 0) order.push_back(p);
  REQUIRE(order.size() == 10);
  CHECK(order[0] == "a");
  CHECK(order[1] == "a\x01");
  CHECK(order[3] == "a b");
  CHECK(order[5] == "a/" + LongName("sub-"));
  CHECK(order[6] == "a0");
  CHECK(order[8] == "a\xff");
}

TEST_CASE("scan walks 500 levels of 255-byte names, far beyond PATH_MAX", "[scan]") {
  DeepTempDir t;
  int root_fd = ::open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(root_fd >= 0);
  const std::string deepest = MakeDeepChain(root_fd, LongName("top-"), 500);
  // A second, shallower branch beside it.
  const std::string side = MakeDeepChain(root_fd, "side", 20);
  ::close(root_fd);
  REQUIRE(deepest.size() > 4 * PATH_MAX);

  const TotalsMap ref = ReferenceWalk(t.path());
  REQUIRE(ref.size() == 1 + 500 + 20);
  // 50 files of sizes 0, 10, ..., 490 and 50 symlinks of 4 bytes in the deep chain.
  CHECK(ref.at(LongName("top-")) == Totals{(0 + 490) * 50 / 2 + 50 * 4, 100, 499});
  CHECK(ref.at(deepest) == Totals{0, 0, 0});

  CheckAllThreads(t.path(), ref);
  // Start directories whose paths are below the scanner's switch to parent-relative opens
  // (3000 bytes), between it and PATH_MAX, and far beyond PATH_MAX.
  unsigned threads = 1;
  for (const char* below : {"/level010-", "/level014-", "/level300-"}) {
    const std::string start = deepest.substr(0, deepest.find(below));
    CheckScan(t.path(), ref, start, threads++);
  }
  CheckScan(t.path(), ref, deepest, 2);
  CheckScan(t.path(), ref, side, 2);
}

TEST_CASE("scan of a directory with 100k entries", "[scan]") {
  TempDir t;
  const std::string wide = t / "wide";
  MakeDir(wide);
  int dir_fd = ::open(wide.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dir_fd >= 0);
  uint64_t bytes = 0, files = 0, dirs = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::string name = fmt::format("entry-{:06}", i);
    if (i % 100 == 0) {  // one in a hundred is a directory holding one file
      REQUIRE(::mkdirat(dir_fd, name.c_str(), 0755) == 0);
      int sub = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      REQUIRE(sub >= 0);
      int fd = ::openat(sub, "inner", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      REQUIRE(fd >= 0);
      REQUIRE(::ftruncate(fd, 5) == 0);
      ::close(fd);
      ::close(sub);
      bytes += 5;
      ++files;
      ++dirs;
      continue;
    }
    int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    if (i % 7 == 0) {
      REQUIRE(::ftruncate(fd, i) == 0);
      bytes += static_cast<uint64_t>(i);
    }
    ::close(fd);
    ++files;
  }
  ::close(dir_fd);

  const TotalsMap ref = ReferenceWalk(t.path());
  CHECK(ref.at("wide") == Totals{bytes, files, dirs});
  CHECK(ref.at("") == Totals{bytes, files, dirs + 1});
  CheckScan(t.path(), ref, "", 2);  // one scan: thread counts are compared on the other trees
}

TEST_CASE("scan agrees with the reference on random seeded trees", "[scan]") {
  for (uint64_t seed : {1, 42, 20240601}) {
    DYNAMIC_SECTION("seed " << seed) {
      TempDir t;
      MakeRandomTree(t.path(), seed, 1000);
      const TotalsMap ref = ReferenceWalk(t.path());
      CheckAllThreads(t.path(), ref);
      // A few start directories, picked by the same seed.
      std::mt19937_64 rng(seed);
      std::vector<std::string> all;
      for (const auto& [p, _] : ref) all.push_back(p);
      for (int i = 0; i < 3; ++i)
        CheckScan(t.path(), ref, all[std::uniform_int_distribution<size_t>(0, all.size() - 1)(rng)],
                  1 + i % 2);
    }
  }
}

TEST_CASE("scan lists every file it meets under two or more names, with all its names", "[scan]") {
  TempDir t;
  const std::string r = t.path();
  MakeDir(r + "/a");
  MakeDir(r + "/a/b");
  MakeDir(r + "/c");
  MakeFile(r + "/a/three", 300);
  MakeHardLink(r + "/a/three", r + "/a/b/three-2");
  MakeHardLink(r + "/a/three", r + "/c/three\n3");
  MakeFile(r + "/c/two", 20);
  MakeHardLink(r + "/c/two", r + "/two-at-root");
  MakeFile(r + "/a/b/single", 5);
  MakeFile(r + "/a/b/half", 7);  // its second name is outside the scanned subtree below
  MakeHardLink(r + "/a/b/half", r + "/c/half");
  for (unsigned threads : {1u, 2u, 4u}) {
    CAPTURE(threads);
    ScanOptions options;
    options.threads = threads;
    auto all = ScanTree(r, "", options);
    REQUIRE(all.ok());
    auto key = [&](const std::string& rel) {
      struct stat st, root;
      REQUIRE(::lstat((r + "/" + rel).c_str(), &st) == 0);
      REQUIRE(::stat(r.c_str(), &root) == 0);
      return LinkKey{st.st_dev ^ root.st_dev, st.st_ino};  // 0 on the root's filesystem
    };
    std::vector<LinkRecord> expected = {
        {key("a/three"), 300, {"a/b/three-2", "a/three", "c/three\n3"}},
        {key("c/two"), 20, {"c/two", "two-at-root"}},
        {key("c/half"), 7, {"a/b/half", "c/half"}}};
    std::sort(expected.begin(), expected.end(),
              [](const LinkRecord& x, const LinkRecord& y) { return x.key < y.key; });
    CHECK(all->links == expected);

    auto part = ScanTree(r, "a", options);
    REQUIRE(part.ok());
    REQUIRE(part->links.size() == 1);
    CHECK(part->links[0] == LinkRecord{key("a/three"), 300, {"a/b/three-2", "a/three"}});
  }
}

TEST_CASE("scan reports progress and its last report matches the result", "[scan]") {
  TempDir t;
  MakeRandomTree(t.path(), 7, 300);
  std::vector<ScanProgress> seen;
  ScanOptions options;
  options.on_progress = [&](const ScanProgress& p) { seen.push_back(p); };
  auto r = ScanTree(t.path(), "", options);
  REQUIRE(r.ok());
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().entries == r->entries);
  CHECK(seen.back().dirs == r->dirs.size());
}

TEST_CASE("scan fails with a status naming the path it could not open", "[scan]") {
  TempDir t;
  MakeDir(t / "a");
  MakeFile(t / "a/file", 3);
  MakeSymlink("a", t / "link");
  MakeDir(t / "outside");
  MakeDir(t / "outside/sub");
  MakeSymlink("../outside", t / "a/escape");

  auto missing_root = ScanTree(t / "no-such-root", "", ScanOptions{});
  REQUIRE_FALSE(missing_root.ok());
  CHECK(missing_root.status().errno_value() == ENOENT);
  CHECK_THAT(missing_root.status().message(), Catch::Contains(t / "no-such-root"));

  auto missing_start = ScanTree(t.path(), "a/no/such", ScanOptions{});
  REQUIRE_FALSE(missing_start.ok());
  CHECK(missing_start.status().errno_value() == ENOENT);
  CHECK_THAT(missing_start.status().message(), Catch::Contains(t / "a/no/such"));

  auto file_start = ScanTree(t.path(), "a/file", ScanOptions{});
  REQUIRE_FALSE(file_start.ok());
  CHECK(file_start.status().errno_value() == ENOTDIR);
  CHECK_THAT(file_start.status().message(), Catch::Contains(t / "a/file"));

  for (const std::string start : {"../a", "a/", "/a", "a//file", "a/./file"}) {
    auto bad = ScanTree(t.path(), start, ScanOptions{});
    CHECK_FALSE(bad.ok());
    CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  }

  // A start path is never resolved through a symlink, neither as its last component nor on
  // the way (a symlink could lead out of the source).
  for (const std::string start : {"link", "a/escape", "a/escape/sub", "link/escape"}) {
    INFO("start " << start);
    auto through_link = ScanTree(t.path(), start, ScanOptions{});
    CHECK_FALSE(through_link.ok());
    if (!through_link.ok()) CHECK_THAT(through_link.status().message(), Catch::Contains(t / start));
  }
}

// Runs fn in a child process that is not root (uid/gid 65534 when we are root), and returns
// what it wrote to its pipe; "SKIP: why" when privileges could not be dropped.
template <typename Fn>
std::string RunUnprivileged(Fn fn) {
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string out;
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      out = fmt::format("SKIP: cannot drop root: {}", std::strerror(errno));
    else
      out = fn();
    for (size_t off = 0; off < out.size();) {
      ssize_t n = ::write(pipe_fds[1], out.data() + off, out.size() - off);
      if (n <= 0) ::_exit(3);
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return out;
}

TEST_CASE("scan records unreadable directories and counts what it could read", "[scan]") {
  TempDir t;
  MakeDir(t / "a");
  MakeFile(t / "a/file", 10);
  MakeDir(t / "locked");  // not readable: its content is unknown, the directory itself counts
  MakeFile(t / "locked/inner", 100);
  MakeDir(t / "locked/sub");
  MakeDir(t / "noexec");  // listable but not searchable: its entries cannot be stat'ed
  MakeFile(t / "noexec/f", 7);
  REQUIRE(::chmod((t / "locked").c_str(), 0) == 0);
  REQUIRE(::chmod((t / "noexec").c_str(), 0644) == 0);

  // Root reads through permission bits, so the scan runs as nobody in a child process.
  const std::string root = t.path();
  const std::string report = RunUnprivileged([&root] {
    auto r = ScanTree(root, "", ScanOptions{});
    if (!r.ok()) return "failed: " + r.status().ToString();
    std::string out;
    for (const auto& e : r->errors) out += fmt::format("error {}|{}|{}\n", e.path, e.op, e.err);
    for (const auto& [p, v] : r->dirs)
      out += fmt::format("dir {}|{}|{}|{}\n", p, v.bytes, v.files, v.dirs);
    if (!r->errors.empty()) out += "message " + r->errors.front().ToString(root) + "\n";
    return out;
  });
  ::chmod((t / "locked").c_str(), 0755);
  ::chmod((t / "noexec").c_str(), 0755);
  if (report.rfind("SKIP", 0) == 0) {
    WARN(report);
    return;
  }
  CHECK(report == fmt::format("error locked|open|{}\n"
                              "error noexec/f|stat|{}\n"
                              "dir |10|1|3\n"
                              "dir a|10|1|0\n"
                              "dir locked|0|0|0\n"
                              "dir noexec|0|0|0\n"
                              "message open {}/locked: {}\n",
                              EACCES, EACCES, root, std::strerror(EACCES)));
}

}  // namespace
}  // namespace dtkfs
