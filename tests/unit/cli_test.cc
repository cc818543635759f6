// The dtkfs command line, run as a real process (DTKFS_BINARY) with its own XDG_STATE_HOME:
// scan, du, top and check against the reference walk, the exit statuses (0 ok, 1 findings,
// 2 error), the messages for bad input, and where and how the index is stored.
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/reference_walk.h"
#include "support/temp_dir.h"

extern char** environ;

namespace dtkfs {
namespace {

using testing::ReadFileBytes;
using testing::ReferenceWalk;
using testing::TempDir;
using testing::WriteFileBytes;

struct Run {
  int code = -1;
  std::string out;
  std::string err;
};

void MakeFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  if (size <= 4096) {
    std::string data(size, 'y');
    REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(size));
  } else {
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);  // sparse
  }
  ::close(fd);
}
void MakeDir(const std::string& path) { REQUIRE(::mkdir(path.c_str(), 0755) == 0); }

// A dtkfs to run: one state directory (XDG_STATE_HOME) and a scratch directory for output.
class Cli {
 public:
  std::string state() const { return state_.path(); }

  Run operator()(const std::vector<std::string>& args) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, "XDG_STATE_HOME=", 15) != 0) env_strings.emplace_back(*e);
    env_strings.push_back("XDG_STATE_HOME=" + state_.path());
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    std::vector<std::string> argv_strings{DTKFS_BINARY};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    const std::string out_path = scratch_ / "stdout";
    const std::string err_path = scratch_ / "stderr";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    Run r;
    r.out = ReadFileBytes(out_path);
    r.err = ReadFileBytes(err_path);
    INFO("dtkfs " << fmt::format("{}", fmt::join(args, " ")) << "\nstdout:\n"
                  << r.out << "\nstderr:\n"
                  << r.err);
    REQUIRE(WIFEXITED(status));
    r.code = WEXITSTATUS(status);
    return r;
  }

  // `dtkfs scan src`, checked; returns the index path it reports ("... -> PATH").
  std::string Scan(const std::string& src) {
    Run r = (*this)({"scan", src});
    INFO(r.err);
    REQUIRE(r.code == 0);
    const size_t arrow = r.err.rfind("-> ");
    REQUIRE(arrow != std::string::npos);
    const size_t end = r.err.find('\n', arrow);
    return r.err.substr(arrow + 3, end == std::string::npos ? end : end - arrow - 3);
  }

 private:
  TempDir state_;
  TempDir scratch_;
};

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// A source tree with a bit of everything, sizes chosen so that no two directories tie.
void MakeSource(const std::string& src) {
  MakeDir(src + "/sub");
  MakeDir(src + "/sub/deeper");
  MakeDir(src + "/other");
  MakeDir(src + "/empty");
  MakeFile(src + "/top-file", 11);
  MakeFile(src + "/sub/a", 1000);
  MakeFile(src + "/sub/deeper/b", 3000);
  MakeFile(src + "/sub/sparse", 1ull << 33);
  REQUIRE(::link((src + "/sub/a").c_str(), (src + "/other/a-link").c_str()) == 0);
  REQUIRE(::symlink("../sub", (src + "/other/to-sub").c_str()) == 0);
  REQUIRE(::mkfifo((src + "/other/fifo").c_str(), 0644) == 0);
  MakeFile(src + "/other/gone-soon", 77);
}

// MakeSource's tree made under t/src and scanned: its index.
std::string ScanNewSource(const TempDir& t, Cli& dtkfs) {
  const std::string src = t / "src";
  MakeDir(src);
  MakeSource(src);
  return dtkfs.Scan(src);
}

