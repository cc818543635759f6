// End-to-end: `dtkfs export` from a real mount and, after unmounting, from its index, on a
// tree with odd names (newline, quote, backslash, bytes that are not UTF-8, a name that reads
// like a label escape), hard links across directories and empty directories. Each export is
// read by the tool it is for, never by dtkfs's own code:
//   - ncdu: Debian's `ncdu -f EXPORT -o REEXPORT` must read it without a word on stderr (ncdu
//     exits 0 even on a parse error), and what the re-export adds up below every directory
//     must equal ReferenceWalk of the source; the names come back byte for byte;
//   - prometheus: prometheus_client's parser (Debian's python3-prometheus-client) must parse
//     it, and the root's bytes, and every labelled directory's, equal the walk's.
// `dtkfs status --json` is read by Python's json module.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/label_text.h"
#include "support/mount_fixture.h"
#include "support/reference_walk.h"

using namespace dtkfs::testing;

namespace {

// Debian's interpreter: python3-prometheus-client installs into its dist-packages, which a
// python3 earlier in PATH (a virtualenv, pyenv) may not see.
const char* const kPython = "/usr/bin/python3";

// Reads an export the way its consumer does and prints one line per directory or sample, with
// names as hex so that any byte survives the trip back:
//   ncdu FILE        HEX(relative path)<TAB>summed asize below it<TAB>summed dtkfs_files
//   prometheus FILE  metric<TAB>HEX(path or root label)<TAB>value
//   json FILE        key<TAB>type name, for each key of one JSON object
const char* const kReader = R"PY(
import json, sys
mode, path = sys.argv[1], sys.argv[2]
text = open(path, 'rb').read().decode('utf-8', 'surrogateescape')
raw = lambda s: s.encode('utf-8', 'surrogateescape')
if mode == 'ncdu':
    doc = json.loads(text)
    assert doc[0] == 1 and doc[1] >= 2, doc[:2]
    lines = []
    def walk(node, rel):
        total, files = node[0].get('asize', 0), 0
        for child in node[1:]:
            if isinstance(child, list):
                name = raw(child[0]['name'])
                t, f = walk(child, rel + b'/' + name if rel else name)
            else:
                t, f = child.get('asize', 0), child.get('dtkfs_files', 0)
            total, files = total + t, files + f
        lines.append('%s\t%d\t%d' % (rel.hex(), total, files))
        return total, files
    walk(doc[3], b'')
    print('\n'.join(lines))
elif mode == 'prometheus':
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        assert family.type == 'gauge', family
        for s in family.samples:
            assert s.timestamp is None, s
            label = s.labels.get('path', s.labels.get('root'))
            print('%s\t%s\t%.3f' % (s.name, raw(label).hex(), s.value))
elif mode == 'json':
    for key, value in json.loads(text).items():
        print('%s\t%s' % (key, type(value).__name__))
)PY";

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<std::vector<std::string>> ReadWith(const std::string& mode, const std::string& file) {
  CommandResult r = Run({kPython, "-c", kReader, mode, file});
  INFO(mode << " reader on " << file << ":\n" << r.err);
  REQUIRE(r.status == 0);
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, '\t')) fields.push_back(cell);
    rows.push_back(fields);
  }
  return rows;
}

void MakeFile(const std::string& path, size_t size) {
  WriteFileBytes(path, std::string(size, 'e'));
}

void MakeDir(const std::string& path) { REQUIRE(::mkdir(path.c_str(), 0755) == 0); }

// Directories (and a file in most) whose names are hard on every escaping layer.
const std::vector<std::string> kOddNames = {
    "nl\nx",       "q\"uo",   "back\\slash", std::string("bad\xFF\xFE", 5), "lit\\xFF", "ctl\x01\t",
    "caf\xC3\xA9", "<files>", "sp ace"};

