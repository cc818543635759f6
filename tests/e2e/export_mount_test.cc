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
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/files.h"
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

// The label text rule of docs/export.md read backwards: `\xHH` is byte HH.
std::string DecodeLabel(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "\\x") == 0 && i + 4 <= text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
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
  REQUIRE(::stat((output + ".tmp").c_str(), &st) != 0);
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
    const std::string label = DecodeLabel(FromHex(row[1]));
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
