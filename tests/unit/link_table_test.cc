// The multi-link table: its bytes (docs/format.md), round trips through an index file,
// look-ups, every structural fault rejected with a message, and grouping scan sightings.
#include "index/link_table.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "dtkfs/index_format.h"
#include "index/index_builder.h"
#include "index/index_reader.h"
#include "support/env_wrappers.h"
#include "support/temp_dir.h"

namespace dtkfs {
namespace {

using testing::TempDir;

// Little-endian bytes of v, written out by hand (not with the format's own helpers).
std::string Le(uint64_t v, int width) {
  std::string out;
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

std::string Name(const std::string& p) { return Le(p.size(), 4) + p; }

Result<std::shared_ptr<const IndexReader>> WriteAndOpen(const std::string& file,
                                                        const std::string& link_table) {
  IndexMeta meta;
  meta.source_root = "/src";
  meta.link_table = link_table;
  Env& env = testing::NoSyncDefault();
  Status s = WriteIndex(env, file, meta, [](const EntryEmitter& emit) {
    DTKFS_RETURN_IF_ERROR(emit("", Totals{30, 3, 2}));
    DTKFS_RETURN_IF_ERROR(emit("a", Totals{10, 1, 0}));
    return emit("b", Totals{20, 2, 0});
  });
  REQUIRE(s.ok());
  return IndexReader::Open(env, file);
}

TEST_CASE("link table bytes are the documented layout", "[links]") {
  const std::vector<LinkRecord> records = {{{1, 5}, 100, {"a/x", "b/y"}},
                                           {{2, 3}, 7, {"c", "d/e/f", "g"}}};
  const std::string expected = Le(2, 8) +                                                // count
                               Le(1, 8) + Le(5, 8) + Le(100, 8) + Le(0, 4) + Le(2, 4) +  // record 0
                               Le(2, 8) + Le(3, 8) + Le(7, 8) + Le(14, 4) +
                               Le(3, 4) +  // record 1: names at 4+3+4+3
                               Name("a/x") + Name("b/y") + Name("c") + Name("d/e/f") + Name("g");
  CHECK(EncodeLinkTable(records) == expected);
  CHECK(EncodeLinkTable({}).empty());
  CHECK(LinkTableView::Check(expected).empty());
}

TEST_CASE("link tables round trip through an index and answer look-ups", "[links]") {
  std::mt19937_64 rng(11);
  std::vector<LinkRecord> records;
  uint64_t dev = 0, ino = 0;
  for (int i = 0; i < 500; ++i) {
    // Strictly increasing keys, with runs that share a dev.
    if (rng() % 5 == 0) {
      ++dev;
      ino = 0;
    }
    ino += 1 + rng() % 3;
    LinkRecord r{{dev, ino}, rng() % 100000, {}};
    const int names = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < names; ++k) {
      std::string p = "d" + std::to_string(rng() % 50) + "/f\n \xff" + std::to_string(k);
      r.paths.push_back(p);
    }
    records.push_back(r);
  }
  TempDir dir;
  auto reader = WriteAndOpen(dir / "index", EncodeLinkTable(records));
  REQUIRE(reader.ok());
  const LinkTableView& links = (*reader)->links();
  REQUIRE(links.size() == records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    CAPTURE(i);
    CHECK(links.at(i) == records[i]);
    auto found = links.Find(records[i].key);
    REQUIRE(found.has_value());
    CHECK(*found == records[i]);
    // The keys just around it that are not in the table.
    LinkKey after{records[i].key.dev, records[i].key.ino + 1};
    if (i + 1 == records.size() || records[i + 1].key != after) CHECK_FALSE(links.Find(after));
  }
  CHECK_FALSE(links.Find(LinkKey{0, 0}));
  CHECK_FALSE(links.Find(LinkKey{dev + 1, 0}));
  CHECK((*reader)->source_root() == "/src");  // the other extension record still reads
}

TEST_CASE("an index without hard links has an empty link table", "[links]") {
  TempDir dir;
  auto reader = WriteAndOpen(dir / "index", "");
  REQUIRE(reader.ok());
  CHECK((*reader)->links().empty());
  CHECK_FALSE((*reader)->links().Find(LinkKey{1, 1}));
}

TEST_CASE("malformed link tables are rejected for what is wrong", "[links]") {
  const std::string rec0 = Le(1, 8) + Le(5, 8) + Le(100, 8) + Le(0, 4) + Le(2, 4);
  const std::string names0 = Name("a/x") + Name("b/y");
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const Case cases[] = {
      {"count field cut", Le(1, 4), "truncated"},
      {"more records than bytes", Le(2, 8) + rec0 + names0, "truncated records"},
      {"keys out of order",
       Le(2, 8) + rec0 + Le(1, 8) + Le(4, 8) + Le(1, 8) + Le(14, 4) + Le(1, 4) + names0 + Name("c"),
       "out of order"},
      {"key repeated",
       Le(2, 8) + rec0 + Le(1, 8) + Le(5, 8) + Le(1, 8) + Le(14, 4) + Le(1, 4) + names0 + Name("c"),
       "out of order"},
      {"names not where the previous record's end",
       Le(1, 8) + Le(1, 8) + Le(5, 8) + Le(100, 8) + Le(3, 4) + Le(1, 4) + Name("a/x"),
       "not contiguous"},
      {"a record without names", Le(1, 8) + Le(1, 8) + Le(5, 8) + Le(100, 8) + Le(0, 4) + Le(0, 4),
       "no names"},
      {"a name running past the end", Le(1, 8) + rec0 + Name("a/x") + Le(50, 4) + "b/y",
       "out of bounds"},
      {"a length field cut", Le(1, 8) + rec0 + Name("a/x") + Le(3, 2), "out of bounds"},
      {"an empty name", Le(1, 8) + rec0 + Name("a/x") + Name(""), "malformed path"},
      {"a dot-dot name", Le(1, 8) + rec0 + Name("a/x") + Name("../etc"), "malformed path"},
      {"a leading slash", Le(1, 8) + rec0 + Name("a/x") + Name("/b"), "malformed path"},
      {"bytes after the names", Le(1, 8) + rec0 + names0 + "zz", "trailing bytes"},
  };
  TempDir dir;
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK_THAT(LinkTableView::Check(c.bytes), Catch::Contains(c.message));
    // The reader refuses an index carrying it (the checksums are right: only the table is
    // wrong), naming the file.
    auto reader = WriteAndOpen(dir / "index", c.bytes);
    REQUIRE_FALSE(reader.ok());
    CHECK_THAT(reader.status().message(),
               Catch::Contains(dir / "index") && Catch::Contains(c.message));
  }
}

TEST_CASE("scan sightings group into records of files seen under two or more names", "[links]") {
  std::vector<LinkSighting> s = {
      {{2, 9}, 5, "z/one"}, {{1, 7}, 3, "b"},    {{2, 9}, 5, "a/two"},
      {{1, 7}, 3, "a"},     {{1, 8}, 4, "solo"},  // nlink 2, the other name outside the tree
      {{1, 7}, 3, "c/d"},
  };
  const std::vector<LinkRecord> expected = {{{1, 7}, 3, {"a", "b", "c/d"}},
                                            {{2, 9}, 5, {"a/two", "z/one"}}};
  CHECK(GroupLinkSightings(s) == expected);
  CHECK(GroupLinkSightings({}).empty());
}

}  // namespace
}  // namespace dtkfs