void MakeOddTree(const std::string& s) {
  size_t size = 100;
  for (const std::string& name : kOddNames) {
    MakeDir(s + "/" + name);
    MakeFile(s + "/" + name + "/" + name, size += 37);  // the same odd name, as a file
  }
  MakeDir(s + "/empty");
  MakeDir(s + "/deep");
  MakeDir(s + "/deep/er");
  MakeDir(s + "/deep/er/empty-too");
  MakeFile(s + "/deep/er/f", 5000);
  MakeFile(s + "/top-file", 11);
  MakeFile(s + "/zero", 0);
  // Hard links across directories: each name counts where it is.
  REQUIRE(::link((s + "/deep/er/f").c_str(), (s + "/nl\nx/link").c_str()) == 0);
  REQUIRE(::link((s + "/deep/er/f").c_str(), (s + "/" + kOddNames[3] + "/link").c_str()) == 0);
  REQUIRE(::symlink("deep/er", (s + "/a-symlink").c_str()) == 0);
}

// Runs dtkfs export; the test fails unless it exits 0 and writes output.
void Export(const std::vector<std::string>& args, const std::string& output) {
  std::vector<std::string> argv{DtkfsBinary(), "export", "--output", output};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = Run(argv);
  INFO("dtkfs export: " << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(r.err.empty());
  struct stat st;
  REQUIRE(::stat(output.c_str(), &st) == 0);
  // No temporary file (OUTPUT.tmp.*) left beside it.
  const boost::filesystem::path out(output);
  for (const auto& e : boost::filesystem::directory_iterator(out.parent_path()))
    REQUIRE(e.path().filename().string().rfind(out.filename().string() + ".tmp", 0) != 0);
}

// ncdu reads export (no complaint) and re-exports it; what the re-export adds up below every
// directory equals the walk, and so does the dtkfs export itself (with its files counts).
void CheckNcdu(const std::string& export_file, const std::map<std::string, dtkfs::Totals>& walk) {
  const std::string reexport = export_file + ".ncdu";
  CommandResult r = Run({"ncdu", "-f", export_file, "-o", reexport});
  INFO("ncdu -f " << export_file << ": " << r.err);
  REQUIRE(r.status == 0);
  // ncdu ends its import with a newline on stderr; anything more is a complaint.
  REQUIRE(r.err.find_first_not_of(" \n") == std::string::npos);
  for (const std::string& file : {export_file, reexport}) {
    std::map<std::string, dtkfs::Totals> sums;
    for (const auto& row : ReadWith("ncdu", file)) {
      REQUIRE(row.size() == 3);
      dtkfs::Totals t;
      t.bytes = std::stoull(row[1]);
      // ncdu's re-export drops dtkfs_files: compare bytes only there.
      const auto in_walk = walk.find(FromHex(row[0]));
      t.files = file == export_file     ? std::stoull(row[2])
                : in_walk != walk.end() ? in_walk->second.files
                                        : 0;
      sums[FromHex(row[0])] = t;
    }
    std::map<std::string, dtkfs::Totals> expected;
    for (const auto& [rel, t] : walk) expected[rel] = dtkfs::Totals{t.bytes, t.files, 0};
    INFO(file);
    CHECK(DescribeDifferences(expected, sums) == "");
  }
}

// The prometheus export parses, and every labelled directory (root = prefix) has the walk's
// numbers. Returns the directories labelled.
size_t CheckPrometheus(const std::string& file, const std::string& prefix,
                       const std::map<std::string, dtkfs::Totals>& walk) {
  size_t dirs = 0;
  bool timestamp = false;
  for (const auto& row : ReadWith("prometheus", file)) {
    REQUIRE(row.size() == 3);
    const std::string label = dtkfs::testing::DecodeLabelText(FromHex(row[1]));
    if (row[0] == "dtkfs_export_timestamp_seconds") {
      CHECK(label == prefix);
      CHECK(std::stod(row[2]) > 1e9);
      timestamp = true;
      continue;
    }
    if (row[0] != "dtkfs_directory_bytes") continue;
    ++dirs;
    REQUIRE(label.compare(0, prefix.size(), prefix) == 0);
    const std::string rel = label.size() == prefix.size() ? "" : label.substr(prefix.size() + 1);
    INFO("label " << row[1]);
    REQUIRE(walk.count(rel) == 1);
    CHECK(static_cast<uint64_t>(std::stod(row[2])) == walk.at(rel).bytes);
  }
  CHECK(timestamp);
  return dirs;
}

}  // namespace

