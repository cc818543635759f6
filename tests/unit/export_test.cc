// The export writers (src/cli/export_ncdu, export_prometheus, text_sink) and the UTF-8 rules
// of src/cli/output: how odd names are escaped, and that a directory's own-files entry plus
// its subdirectories add up to its totals.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/export_ncdu.h"
#include "cli/export_prometheus.h"
#include "cli/output.h"
#include "cli/text_sink.h"
#include "cli/totals_source.h"
#include "index/index_builder.h"
#include "support/label_text.h"
#include "support/temp_dir.h"
#include "support/test_seed.h"

namespace dtkfs::cli {
namespace {

using Dirs = std::vector<std::pair<std::string, Totals>>;

// Everything written to a sink, in one string.
struct Collected {
  std::string text;
  size_t writes = 0;
  TextSink::WriteFn Writer() {
    return [this](std::string_view s) {
      text.append(s);
      ++writes;
      return Status::Ok();
    };
  }
};

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

TEST_CASE("output: Utf8SequenceLength accepts well-formed UTF-8 only", "[export]") {
  CHECK(Utf8SequenceLength("a", 0) == 1);
  CHECK(Utf8SequenceLength("\xC3\xA9", 0) == 2);          // é
  CHECK(Utf8SequenceLength("\xE2\x82\xAC", 0) == 3);      // €
  CHECK(Utf8SequenceLength("\xF0\x9F\x98\x80", 0) == 4);  // an emoji
  CHECK(Utf8SequenceLength("\xFF", 0) == 0);
  CHECK(Utf8SequenceLength("\x80", 0) == 0);              // a stray continuation byte
  CHECK(Utf8SequenceLength("\xC0\xAF", 0) == 0);          // overlong '/'
  CHECK(Utf8SequenceLength("\xE0\x80\xAF", 0) == 0);      // overlong '/'
  CHECK(Utf8SequenceLength("\xED\xA0\x80", 0) == 0);      // a UTF-16 surrogate
  CHECK(Utf8SequenceLength("\xF4\x90\x80\x80", 0) == 0);  // above U+10FFFF
  CHECK(Utf8SequenceLength("\xE2\x82", 0) == 0);          // cut short
}

TEST_CASE("output: JsonString writes surrogates and overlong forms as \\u00XX", "[export]") {
  CHECK(JsonString("a\"b\\c\n") == R"("a\"b\\c\u000a")");
  CHECK(JsonString("\xC3\xA9") == "\"\xC3\xA9\"");
  CHECK(JsonString("\xED\xA0\x80") == R"("\u00ed\u00a0\u0080")");
  CHECK(JsonString("\xC0\xAF") == R"("\u00c0\u00af")");
}

TEST_CASE("ncdu: names are escaped as ncdu escapes them, other bytes kept raw", "[export]") {
  CHECK(NcduString("plain") == R"("plain")");
  CHECK(NcduString("q\"b\\") == R"("q\"b\\")");
  CHECK(NcduString("nl\ntab\tcr\r") == R"("nl\ntab\tcr\r")");
  CHECK(NcduString(std::string("c\x01\x7f", 3)) == R"("c\u0001\u007f")");
  // ncdu reads \u00ff as the UTF-8 of U+00FF, so bytes of 0x80 and above are written as is.
  CHECK(NcduString("bad\xFF\xFE") == "\"bad\xFF\xFE\"");
  CHECK(NcduString("\xC3\xA9") == "\"\xC3\xA9\"");
}

TEST_CASE("ncdu: own files are each directory's total minus its subdirectories'", "[export]") {
  const Dirs below = {{"a", {60, 6, 2}},
                      {"a/b", {10, 1, 0}},
                      {"a/c", {20, 2, 0}},
                      {"empty", {0, 0, 0}},
                      {"z", {5, 1, 0}}};
  const NcduTree tree = BuildNcduTree("/src", "", Totals{100, 10, 5}, below);
  REQUIRE(tree.dirs.size() == 6);
  CHECK(tree.inconsistent == 0);
  CHECK(tree.dirs[0].name == "/src");
  CHECK(tree.dirs[0].children == std::vector<size_t>{1, 4, 5});
  CHECK(tree.dirs[0].own.bytes == 35);  // 100 - 60 - 0 - 5
  CHECK(tree.dirs[0].own.files == 3);   // 10 - 6 - 0 - 1
  CHECK(tree.dirs[1].name == "a");
  CHECK(tree.dirs[1].own.bytes == 30);
  CHECK(tree.dirs[1].own.files == 3);
  CHECK(tree.dirs[2].name == "b");
  CHECK(tree.dirs[2].own.bytes == 10);
  CHECK(tree.dirs[4].own.bytes == 0);
  // What ncdu adds up below each directory, own entries included, is its total.
  uint64_t sum = 0;
  for (const NcduDir& d : tree.dirs) sum += d.own.bytes;
  CHECK(sum == 100);
}

TEST_CASE("ncdu: a subtree whose parent is not listed stays in the nearest ancestor's own entry",
          "[export]") {
  // x/y was listed but x was not (its totals could not be read on a mount).
  const Dirs below = {{"top/a", {10, 1, 0}}, {"top/x/y", {7, 1, 0}}};
  const NcduTree tree = BuildNcduTree("/mnt/top", "top", Totals{30, 4, 3}, below);
  CHECK(tree.dirs[0].children == std::vector<size_t>{1});
  CHECK(tree.dirs[0].own.bytes == 20);  // x/y's 7 bytes are in there
  CHECK(tree.inconsistent == 0);
}

TEST_CASE("ncdu: subdirectories larger than their parent (changed meanwhile) count 0, noted",
          "[export]") {
  const Dirs below = {{"a", {50, 5, 0}}};
  const NcduTree tree = BuildNcduTree("/m", "", Totals{40, 6, 1}, below);
  CHECK(tree.inconsistent == 1);
  CHECK(tree.dirs[0].own.bytes == 0);
  CHECK(tree.dirs[0].own.files == 1);
}

TEST_CASE("ncdu: the document is format 1.2, directories nested, own files aggregated",
          "[export]") {
  const Dirs below = {{"a", {5, 1, 0}}, {"e", {0, 0, 0}}};
  const NcduTree tree = BuildNcduTree("/s", "", Totals{8, 3, 2}, below);
  Collected c;
  TextSink sink(c.Writer());
  WriteNcdu(tree, NcduMetadata{"0.1", 1700000000, "index", 1699999999.5}, sink);
  REQUIRE(sink.Finish().ok());
  CHECK(c.text ==
        R"([1,2,{"progname":"dtkfs","progver":"0.1","timestamp":1700000000,)"
        R"("dtkfs_source":"index","dtkfs_totals_timestamp":1699999999.500},)"
        "\n"
        R"([{"name":"/s","dtkfs_total_bytes":8,"dtkfs_total_files":3,"dtkfs_total_dirs":2},)"
        "\n"
        R"({"name":"<files>","asize":3,"dsize":3,"dtkfs_files":2},)"
        "\n"
        R"([{"name":"a","dtkfs_total_bytes":5,"dtkfs_total_files":1,"dtkfs_total_dirs":0},)"
        "\n"
        R"({"name":"<files>","asize":5,"dsize":5,"dtkfs_files":1}],)"
        "\n"
        R"([{"name":"e","dtkfs_total_bytes":0,"dtkfs_total_files":0,"dtkfs_total_dirs":0}]])"
        "]\n");
}

TEST_CASE("prometheus: path labels are valid UTF-8 and decode back to the bytes", "[export]") {
  CHECK(PathLabelText("/a/\xC3\xA9") == "/a/\xC3\xA9");
  CHECK(PathLabelText("bad\xFF") == "bad\\xFF");
  CHECK(PathLabelText("tab\there") == "tab\\x09here");
  CHECK(PathLabelText("nl\n") == "nl\n");  // the format's own escape takes it
  CHECK(PathLabelText("back\\slash") == "back\\slash");
  CHECK(PathLabelText("lit\\xFF") == "lit\\x5CxFF");  // a name that reads like an escape
  CHECK(PathLabelText("\xED\xA0\x80") == "\\xED\\xA0\\x80");
  CHECK(PrometheusLabelValue("q\"b\\c\nd\xFF") == "q\\\"b\\\\c\\nd\\\\xFF");

  std::mt19937 rng(testing::TestSeed("prometheus label round trip"));
  const std::string alphabet = std::string("\\x\"\n\t/aF0\xC3\xA9\xFF\x80\xE2\x82\xAC", 16);
  for (int round = 0; round < 2000; ++round) {
    std::string name;
    const size_t len = rng() % 12;
    for (size_t i = 0; i < len; ++i) name += alphabet[rng() % alphabet.size()];
    const std::string text = PathLabelText(name);
    INFO("round " << round);
    CHECK(IsValidUtf8(text));
    CHECK(dtkfs::testing::DecodeLabelText(text) == name);
  }
}

TEST_CASE("prometheus: gauges with HELP and TYPE, no timestamps, a freshness gauge", "[export]") {
  PrometheusExport e;
  e.root = "/m";
  e.dirs = {{"/m", {30, 3, 1}}, {"/m/d\"q", {10, 1, 0}}};
  e.export_time = 1700000000.5;
  e.totals_time = 1699999999.0;
  Collected c;
  TextSink sink(c.Writer());
  WritePrometheus(e, sink);
  REQUIRE(sink.Finish().ok());
  for (const char* name : {"dtkfs_directory_bytes", "dtkfs_directory_files", "dtkfs_directory_dirs",
                           "dtkfs_export_timestamp_seconds", "dtkfs_totals_timestamp_seconds"}) {
    CHECK_THAT(c.text, Catch::Contains(fmt::format("# HELP {} ", name)));
    CHECK_THAT(c.text, Catch::Contains(fmt::format("# TYPE {} gauge\n", name)));
  }
  CHECK_THAT(c.text, Catch::Contains("dtkfs_directory_bytes{path=\"/m\"} 30\n"));
  CHECK_THAT(c.text, Catch::Contains("dtkfs_directory_bytes{path=\"/m/d\\\"q\"} 10\n"));
  CHECK_THAT(c.text, Catch::Contains("dtkfs_directory_dirs{path=\"/m\"} 1\n"));
  CHECK_THAT(c.text,
             Catch::Contains("dtkfs_export_timestamp_seconds{root=\"/m\"} 1700000000.500\n"));
  // A sample line is NAME{LABELS} VALUE: no third field (a timestamp).
  size_t samples = 0;
  for (size_t start = 0; start < c.text.size();) {
    const size_t end = c.text.find('\n', start);
    const std::string line = c.text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    ++samples;
    const std::string after_labels = line.substr(line.rfind('}') + 1);
    CHECK(after_labels.find(' ', 1) == std::string::npos);
  }
  CHECK(samples == 8);
}

TEST_CASE("text sink: hands on large pieces and keeps the first failure", "[export]") {
  Collected c;
  {
    TextSink sink(c.Writer());
    for (int i = 0; i < 3000; ++i) sink.Append(std::string(1000, 'x'));
    REQUIRE(sink.Finish().ok());
  }
  CHECK(c.text.size() == 3000000);
  CHECK(c.writes == 3);  // two full megabyte pieces and the rest

  int calls = 0;
  TextSink failing([&](std::string_view) {
    ++calls;
    return calls == 1 ? Status::FromErrno(ENOSPC, "write", "out") : Status::Ok();
  });
  for (int i = 0; i < 3000; ++i) failing.Append(std::string(1000, 'x'));
  Status s = failing.Finish();
  CHECK(calls == 1);
  CHECK_THAT(s.message(), Catch::Contains("No space left"));
}

}  // namespace
}  // namespace dtkfs::cli