TEST_CASE("cli: scan then du prints the reference walk's bytes", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  const std::string index = ScanNewSource(t, dtkfs);
  const auto ref = ReferenceWalk(src);

  SECTION("du of directories") {
    Run r = dtkfs({"du", src, src + "/sub", src + "/sub/deeper", src + "/empty"});
    CHECK(r.code == 0);
    CHECK(r.out == Lines({fmt::format("{}\t{}", ref.at("").bytes, src),
                          fmt::format("{}\t{}/sub", ref.at("sub").bytes, src),
                          fmt::format("{}\t{}/sub/deeper", ref.at("sub/deeper").bytes, src),
                          fmt::format("0\t{}/empty", src)}));
    CHECK(r.err.empty());
    // A path with a trailing slash or through "." is the same directory.
    r = dtkfs({"du", src + "/sub/"});
    CHECK(r.code == 0);
    CHECK(r.out == fmt::format("{}\t{}/sub/\n", ref.at("sub").bytes, src));
  }

  SECTION("du --json carries all three totals") {
    Run r = dtkfs({"du", "--json", src, src + "/other"});
    CHECK(r.code == 0);
    const auto& a = ref.at("");
    const auto& o = ref.at("other");
    CHECK(r.out == fmt::format("[{{\"path\":\"{}\",\"bytes\":{},\"files\":{},\"dirs\":{}}},"
                               "{{\"path\":\"{}/other\",\"bytes\":{},\"files\":{},\"dirs\":{}}}]\n",
                               src, a.bytes, a.files, a.dirs, src, o.bytes, o.files, o.dirs));
    CHECK(a.files == 8);
    CHECK(a.dirs == 4);
  }

  SECTION("du of a file or symlink gives its own size") {
    Run r = dtkfs({"du", src + "/sub/a", src + "/sub/sparse", src + "/other/to-sub"});
    CHECK(r.code == 0);
    CHECK(r.out == Lines({fmt::format("1000\t{}/sub/a", src),
                          fmt::format("{}\t{}/sub/sparse", 1ull << 33, src),
                          fmt::format("6\t{}/other/to-sub", src)}));
    r = dtkfs({"du", "--json", src + "/sub/a"});
    CHECK(r.out ==
          fmt::format("[{{\"path\":\"{}/sub/a\",\"bytes\":1000,\"files\":1,\"dirs\":0}}]\n", src));
  }

  SECTION("the index is private: file 0600 in a 0700 directory under XDG_STATE_HOME") {
    CHECK(index.rfind(dtkfs.state() + "/dtkfs/", 0) == 0);
    struct stat st;
    REQUIRE(::stat(index.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    REQUIRE(::stat((dtkfs.state() + "/dtkfs").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    // Nothing was written into the source.
    CHECK(ReferenceWalk(src) == ref);
  }
}

TEST_CASE("cli: du -h prints du-style human units", "[cli]") {
  TempDir t;
  const std::string src = t / "h";
  MakeDir(src);
  for (const char* d : {"small", "mid", "big", "ten"}) MakeDir(src + "/" + d);
  MakeFile(src + "/small/f", 1023);
  MakeFile(src + "/mid/f", 1536);
  MakeFile(src + "/big/f", (5ull << 30) + 1);  // just above 5 GiB rounds up, as du -h does
  MakeFile(src + "/ten/f", 10695475);          // 10.2 MiB: no decimal at 10 and above
  Cli dtkfs;
  dtkfs.Scan(src);
  Run r = dtkfs({"du", "-h", src + "/small", src + "/mid", src + "/big", src + "/ten", src});
  CHECK(r.code == 0);
  CHECK(r.out == Lines({"1023\t" + src + "/small", "1.5K\t" + src + "/mid", "5.1G\t" + src + "/big",
                        "11M\t" + src + "/ten", "5.1G\t" + src}));
  r = dtkfs({"du", "--human-readable", src + "/mid/f"});
  CHECK(r.out == "1.5K\t" + src + "/mid/f\n");
}

TEST_CASE("cli: top lists the largest directories in order", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  MakeDir(src);
  MakeDir(src + "/a");
  MakeDir(src + "/a/x");
  MakeDir(src + "/b");
  MakeDir(src + "/c");
  MakeFile(src + "/a/f", 500);
  MakeFile(src + "/a/x/f", 2500);  // a/x (2500) is larger than b (2000), but one level down
  MakeFile(src + "/b/f", 2000);
  MakeFile(src + "/c/f", 100);
  Cli dtkfs;
  dtkfs.Scan(src);

  Run r = dtkfs({"top", "-n", "2", "--depth", "1", src});
  CHECK(r.code == 0);
  CHECK(r.out == Lines({"3000\t" + src + "/a", "2000\t" + src + "/b"}));
  r = dtkfs({"top", "-n", "2", src});
  CHECK(r.out == Lines({"3000\t" + src + "/a", "2500\t" + src + "/a/x"}));
  r = dtkfs({"top", src + "/a"});
  CHECK(r.out == Lines({"2500\t" + src + "/a/x"}));
  r = dtkfs({"top", "--json", "-n", "1", src});
  CHECK(r.out == "[{\"path\":\"" + src + "/a\",\"bytes\":3000,\"files\":2,\"dirs\":1}]\n");
  r = dtkfs({"top", src + "/a/f"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains(src + "/a/f") && Catch::Contains("not a directory"));
}

// check's stdout as a set of "KIND<TAB>PATH".
std::set<std::string> Findings(const std::string& out) {
  std::set<std::string> found;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const size_t tab = line.find('\t');
    const size_t tab2 = line.find('\t', tab + 1);
    found.insert(line.substr(0, tab2));
  }
  return found;
}

TEST_CASE("cli: check finds changes made behind the index, --repair fixes them", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  MakeDir(src);
  MakeSource(src);
  MakeDir(src + "/will-go");
  Cli dtkfs;
  dtkfs.Scan(src);

  Run r = dtkfs({"check", src});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::Contains("matches"));

  MakeFile(src + "/sub/deeper/new-file", 50);                  // sub/deeper, sub and the root grow
  REQUIRE(::unlink((src + "/other/gone-soon").c_str()) == 0);  // other shrinks
  MakeDir(src + "/new-dir");                                   // not in the index
  MakeFile(src + "/new-dir/f", 5);
  REQUIRE(::rmdir((src + "/will-go").c_str()) == 0);  // in the index only

  r = dtkfs({"check", src});
  CHECK(r.code == 1);
  CHECK(Findings(r.out) ==
        std::set<std::string>{"differs\t" + src, "differs\t" + src + "/sub",
                              "differs\t" + src + "/sub/deeper", "differs\t" + src + "/other",
                              "new\t" + src + "/new-dir", "gone\t" + src + "/will-go"});
  CHECK_THAT(r.err, Catch::Contains("6 entries differ") && Catch::Contains("--repair"));
  // check alone changes nothing.
  CHECK(dtkfs({"check", src}).code == 1);

  r = dtkfs({"check", "--repair", src});
  CHECK(r.code == 1);  // there were findings; they are repaired
  CHECK_THAT(r.err, Catch::Contains("repaired"));

  r = dtkfs({"check", src});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  const auto ref = ReferenceWalk(src);
  r = dtkfs({"du", "--json", src, src + "/new-dir"});
  CHECK(r.code == 0);
  CHECK(r.out == fmt::format("[{{\"path\":\"{}\",\"bytes\":{},\"files\":{},\"dirs\":{}}},"
                             "{{\"path\":\"{}/new-dir\",\"bytes\":5,\"files\":1,\"dirs\":0}}]\n",
                             src, ref.at("").bytes, ref.at("").files, ref.at("").dirs, src));
}

TEST_CASE("cli: check --json gives the findings as one object with stable fields", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  MakeDir(src);
  MakeDir(src + "/sub");
  MakeDir(src + "/will-go");
  MakeFile(src + "/sub/a", 10);
  Cli dtkfs;
  const std::string index = dtkfs.Scan(src);

  Run r = dtkfs({"check", "--json", src});
  CHECK(r.code == 0);
  CHECK(r.out == fmt::format(R"({{"source":"{}","index":"{}","directories":3,"findings":[],)"
                             R"("errors":[],"repaired":false}})"
                             "\n",
                             src, index));

  MakeFile(src + "/sub/b", 5);
  MakeDir(src + "/new\"dir");
  REQUIRE(::rmdir((src + "/will-go").c_str()) == 0);
  REQUIRE(::link((src + "/sub/a").c_str(), (src + "/sub/a2").c_str()) == 0);
  r = dtkfs({"check", "--json", src});
  CHECK(r.code == 1);
  const std::string findings = fmt::format(
      R"({{"kind":"differs","path":"{0}","index":{{"bytes":10,"files":1,"dirs":2}},)"
      R"("walk":{{"bytes":25,"files":3,"dirs":2}}}},)"
      R"({{"kind":"new","path":"{0}/new\"dir","index":null,)"
      R"("walk":{{"bytes":0,"files":0,"dirs":0}}}},)"
      R"({{"kind":"differs","path":"{0}/sub","index":{{"bytes":10,"files":1,"dirs":0}},)"
      R"("walk":{{"bytes":25,"files":3,"dirs":0}}}},)"
      R"({{"kind":"gone","path":"{0}/will-go","index":{{"bytes":0,"files":0,"dirs":0}},)"
      R"("walk":null}},)"
      R"({{"kind":"links","path":"{0}/sub/a","index":null,"walk":{{"names":2,"size":10}}}})",
      src);
  CHECK(r.out == fmt::format(R"({{"source":"{}","index":"{}","directories":3,"findings":[{}],)"
                             R"("errors":[],"repaired":false}})"
                             "\n",
                             src, index, findings));

  r = dtkfs({"check", "--json", "--repair", src});
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::EndsWith(R"("errors":[],"repaired":true})"
                                    "\n"));
  r = dtkfs({"check", "--json", src});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains(R"("findings":[])"));
}