TEST_CASE("export: ncdu and prometheus read a live mount's and its index's totals exactly",
          "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  TempDir out;
  MakeOddTree(fx.src());
  const auto walk = ReferenceWalk(fx.src());
  REQUIRE(fx.Mount().status == 0);
  REQUIRE(fx.Differences() == "");

  SECTION("live") {
    Export({"--format", "ncdu", fx.mnt()}, out / "live.json");
    CheckNcdu(out / "live.json", walk);

    // A subtree: its export adds up to its part of the walk.
    std::map<std::string, dtkfs::Totals> deep;
    for (const auto& [rel, t] : walk)
      if (rel.rfind("deep", 0) == 0) deep[rel == "deep" ? "" : rel.substr(5)] = t;
    Export({"--format", "ncdu", fx.mnt() + "/deep"}, out / "deep.json");
    CheckNcdu(out / "deep.json", deep);

    Export({"--format", "prometheus", "--depth", "100", "--top", "1000", fx.mnt()},
           out / "all.prom");
    CHECK(CheckPrometheus(out / "all.prom", fx.mnt(), walk) == walk.size());
    Export({"--format", "prometheus", fx.mnt()}, out / "default.prom");  // depth 1
    CHECK(CheckPrometheus(out / "default.prom", fx.mnt(), walk) == 1 + kOddNames.size() + 2);
    Export({"--format", "prometheus", "--depth", "0", fx.mnt()}, out / "root.prom");
    CHECK(CheckPrometheus(out / "root.prom", fx.mnt(), walk) == 1);
    Export({"--format", "prometheus", "--top", "2", fx.mnt()}, out / "top.prom");
    CHECK(CheckPrometheus(out / "top.prom", fx.mnt(), walk) == 3);
    // The two largest: the directories holding a second name of the 5000-byte file.
    CHECK_THAT(
        ReadFileBytes(out / "top.prom"),
        Catch::Contains("dtkfs_directory_bytes{path=\"" + fx.mnt() +
                        "/bad\\\\xFF\\\\xFE\"} 5248\n") &&
            Catch::Contains("dtkfs_directory_bytes{path=\"" + fx.mnt() + "/nl\\nx\"} 5137\n"));

    // status --json: one object that Python reads, counters as numbers.
    CommandResult status = Run({DtkfsBinary(), "status", "--json", fx.mnt()});
    REQUIRE(status.status == 0);
    WriteFileBytes(out / "status.json", status.out);
    std::map<std::string, std::string> types;
    for (const auto& row : ReadWith("json", out / "status.json"))
      if (row.size() == 2) types[row[0]] = row[1];
    CHECK(types["mountpoint"] == "str");
    CHECK(types["pid"] == "int");
    CHECK(types["entries"] == "int");
    CHECK(types["generation"] == "int");
    CHECK(types["index"] == "str");
    CHECK(types["totals"] == "str");
    CHECK_THAT(status.out, Catch::StartsWith("{\"mountpoint\":\"" + fx.mnt() + "\",\"pid\":"));
  }

  SECTION("offline, from the index after unmounting") {
    REQUIRE(fx.Unmount().status == 0);
    Export({"--format", "ncdu", "--index", fx.index(), fx.src()}, out / "offline.json");
    CheckNcdu(out / "offline.json", walk);
    Export({"--format", "prometheus", "--depth", "9", "--index", fx.index(), fx.src()},
           out / "offline.prom");
    CHECK(CheckPrometheus(out / "offline.prom", fx.src(), walk) == walk.size());
    CHECK_THAT(ReadFileBytes(out / "offline.prom"),
               Catch::Contains("dtkfs_totals_timestamp_seconds{root=\"" + fx.src() + "\"}"));
  }
}