namespace dtkfs::cli {
namespace {

// Writes an index of one root entry (bytes) at file and sets its mtime to mtime seconds.
void WriteOneEntryIndex(const std::string& file, uint64_t bytes, time_t mtime) {
  IndexMeta meta;
  REQUIRE(WriteIndex(Env::Default(), file, meta, [&](const EntryEmitter& emit) {
            return emit("", Totals{bytes, 1, 0});
          }).ok());
  const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
  REQUIRE(::utimensat(AT_FDCWD, file.c_str(), times, 0) == 0);
}

}  // namespace

// Bug: an offline export's freshness (dtkfs_totals_timestamp_seconds) was the mtime of
// whatever file the index path named when the export ended, so an index renamed over it
// during the export (a compaction) lent its newer time to the older totals being written.
TEST_CASE("regression: index replaced during an export keeps the mapped file's totals time",
          "[export]") {
  testing::TempDir dir;
  const std::string file = dir / "tree.idx";
  WriteOneEntryIndex(file, 5, 1000000000);
  auto reader = IndexReader::Open(Env::Default(), file);
  REQUIRE(reader.ok());
  IndexTotalsSource source(*reader);
  WriteOneEntryIndex(dir / "new.idx", 7, 1500000000);
  REQUIRE(::rename((dir / "new.idx").c_str(), file.c_str()) == 0);
  CHECK(source.Lookup("")->bytes == 5);
  REQUIRE(source.TotalsTime());
  CHECK(*source.TotalsTime() == 1000000000.0);
}

}  // namespace dtkfs::cli