TEST_CASE("cli: errors exit 2 with a message naming the path", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  MakeDir(src);
  MakeSource(src);
  Cli dtkfs;

  SECTION("a missing source") {
    for (const char* cmd : {"scan", "check"}) {
      Run r = dtkfs({cmd, t / "missing"});
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Catch::Contains(t / "missing"));
    }
  }

  SECTION("du and top outside any scanned source") {
    dtkfs.Scan(src);
    const std::string outside = t / "outside";
    MakeDir(outside);
    Run r = dtkfs({"du", outside});
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(outside) && Catch::Contains("not inside a scanned source"));
    r = dtkfs({"top", outside});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(outside));
    // A missing path inside the source.
    r = dtkfs({"du", src + "/no-such"});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(src + "/no-such"));
    // One bad path among good ones: the good ones are still printed, the status is 2.
    r = dtkfs({"du", src + "/no-such", src + "/sub/a"});
    CHECK(r.code == 2);
    CHECK(r.out == "1000\t" + src + "/sub/a\n");
  }

  SECTION("a directory created after the scan") {
    dtkfs.Scan(src);
    MakeDir(src + "/later");
    Run r = dtkfs({"du", src + "/later"});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(src + "/later") && Catch::Contains("not in the index"));
  }

  SECTION("an index inside the source is refused") {
    const auto before = ReferenceWalk(src);
    Run r = dtkfs({"scan", src, "--index", src + "/inside.idx"});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("inside the source"));
    r = dtkfs({"scan", src, "--index", src + "/sub/inside.idx"});
    CHECK(r.code == 2);
    // Also when the source is named through a symlink to it.
    REQUIRE(::symlink(src.c_str(), (t / "alias").c_str()) == 0);
    r = dtkfs({"scan", t / "alias", "--index", src + "/inside.idx"});
    CHECK(r.code == 2);
    r = dtkfs({"scan", src, "--index", t / "alias/inside.idx"});
    CHECK(r.code == 2);
    CHECK(ReferenceWalk(src) == before);  // nothing was written into the source
  }

  SECTION("an explicit --index outside the source works for scan, du, top and check") {
    const std::string idx = t / "elsewhere/my.idx";
    Run r = dtkfs({"scan", src, "--index", idx});
    CHECK(r.code == 0);
    CHECK_THAT(r.err, Catch::Contains("-> " + idx));
    const auto ref = ReferenceWalk(src);
    r = dtkfs({"du", "--index", idx, src + "/sub"});
    CHECK(r.code == 0);
    CHECK(r.out == fmt::format("{}\t{}/sub\n", ref.at("sub").bytes, src));
    CHECK(dtkfs({"check", src, "--index", idx}).code == 0);
    // Without --index the default index does not exist: du does not know the source.
    CHECK(dtkfs({"du", src}).code == 2);
  }

  SECTION("a corrupt index is refused with a clear message, and a scan rebuilds it") {
    const std::string index = dtkfs.Scan(src);
    const std::string good = ReadFileBytes(index);
    REQUIRE(good.size() > 100);
    struct Case {
      const char* name;
      std::string bytes;
      const char* says;
    };
    std::string flipped = good;
    flipped[good.size() / 2] ^= 0x40;
    const std::vector<Case> cases = {
        {"garbage", std::string(200, 'g'), "not a dtkfs index"},
        {"empty", "", "truncated"},
        {"truncated", good.substr(0, good.size() - 30), "trunc"},
        {"one flipped bit", flipped, "checksum"},
    };
    for (const auto& c : cases) {
      INFO(c.name);
      WriteFileBytes(index, c.bytes);
      Run r = dtkfs({"du", src});
      CHECK(r.code == 2);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Catch::Contains(index) && Catch::Contains(c.says));
      CHECK(dtkfs({"top", src}).code == 2);
    }
    // check cannot compare with an unreadable index: an error; --repair rewrites it.
    Run r = dtkfs({"check", src});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(index) && Catch::Contains("unreadable"));
    CHECK(dtkfs({"check", "--repair", src}).code == 1);
    CHECK(dtkfs({"check", src}).code == 0);
    // And a plain scan over a corrupt (truncated) dtkfs index rebuilds it too.
    WriteFileBytes(index, good.substr(0, 40));
    dtkfs.Scan(src);
    r = dtkfs({"du", src});
    CHECK(r.code == 0);
    CHECK(r.out == fmt::format("{}\t{}\n", ReferenceWalk(src).at("").bytes, src));
  }

  SECTION("usage errors") {
    CHECK(dtkfs({}).code == 2);
    CHECK(dtkfs({"frobnicate"}).code == 2);
    CHECK(dtkfs({"du"}).code == 2);
    CHECK(dtkfs({"scan"}).code == 2);
    CHECK(dtkfs({"top", "-n", "many", src}).code == 2);
  }
}