namespace {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The metadata object of an ncdu export (its first line).
std::string NcduMetadataLine(const std::string& file) {
  const std::string text = ReadFileBytes(file);
  return text.substr(0, text.find('\n'));
}

// A number key of the ncdu metadata line ("" if absent).
std::string MetadataNumber(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t at = line.find(k);
  if (at == std::string::npos) return "";
  const size_t from = at + k.size();
  return line.substr(from, line.find_first_of(",}", from) - from);
}

}  // namespace

TEST_CASE("export: a live export compacts and reads the index, exact as of the compaction",
          "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  TempDir out;
  MakeOddTree(fx.src());
  REQUIRE(fx.Mount({"-o", "compact_interval=0"}).status == 0);
  // Changes through the mount that only the overlay holds until a compaction.
  MakeDir(fx.mnt() + "/new");
  MakeFile(fx.mnt() + "/new/f", 777);
  MakeFile(fx.mnt() + "/deep/er/g", 123);
  REQUIRE(::rename((fx.mnt() + "/sp ace").c_str(), (fx.mnt() + "/new/moved").c_str()) == 0);
  const auto walk = ReferenceWalk(fx.src());
  const std::string generation_before = fx.StatusField("generation");

  const double before = UnixNow();
  CommandResult r = Run({DtkfsBinary(), "export", "--format", "ncdu", "--verbose", "--output",
                         out / "live.json", fx.mnt()});
  const double after = UnixNow();
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("totals from the index") &&
                        Catch::Contains("read after a compaction of " + fx.mnt()));
  CHECK(fx.StatusField("generation") != generation_before);  // the export compacted
  const std::string meta = NcduMetadataLine(out / "live.json");
  CHECK_THAT(meta, Catch::Contains("\"dtkfs_source\":\"compaction\""));
  // Fresh as of the compaction request: after the export began, before it ended.
  const double exact_at = std::stod(MetadataNumber(meta, "dtkfs_totals_timestamp"));
  CHECK(exact_at >= before - 0.001);
  CHECK(exact_at <= after);
  CheckNcdu(out / "live.json", walk);

  // Without --verbose nothing is said; stdout holds the export alone.
  r = Run({DtkfsBinary(), "export", "--format", "ncdu", fx.mnt() + "/deep"});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK_THAT(r.out, Catch::StartsWith("[1,2,{") && Catch::Contains("\"compaction\""));

  // Prometheus the same way; its freshness gauge is the compaction's time.
  r = Run({DtkfsBinary(), "export", "--format", "prometheus", "--depth", "100", "--top", "1000",
           "--output", out / "all.prom", fx.mnt()});
  CHECK(r.status == 0);
  CHECK(CheckPrometheus(out / "all.prom", fx.mnt(), walk) == walk.size());
  CHECK_THAT(ReadFileBytes(out / "all.prom"),
             Catch::Contains("dtkfs_totals_timestamp_seconds{root=\"" + fx.mnt() + "\"}"));

  // --live list lists the mount, with the same numbers.
  r = Run({DtkfsBinary(), "export", "--format", "ncdu", "--live", "list", "-v", "--output",
           out / "listed.json", fx.mnt()});
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("listing the mount"));
  CHECK_THAT(NcduMetadataLine(out / "listed.json"),
             Catch::Contains("\"dtkfs_source\":\"listing\""));
  CheckNcdu(out / "listed.json", walk);

  r = Run({DtkfsBinary(), "export", "--format", "ncdu", "--live", "walk", fx.mnt()});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("export: another user's live export lists the mount (the index is not theirs)", "[e2e]") {
  DTKFS_ROOT_ONLY("runs the export as another user");
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeOddTree(fx.src());
  REQUIRE(::chmod((fx.src() + "/..").c_str(), 0755) == 0);
  REQUIRE(fx.Mount({"-o", "allow_other"}).status == 0);
  const auto walk = ReferenceWalk(fx.src());
  const std::string generation_before = fx.StatusField("generation");
  const std::vector<std::string> as_nobody = {"setpriv", "--reuid=65534", "--regid=65534",
                                              "--clear-groups"};
  std::vector<std::string> argv = as_nobody;
  for (const char* a : {"export", "--format", "prometheus", "--depth", "100", "--top", "1000"})
    argv.push_back(a);
  argv.insert(argv.begin() + static_cast<long>(as_nobody.size()), DtkfsBinary());
  argv.push_back(fx.mnt());
  CommandResult quiet = Run(argv);
  INFO(quiet.err);
  REQUIRE(quiet.status == 0);
  CHECK(quiet.err.empty());  // an ordinary reason to list: said only with --verbose
  argv.insert(argv.end() - 1, "--verbose");
  CommandResult r = Run(argv);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("listing the mount") &&
                        Catch::Contains("belongs to uid " + std::to_string(::geteuid())));
  CHECK(fx.StatusField("generation") == generation_before);  // no compaction asked for
  TempDir out;
  WriteFileBytes(out / "nobody.prom", r.out);
  CHECK(CheckPrometheus(out / "nobody.prom", fx.mnt(), walk) == walk.size());
  REQUIRE(fx.Unmount().status == 0);
}