TEST_CASE("cli: export from the index: ncdu adds up, prometheus is bounded", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  ScanNewSource(t, dtkfs);
  const auto ref = ReferenceWalk(src);

  Run r = dtkfs({"export", "--format", "ncdu", src + "/sub"});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK_THAT(r.out, Catch::StartsWith(R"([1,2,{"progname":"dtkfs",)"));
  // sub holds a and sparse itself, deeper holds b.
  CHECK_THAT(r.out, Catch::Contains(fmt::format(R"({{"name":"<files>","asize":{},"dsize":{},)"
                                                R"("dtkfs_files":2}})",
                                                1000 + (1ull << 33), 1000 + (1ull << 33))));
  CHECK_THAT(r.out, Catch::Contains(R"([{"name":"deeper","dtkfs_total_bytes":3000,)"));

  r = dtkfs({"export", "--format", "prometheus", "--top", "1", src});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains(fmt::format("dtkfs_directory_bytes{{path=\"{}\"}} {}\n", src,
                                                ref.at("").bytes)));
  CHECK_THAT(r.out, Catch::Contains(fmt::format("dtkfs_directory_bytes{{path=\"{}/sub\"}} {}\n",
                                                src, ref.at("sub").bytes)));
  CHECK_THAT(r.out, !Catch::Contains(src + "/other"));
  CHECK_THAT(r.out, Catch::Contains("# TYPE dtkfs_totals_timestamp_seconds gauge"));
}

TEST_CASE("cli: export refuses bad arguments and leaves no partial output", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  ScanNewSource(t, dtkfs);
  const std::string out = t / "out";
  MakeDir(out);

  auto refused = [&](const std::vector<std::string>& args, const std::string& why) {
    Run r = dtkfs(args);
    INFO(fmt::format("{}", fmt::join(args, " ")));
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(why));
  };
  refused({"export", src}, "--format is required");
  refused({"export", "--format", "csv", src}, "'csv' is not ncdu or prometheus");
  refused({"export", "--format", "ncdu", "--depth", "2", src}, "--depth and --top");
  refused({"export", "--format", "ncdu", "--top", "2", src}, "--depth and --top");
  refused({"export", "--format", "prometheus", "--top", "0", src}, "out of range");
  refused({"export", "--format", "prometheus", "--top", "1e10", src}, "out of range");
  refused({"export", "--format", "prometheus", "--depth", "-1", src}, "out of range");
  refused({"export", "--format", "prometheus", "--depth", "2.5", src}, "not a whole number");
  refused({"export", "--format", "ncdu", src + "/top-file"}, "not a directory");
  refused({"export", "--format", "ncdu", src + "/nothing"}, "nothing");
  refused({"export", "--format", "ncdu", t.path()}, "not inside a scanned source");
  refused({"export", "--format", "ncdu", "--output", "", src}, "empty");
  // Into a missing directory, or over a directory: an error naming it, nothing left behind.
  refused({"export", "--format", "ncdu", "--output", out + "/missing/x.json", src},
          out + "/missing/x.json.tmp");
  MakeDir(out + "/a-dir");
  refused({"export", "--format", "prometheus", "--output", out + "/a-dir", src}, out + "/a-dir");
  struct stat st;
  CHECK(::stat((out + "/a-dir.tmp").c_str(), &st) != 0);
  CHECK(::stat((out + "/missing").c_str(), &st) != 0);

  // A good export replaces the file whole; a failed one later leaves it as it was.
  Run r = dtkfs({"export", "--format", "prometheus", "--output", out + "/d.prom", src});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  const std::string good = ReadFileBytes(out + "/d.prom");
  CHECK_THAT(good, Catch::Contains("dtkfs_directory_bytes{path=\"" + src + "\"}"));
  refused({"export", "--format", "prometheus", "--output", out + "/d.prom", src + "/top-file"},
          "not a directory");
  CHECK(ReadFileBytes(out + "/d.prom") == good);
  CHECK(::stat((out + "/d.prom.tmp").c_str(), &st) != 0);
}