TEST_CASE("export: a compaction failing on a full disk is said, and the mount is listed", "[e2e]") {
  DTKFS_ROOT_ONLY("mounts a small tmpfs for the index");
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeOddTree(fx.src());
  TempDir t;
  const std::string full = t / "full";
  REQUIRE(::mkdir(full.c_str(), 0700) == 0);
  if (::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    WARN("cannot mount a tmpfs (" << std::strerror(errno) << "): full-disk test not run");
    return;
  }
  struct Unmounter {
    std::string dir;
    ~Unmounter() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmounter{full};
  const std::string index = full + "/x.idx";
  CommandResult m = Run(
      {DtkfsBinary(), "mount", fx.src(), fx.mnt(), "--index", index, "-o", "compact_interval=0"});
  INFO(m.err);
  REQUIRE(m.status == 0);
  CHECK(Run({"sh", "-c", "cat /dev/zero > " + full + "/filler"}).status != 0);
  MakeFile(fx.mnt() + "/deep/late", 3000);  // the compaction must write
  const auto walk = ReferenceWalk(fx.src());

  TempDir out;
  CommandResult r =
      Run({DtkfsBinary(), "export", "--format", "ncdu", "--output", out / "listed.json", fx.mnt()});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("warning: listing the mount") &&
                        Catch::Contains("No space left on device"));
  CHECK_THAT(NcduMetadataLine(out / "listed.json"),
             Catch::Contains("\"dtkfs_source\":\"listing\""));
  CheckNcdu(out / "listed.json", walk);

  // With room again, the export compacts.
  REQUIRE(::unlink((full + "/filler").c_str()) == 0);
  r = Run({DtkfsBinary(), "export", "--format", "ncdu", "--output", out / "again.json", fx.mnt()});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK_THAT(NcduMetadataLine(out / "again.json"),
             Catch::Contains("\"dtkfs_source\":\"compaction\""));
  CheckNcdu(out / "again.json", walk);
  REQUIRE(fx.Differences() == "");
  REQUIRE(fx.Unmount().status == 0);
}

// Bug: exporting the root of a mount whose daemon was killed said "not in the index (created
// after the last scan? ...)", sending the user to rescan; it now says the daemon is gone.
TEST_CASE("regression: export of a dead mount says its daemon is gone", "[e2e]") {
  MountFixture fx;
  DTKFS_REQUIRE_MOUNTABLE(fx);
  MakeOddTree(fx.src());
  REQUIRE(fx.Mount().status == 0);
  const pid_t pid = fx.DaemonPid();
  REQUIRE(pid > 1);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(WaitForExit(pid, 10));
  for (const std::string& path : {fx.mnt(), fx.mnt() + "/deep"}) {
    CommandResult r = Run({DtkfsBinary(), "export", "--format", "ncdu", path});
    INFO(path << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains("Transport endpoint is not connected"));
    CHECK(r.err.find("not in the index") == std::string::npos);
  }
  CHECK(Run({DtkfsBinary(), "umount", fx.mnt()}).status == 2);  // unmounts the dead mount
}