// Files in dir whose names start with prefix (leftover temporary files of an export).
std::vector<std::string> FilesStartingWith(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : boost::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

// Bug: as root, `--output /dev/full` created /dev/full.tmp, wrote the export there and renamed
// it over the device node (exit 0, the device gone). A character device (or fifo) named
// directly is now written into, as a shell redirection would: on a full one that fails with
// ENOSPC, exit 2, and nothing is left beside it. Tested on a copy of /dev/full's node.
TEST_CASE("regression: export --output to a full character device exits 2 and replaces nothing",
          "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  const std::string index = ScanNewSource(t, dtkfs);
  const std::string dev = t / "dev";
  MakeDir(dev);
  if (::mknod((dev + "/full").c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0 ||
      ::mknod((dev + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    WARN("cannot make device nodes here (" << std::strerror(errno) << "): not run");
    return;
  }
  Run r = dtkfs({"export", "--format", "ncdu", "--index", index, "--output", dev + "/full", src});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("No space left on device"));
  r = dtkfs({"export", "--format", "prometheus", "--index", index, "--output", dev + "/null", src});
  CHECK(r.code == 0);
  for (const char* name : {"/full", "/null"}) {
    struct stat st;
    REQUIRE(::lstat((dev + name).c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
  }
  CHECK(FilesStartingWith(dev, "full.").empty());
  CHECK(FilesStartingWith(dev, "null.").empty());
}

// Bug: a symbolic link at --output was replaced by the export, so `--output /dev/stdout` run
// as root replaced /dev/stdout. A link is now refused and left as it is.
TEST_CASE("regression: export --output naming a symbolic link refuses and keeps the link",
          "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  const std::string index = ScanNewSource(t, dtkfs);
  WriteFileBytes(t / "target", "kept");
  REQUIRE(::symlink("target", (t / "link").c_str()) == 0);
  REQUIRE(::symlink("nowhere", (t / "dangling").c_str()) == 0);
  for (const std::string& link : {t / "link", t / "dangling"}) {
    Run r = dtkfs({"export", "--format", "ncdu", "--index", index, "--output", link, src});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("a symbolic link"));
    struct stat st;
    REQUIRE(::lstat(link.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
  }
  CHECK(ReadFileBytes(t / "target") == "kept");
  CHECK(FilesStartingWith(t.path(), "link.").empty());
}

// Bug: every export wrote FILE.tmp; a second export removed the first's FILE.tmp and created
// its own, the first then renamed the second's half-written file over FILE (a partial export
// visible) and the second failed to rename (exit 2). Each export now has a temporary name of
// its own.
TEST_CASE("regression: concurrent exports to one --output all succeed and leave a whole file",
          "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  MakeDir(src);
  for (int a = 0; a < 40; ++a) {
    MakeDir(fmt::format("{}/dir-{}", src, a));
    for (int b = 0; b < 50; ++b) MakeDir(fmt::format("{}/dir-{}/sub-{}", src, a, b));
  }
  Cli dtkfs;
  const std::string index = dtkfs.Scan(src);
  const std::string out = t / "out";
  MakeDir(out);
  const std::string file = out + "/tree.json";
  std::vector<std::string> argv_strings = {DTKFS_BINARY, "export",   "--format", "ncdu", "--index",
                                           index,        "--output", file,       src};
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (int round = 0; round < 4; ++round) {
    std::vector<pid_t> pids;
    for (int i = 0; i < 6; ++i) {
      pid_t pid = -1;
      REQUIRE(::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
      pids.push_back(pid);
    }
    for (pid_t pid : pids) {
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      INFO("round " << round);
      CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    const std::string text = ReadFileBytes(file);
    CHECK(text.size() > 100000);
    CHECK(text.ends_with("]]\n"));
    CHECK(FilesStartingWith(out, "tree.json.").empty());
  }
}

TEST_CASE("regression: export --output naming the index it reads is refused", "[cli]") {
  TempDir t;
  const std::string src = t / "src";
  Cli dtkfs;
  const std::string index = ScanNewSource(t, dtkfs);
  const std::string before = ReadFileBytes(index);
  Run r = dtkfs({"export", "--format", "ncdu", "--index", index, "--output", index, src});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("is the index the totals are read from"));
  CHECK(ReadFileBytes(index) == before);
  r = dtkfs({"export", "--format", "ncdu", "--output", index, src});  // found from src
  CHECK(r.code == 2);
  CHECK(ReadFileBytes(index) == before);
}

TEST_CASE("cli: every subcommand accepts --help", "[cli]") {
  Cli dtkfs;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"scan", "--help"},
                                             {"du", "--help"},
                                             {"top", "--help"},
                                             {"check", "--help"},
                                             {"export", "--help"},
                                             {"status", "--help"}}) {
    Run r = dtkfs(args);
    INFO(fmt::format("{}", fmt::join(args, " ")));
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("Usage") || Catch::Contains("usage"));
    CHECK_THAT(r.out, Catch::Contains(args.front() == "--help" ? "scan" : args.front()));
  }
  Run r = dtkfs({"--version"});
  CHECK(r.code == 0);
}

}  // namespace
}  // namespace dtkfs
