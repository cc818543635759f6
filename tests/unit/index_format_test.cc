// Tests of the on-disk index (include/dtkfs/index_format.h): IndexBuilder / WriteIndex write
// it, IndexReader validates and serves it.
//
// Expectations are computed from the generated input (a set of paths and their Totals) and
// from an independent encoder written here from the layout documented in index_format.h,
// never read back from the implementation under test.
#include "dtkfs/index_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dtkfs/totals.h"
#include "env/env.h"
#include "index/index_builder.h"
#include "index/index_reader.h"
#include "support/env_wrappers.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/crc32c.h"

using namespace dtkfs;
using dtkfs::testing::TempDir;

namespace {

// ---------------------------------------------------------------------------------------------
// The model: paths in memcmp order (written out with memcmp, not with std::string's operator<,
// so that the order does not depend on the same comparison the code under test uses).

bool MemLess(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
  return c != 0 ? c < 0 : a.size() < b.size();
}
struct MemLessCmp {
  bool operator()(const std::string& a, const std::string& b) const { return MemLess(a, b); }
};
using Model = std::map<std::string, Totals, MemLessCmp>;

bool HasPrefix(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && std::memcmp(s.data(), prefix.data(), prefix.size()) == 0;
}

// Paths strictly below dir, by the definition: every path with the byte prefix "dir/", or
// everything but the root for the root.
std::vector<std::string_view> ExpectedBelow(const Model& model, const std::string& dir) {
  std::vector<std::string_view> out;
  const std::string prefix = dir + "/";
  for (const auto& [p, t] : model) {
    if (dir.empty() ? !p.empty() : HasPrefix(p, prefix)) out.push_back(p);
  }
  return out;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (out.size() > 120) out = out.substr(0, 120) + "...";
  return "'" + out + "'";
}

// ---------------------------------------------------------------------------------------------
// Random trees.

uint64_t RandomCount(std::mt19937_64& rng) {
  switch (rng() % 5) {
    case 0:
      return 0;
    case 1:
      return rng() % 100;
    case 2:
      return UINT64_MAX - rng() % 3;
    case 3:
      return uint64_t{1} << (rng() % 64);
    default:
      return rng();
  }
}

Totals RandomTotals(std::mt19937_64& rng) {
  return Totals{RandomCount(rng), RandomCount(rng), RandomCount(rng)};
}

// One valid path component: no '/', no NUL, not "." or "..".
std::string RandomName(std::mt19937_64& rng) {
  auto any_byte = [&] {
    char c;
    do c = static_cast<char>(1 + rng() % 255);
    while (c == '/');
    return c;
  };
  std::string name;
  switch (rng() % 8) {
    case 0: {  // tiny names over an alphabet that sorts around '/': siblings interleave
      static const char kTricky[] = "ab0 -.\n\x7f\x80\xff";
      const size_t n = 1 + rng() % 3;
      for (size_t i = 0; i < n; ++i) name.push_back(kTricky[rng() % (sizeof kTricky - 1)]);
      break;
    }
    case 1: {  // spaces and newlines
      static const char* kParts[] = {"my dir", " ", "\n", "line\nbreak", "tab\there", "x"};
      const size_t n = 1 + rng() % 3;
      for (size_t i = 0; i < n; ++i) name += kParts[rng() % 6];
      break;
    }
    case 2: {  // bytes 0x80-0xff (not UTF-8)
      const size_t n = 1 + rng() % 12;
      for (size_t i = 0; i < n; ++i) name.push_back(static_cast<char>(0x80 + rng() % 128));
      break;
    }
    case 3: {  // the longest name a filesystem allows
      for (size_t i = 0; i < 255; ++i) name.push_back(any_byte());
      break;
    }
    case 4: {
      const size_t n = 1 + rng() % 20;
      for (size_t i = 0; i < n; ++i) name.push_back(any_byte());
      break;
    }
    default: {
      static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
      const size_t n = 1 + rng() % 8;
      for (size_t i = 0; i < n; ++i) name.push_back(kAlnum[rng() % (sizeof kAlnum - 1)]);
      break;
    }
  }
  if (name == "." || name == "..") name += "x";
  return name;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

Model RandomTree(uint64_t seed, size_t dirs) {
  std::mt19937_64 rng(seed);
  Model model;
  std::vector<std::string> all{""};
  model[""] = RandomTotals(rng);
  while (model.size() < dirs) {
    // Often continue below the newest directory, so some paths get deep.
    const std::string& parent = rng() % 3 == 0 ? all.back() : all[rng() % all.size()];
    std::string child = Join(parent, RandomName(rng));
    if (model.emplace(child, RandomTotals(rng)).second) all.push_back(child);
  }
  // One deep chain (deeper than any real tree needs to be for the format).
  std::string deep = all[rng() % all.size()];
  for (int i = 0; i < 120; ++i) {
    deep = Join(deep, "d" + std::to_string(i));
    model.emplace(deep, RandomTotals(rng));
  }
  return model;
}

// Keys a lookup should answer: every path, and keys around each that may or may not exist.
std::vector<std::string> ProbeKeys(const Model& model, std::mt19937_64& rng) {
  std::vector<std::string> keys{"",   "/",  "//",   std::string(1, '\0'), "a", "a/",
                                "/a", "zz", "\xff", "\xff\xff",           "0", ".",
                                ".."};
  const std::string* prev = nullptr;
  for (const auto& [p, t] : model) {
    keys.push_back(p);
    keys.push_back(p + "/");
    keys.push_back("/" + p);
    keys.push_back(p + "0");
    keys.push_back(p + " ");
    keys.push_back(p + std::string(1, '\0'));  // between p and whatever follows it
    keys.push_back(p + "\xff");
    if (!p.empty()) {
      keys.push_back(p.substr(0, p.size() - 1));          // a prefix: "a" when "ab" exists
      keys.push_back(p.substr(0, 1 + rng() % p.size()));  // another prefix
      std::string bumped = p;
      bumped.back() = static_cast<char>(bumped.back() + 1);
      keys.push_back(bumped);
      bumped.back() = static_cast<char>(bumped.back() - 2);
      keys.push_back(bumped);
      keys.push_back(Join(p, "no such child"));
    }
    if (prev != nullptr) {
      // A key strictly between two neighbours, when one exists: the common prefix plus a byte
      // between theirs.
      const std::string& a = *prev;
      size_t i = 0;
      while (i < a.size() && i < p.size() && a[i] == p[i]) ++i;
      if (i < a.size() && i < p.size()) {
        const auto lo = static_cast<unsigned char>(a[i]), hi = static_cast<unsigned char>(p[i]);
        if (hi - lo >= 2) keys.push_back(p.substr(0, i) + static_cast<char>(lo + 1));
      }
    }
    prev = &p;
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Writing and reading.

Env& TestEnv() { return dtkfs::testing::NoSyncDefault(); }

Status WriteModel(Env& env, const std::string& file, const Model& model, const IndexMeta& meta) {
  return WriteIndex(env, file, meta, [&](const EntryEmitter& emit) {
    for (const auto& [p, t] : model) DTKFS_RETURN_IF_ERROR(emit(p, t));
    return Status::Ok();
  });
}

std::string ReadBytes(const std::string& file) {
  auto mapped = Env::Default().MapReadOnly(file);
  REQUIRE(mapped.ok());
  return std::string((*mapped)->data(), (*mapped)->size());
}

void WriteBytes(const std::string& file, const std::string& bytes) {
  auto f = TestEnv().NewWritableFile(file, 0600);
  REQUIRE(f.ok());
  REQUIRE((*f)->WriteAt(0, bytes).ok());
  REQUIRE((*f)->Close().ok());
}

Result<std::shared_ptr<const IndexReader>> FromBytes(std::string bytes, std::string name) {
  return IndexReader::FromFile(MakeMemoryFile(std::move(bytes), std::move(name)));
}

// Checks everything a reader serves against the model; returns the mismatches.
std::vector<std::string> CompareWithModel(const IndexReader& r, const Model& model,
                                          std::mt19937_64& rng) {
  std::vector<std::string> bad;
  if (r.size() != model.size())
    bad.push_back("size " + std::to_string(r.size()) + " != " + std::to_string(model.size()));
  size_t i = 0;
  for (const auto& [p, t] : model) {
    if (i < r.size() && r.path_at(i) != p) bad.push_back("path_at " + std::to_string(i));
    if (i < r.size() && !(r.totals_at(i) == t)) bad.push_back("totals_at " + std::to_string(i));
    ++i;
  }
  for (const std::string& key : ProbeKeys(model, rng)) {
    auto it = model.find(key);
    auto got = r.Lookup(key);
    if (it == model.end()) {
      if (got) bad.push_back("found absent " + Printable(key));
      if (r.Find(key)) bad.push_back("Find found absent " + Printable(key));
    } else if (!got) {
      bad.push_back("missing " + Printable(key));
    } else if (!(*got == it->second)) {
      bad.push_back("wrong totals for " + Printable(key));
    }
  }
  return bad;
}

std::vector<std::string> CompareSubtree(const IndexReader& r, const Model& model,
                                        const std::string& dir) {
  std::vector<std::string> bad;
  auto [first, last] = r.SubtreeRange(dir);
  if (first > last || last > r.size()) {
    bad.push_back("range out of order for " + Printable(dir));
    return bad;
  }
  std::vector<std::string_view> got;
  for (size_t i = first; i < last; ++i) got.push_back(r.path_at(i));
  if (got != ExpectedBelow(model, dir)) bad.push_back("subtree of " + Printable(dir));
  return bad;
}

// ---------------------------------------------------------------------------------------------
// An independent encoder, from the layout in index_format.h.

void Put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void Put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t Get32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}
uint64_t Get64(const std::string& s, size_t at) {
  return Get32(s, at) | static_cast<uint64_t>(Get32(s, at + 4)) << 32;
}
void Set32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}
void Set64(std::string& s, size_t at, uint64_t v) {
  Set32(s, at, static_cast<uint32_t>(v));
  Set32(s, at + 4, static_cast<uint32_t>(v >> 32));
}

std::string ExtRecord(uint32_t tag, std::string_view bytes) {
  std::string r;
  Put32(r, tag);
  Put32(r, static_cast<uint32_t>(bytes.size()));
  r.append(bytes);
  return r;
}

constexpr size_t kTrailer = 80;
constexpr size_t kTrAggOffset = 0, kTrExtOffset = 8, kTrExtLength = 16, kTrGeneration = 24,
                 kTrJournal = 32, kTrCrcHead = 40, kTrCrcPool = 44, kTrCrcAgg = 48, kTrCrcExt = 52,
                 kTrRecordSize = 56, kTrMagic = 72, kTrCrcTrailer = 76;

// Where the sections of a well-formed file are, from its header.
struct Layout {
  uint64_t count, pool_len, entries_end, pool_end, aggregates_start, aggregates_end, ext_end, size;
};
Layout LayoutOf(const std::string& b) {
  Layout l{};
  l.count = Get32(b, 12);
  l.pool_len = Get32(b, 16);
  l.entries_end = 20 + 16 * l.count;
  l.pool_end = l.entries_end + l.pool_len;
  l.aggregates_start = (l.pool_end + 7) / 8 * 8;
  l.aggregates_end = l.aggregates_start + 16 * l.count;
  l.size = b.size();
  l.ext_end = l.size - kTrailer;
  return l;
}

uint32_t Crc(const std::string& b, uint64_t from, uint64_t to) {
  return crc32c::Value(b.data() + from, to - from);
}

// Recomputes every checksum of b from its header and trailer, so that a file patched by a test
// is rejected for what was patched, not for a stale checksum. Sections that do not fit in the
// file keep their old checksum (the bounds check rejects those files first anyway).
void Reseal(std::string& b) {
  REQUIRE(b.size() >= 20 + kTrailer);
  const Layout l = LayoutOf(b);
  const size_t t = b.size() - kTrailer;
  if (l.entries_end <= b.size()) Set32(b, t + kTrCrcHead, Crc(b, 0, l.entries_end));
  if (l.aggregates_start <= b.size())
    Set32(b, t + kTrCrcPool, Crc(b, l.entries_end, l.aggregates_start));
  if (l.aggregates_end <= b.size())
    Set32(b, t + kTrCrcAgg, Crc(b, l.aggregates_start, l.aggregates_end));
  const uint64_t ext_off = Get64(b, t + kTrExtOffset), ext_len = Get64(b, t + kTrExtLength);
  if (ext_off <= b.size() && ext_len <= b.size() - ext_off)
    Set32(b, t + kTrCrcExt, Crc(b, ext_off, ext_off + ext_len));
  Set32(b, t + kTrCrcTrailer, Crc(b, t, t + kTrCrcTrailer));
}

struct RawEntry {
  uint32_t offset, length;
  Totals totals;
};

// Lays out a file from raw parts exactly as index_format.h documents, with valid checksums.
std::string EncodeRaw(const std::vector<RawEntry>& entries, const std::string& pool,
                      const std::string& ext, uint64_t generation, uint64_t journal_generation,
                      uint32_t version = 2) {
  std::string b("DSKTRKMM", 8);
  Put32(b, version);
  Put32(b, static_cast<uint32_t>(entries.size()));
  Put32(b, static_cast<uint32_t>(pool.size()));
  for (const RawEntry& e : entries) {
    Put32(b, e.offset);
    Put32(b, e.length);
    Put64(b, e.totals.bytes);
  }
  b += pool;
  while (b.size() % 8 != 0) b.push_back('\0');
  const uint64_t aggregates = b.size();
  for (const RawEntry& e : entries) {
    Put64(b, e.totals.files);
    Put64(b, e.totals.dirs);
  }
  const uint64_t ext_offset = b.size();
  b += ext;
  std::string t;
  Put64(t, aggregates);
  Put64(t, ext_offset);
  Put64(t, ext.size());
  Put64(t, generation);
  Put64(t, journal_generation);
  for (int i = 0; i < 4; ++i) Put32(t, 0);  // checksums, filled by Reseal
  Put32(t, 16);                             // bytes per aggregate record
  Put32(t, 0);                              // flags
  Put64(t, 0);                              // reserved
  Put32(t, 0x544b5444);                     // "DTKT"
  Put32(t, 0);                              // trailer checksum
  REQUIRE(t.size() == kTrailer);
  b += t;
  Reseal(b);
  return b;
}

// Entries in the order given (sorted or not), paths packed into the pool in that order.
std::string Encode(const std::vector<std::pair<std::string, Totals>>& entries,
                   const std::string& source_root = "", uint64_t generation = 1,
                   uint64_t journal_generation = 0, uint32_t version = 2) {
  std::vector<RawEntry> raw;
  std::string pool;
  for (const auto& [p, t] : entries) {
    raw.push_back(RawEntry{static_cast<uint32_t>(pool.size()), static_cast<uint32_t>(p.size()), t});
    pool += p;
  }
  const std::string ext = source_root.empty() ? "" : ExtRecord(1, source_root);
  return EncodeRaw(raw, pool, ext, generation, journal_generation, version);
}

std::vector<std::pair<std::string, Totals>> Entries(const Model& model) {
  return {model.begin(), model.end()};
}

// ---------------------------------------------------------------------------------------------
// A WritableFile in memory, for driving IndexBuilder directly.
class StringFile final : public WritableFile {
 public:
  Status WriteAt(uint64_t offset, std::string_view data) override {
    if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size());
    std::memcpy(bytes.data() + offset, data.data(), data.size());
    return Status::Ok();
  }
  Status Sync() override { return Status::Ok(); }
  Status Close() override { return Status::Ok(); }
  const std::string& path() const override { return name_; }
  std::string bytes;

 private:
  std::string name_ = "mem-index";
};

// A small index with every section non-empty, including padding.
Model SmallModel() {
  Model m;
  m[""] = Totals{1000, 10, 5};
  m["a"] = Totals{600, 6, 3};
  m["a b"] = Totals{7, 1, 0};
  m["a/b"] = Totals{500, 4, 1};
  m["a/b/c"] = Totals{100, 1, 0};
  m["\xff\n x"] = Totals{UINT64_MAX, 2, 0};
  return m;
}
const std::string kSmallRoot = "/srv/data";

void CheckRejected(const Result<std::shared_ptr<const IndexReader>>& r, const std::string& name,
                   std::string_view expect_in_message = {}) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kCorruption);
  CHECK_THAT(r.status().message(), Catch::Contains(name));
  if (!expect_in_message.empty())
    CHECK_THAT(r.status().message(), Catch::Contains(std::string(expect_in_message)));
}

// Rejected by a structural check: the message says what, and it is not a checksum.
void CheckStructural(const std::string& bytes, std::string_view expect_in_message) {
  INFO("expecting '" << expect_in_message << "'");
  auto r = FromBytes(bytes, "crafted-index");
  CheckRejected(r, "crafted-index", expect_in_message);
  CHECK_THAT(r.status().message(), !Catch::Contains("checksum mismatch"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("index round trip: random trees written with WriteIndex read back exactly", "[format]") {
  TempDir dir;
  const std::string file = dir / "index";
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    CAPTURE(seed);
    const size_t dirs = seed == 24 ? 6000 : 1 + (seed * 37) % 400;  // the big one spans flushes
    const Model model = RandomTree(seed, dirs);
    IndexMeta meta;
    std::mt19937_64 rng(seed * 1000003);
    meta.generation = rng();
    meta.journal_generation = rng();
    if (seed % 3 != 0) {
      meta.source_root = "/mnt/src " + std::to_string(seed);
      if (seed % 2 == 0) meta.source_root += "/\xe9\n\xff";
    }
    REQUIRE(WriteModel(TestEnv(), file, model, meta).ok());

    auto reader = IndexReader::Open(TestEnv(), file);
    REQUIRE(reader.ok());
    const IndexReader& r = **reader;
    CHECK(r.generation() == meta.generation);
    CHECK(r.journal_generation() == meta.journal_generation);
    CHECK(r.source_root() == meta.source_root);
    CHECK(r.file_path() == file);
    CHECK(CompareWithModel(r, model, rng) == std::vector<std::string>{});

    // The builder writes exactly the documented layout.
    CHECK(ReadBytes(file) ==
          Encode(Entries(model), meta.source_root, meta.generation, meta.journal_generation));
  }
}

TEST_CASE("index round trip: names with every kind of byte", "[format]") {
  Model model;
  model[""] = Totals{1, 2, 3};
  const std::string long_name(255, 'x');
  std::string high;
  for (int c = 0x80; c <= 0xff; ++c) high.push_back(static_cast<char>(c));
  std::string all;
  for (int c = 1; c <= 0xff; ++c)
    if (c != '/') all.push_back(static_cast<char>(c));
  std::string deep;
  for (const std::string& name :
       {std::string("with space"), std::string("new\nline"), std::string(" "), std::string("\n"),
        long_name, high, all, std::string("\x80"), std::string("\xff"), std::string("\x01"),
        std::string("a"), std::string("ab")}) {
    model[name] = Totals{name.size(), 1, 0};
    model[name + "/" + long_name] = Totals{7, 7, 7};
  }
  for (int i = 0; i < 60; ++i) {
    deep = Join(deep, i % 2 ? long_name : "lvl" + std::to_string(i));
    model[deep] = Totals{static_cast<uint64_t>(i), 0, static_cast<uint64_t>(60 - i)};
  }
  TempDir dir;
  IndexMeta meta{42, 41, all, ""};
  REQUIRE(WriteModel(TestEnv(), dir / "index", model, meta).ok());
  auto reader = IndexReader::Open(TestEnv(), dir / "index");
  REQUIRE(reader.ok());
  std::mt19937_64 rng(7);
  CHECK(CompareWithModel(**reader, model, rng) == std::vector<std::string>{});
  CHECK((*reader)->source_root() == all);
  CHECK((*reader)->generation() == 42);
  CHECK((*reader)->journal_generation() == 41);
  // "a" exists and "ab" exists; neither "a/" nor "a\0" nor "aa" does.
  CHECK((*reader)->Lookup("a"));
  CHECK_FALSE((*reader)->Lookup("a/"));
  CHECK_FALSE((*reader)->Lookup(std::string("a\0", 2)));
  CHECK_FALSE((*reader)->Lookup("aa"));
  for (const auto& [p, t] : model) CHECK(CompareSubtree(**reader, model, p).empty());
}

TEST_CASE("absent paths: prefixes, siblings and slash forms are not found", "[format]") {
  Model model;
  model[""] = Totals{9, 9, 9};
  model["ab"] = Totals{1, 1, 1};
  model["ab/cd"] = Totals{2, 2, 2};
  model["b"] = Totals{3, 3, 3};
  auto reader = FromBytes(Encode(Entries(model)), "mem");
  REQUIRE(reader.ok());
  const IndexReader& r = **reader;
  for (const char* absent : {"a", "a/", "ab/", "/ab", "ab/c", "ab/cd/", "abc", "ab0", "aa", "b/",
                             "ba", "c", "ab/cd/e", "0", "/"}) {
    INFO(absent);
    CHECK_FALSE(r.Lookup(absent));
    CHECK_FALSE(r.Find(absent));
  }
  CHECK(r.Lookup("ab") == Totals{1, 1, 1});
  CHECK(r.Lookup("ab/cd") == Totals{2, 2, 2});
  CHECK(r.Lookup("b") == Totals{3, 3, 3});
  CHECK(r.Lookup("") == Totals{9, 9, 9});
}

TEST_CASE("SubtreeRange is exactly the paths with prefix dir/", "[format]") {
  SECTION("tricky siblings that sort around '/'") {
    Model model;
    for (const char* p :
         {"",      "a",       "a b",     "a b/x", "a-b",   "a-b/y", "a.b",    "a.b/z",  "a/b",
          "a/b/c", "a/b/c/d", "a/b c",   "a/b-c", "a/b.c", "a/b0",  "a/b0/e", "a/\xff", "a0",
          "a0/z",  "a\xff",   "a\xff/q", "ab",    "b",     "b/a",   "\x01",   "\xff",   "\xff/a"}) {
      model[p] = Totals{std::strlen(p), 1, 2};
    }
    auto reader = FromBytes(Encode(Entries(model)), "mem");
    REQUIRE(reader.ok());
    const IndexReader& r = **reader;
    for (const auto& [p, t] : model) {
      INFO(Printable(p));
      CHECK(CompareSubtree(r, model, p).empty());
    }
    // Directories that are not in the index have nothing below them here.
    for (const char* p : {"a/b/c/d/e", "c", "a/", "a b/x/y", "a/b/"}) {
      INFO(p);
      CHECK(CompareSubtree(r, model, p).empty());
    }
    // Spot checks that the definition above is what we think it is.
    CHECK(ExpectedBelow(model, "a") == std::vector<std::string_view>{"a/b", "a/b c", "a/b-c",
                                                                     "a/b.c", "a/b/c", "a/b/c/d",
                                                                     "a/b0", "a/b0/e", "a/\xff"});
    CHECK(ExpectedBelow(model, "").size() == model.size() - 1);
  }
  SECTION("random trees, every directory") {
    for (uint64_t seed = 100; seed < 110; ++seed) {
      CAPTURE(seed);
      const Model model = RandomTree(seed, 150);
      auto reader = FromBytes(Encode(Entries(model)), "mem");
      REQUIRE(reader.ok());
      std::vector<std::string> bad;
      for (const auto& [p, t] : model) {
        for (std::string& b : CompareSubtree(**reader, model, p)) bad.push_back(std::move(b));
      }
      CHECK(bad == std::vector<std::string>{});
      auto [first, last] = (*reader)->SubtreeRange("");
      CHECK(first == 1);
      CHECK(last == model.size());
    }
  }
}

TEST_CASE("an index with only the root", "[format]") {
  TempDir dir;
  const std::string file = dir / "index";
  Model model;
  model[""] = Totals{12345, 6, 0};
  REQUIRE(WriteModel(TestEnv(), file, model, IndexMeta{3, 2, "", ""}).ok());
  const std::string bytes = ReadBytes(file);
  CHECK(bytes == Encode(Entries(model), "", 3, 2));
  // header + 1 entry + empty pool + 4 bytes padding + 1 aggregate + no extension + trailer
  CHECK(bytes.size() == 20 + 16 + 4 + 16 + 80);
  auto reader = IndexReader::Open(TestEnv(), file);
  REQUIRE(reader.ok());
  const IndexReader& r = **reader;
  CHECK(r.size() == 1);
  CHECK(r.path_at(0) == "");
  CHECK(r.Lookup("") == Totals{12345, 6, 0});
  CHECK_FALSE(r.Lookup("a"));
  CHECK_FALSE(r.Lookup("/"));
  CHECK(r.SubtreeRange("") == std::pair<size_t, size_t>{1, 1});
  auto [first, last] = r.SubtreeRange("a");
  CHECK(first == last);
  CHECK(r.generation() == 3);
  CHECK(r.journal_generation() == 2);
  CHECK(r.source_root() == "");
}

TEST_CASE("a truncated index is rejected at every length", "[format]") {
  TempDir dir;
  const std::string file = dir / "index";
  REQUIRE(WriteModel(TestEnv(), file, SmallModel(), IndexMeta{7, 5, kSmallRoot, ""}).ok());
  const std::string bytes = ReadBytes(file);
  const Layout l = LayoutOf(bytes);
  REQUIRE(l.aggregates_start > l.pool_end);  // there is padding to cover
  REQUIRE(l.ext_end > l.aggregates_end);     // and an extension section
  REQUIRE(FromBytes(bytes, "whole").ok());

  SECTION("every byte length, in memory") {
    for (size_t len = 0; len < bytes.size(); ++len) {
      CAPTURE(len);
      CheckRejected(FromBytes(bytes.substr(0, len), "cut-index"), "cut-index", "truncated");
    }
  }
  SECTION("section boundaries, through a real file") {
    for (uint64_t len : {uint64_t{0}, uint64_t{8}, uint64_t{19}, uint64_t{20}, l.entries_end,
                         l.pool_end, l.aggregates_start, l.aggregates_end, l.ext_end,
                         l.ext_end + 40, l.size - 4, l.size - 1}) {
      CAPTURE(len);
      const std::string cut = dir / ("cut-" + std::to_string(len));
      WriteBytes(cut, bytes.substr(0, len));
      CheckRejected(IndexReader::Open(TestEnv(), cut), cut, "truncated");
    }
  }
  SECTION("bytes appended are rejected too") {
    CheckRejected(FromBytes(bytes + std::string(1, '\0'), "long-index"), "long-index");
    CheckRejected(FromBytes(bytes + std::string(8, '\0'), "long-index"), "long-index");
    // A second, valid trailer at the end: its offsets no longer match the file.
    CheckRejected(FromBytes(bytes + bytes.substr(bytes.size() - kTrailer), "long-index"),
                  "long-index");
  }
}

TEST_CASE("every changed byte of an index is detected", "[format]") {
  const std::string bytes = Encode(Entries(SmallModel()), kSmallRoot, 7, 5);
  const Layout l = LayoutOf(bytes);
  REQUIRE(l.aggregates_start > l.pool_end);
  REQUIRE(FromBytes(bytes, "index").ok());
  const size_t t = l.size - kTrailer;
  // What the message should name, by where the byte is.
  auto expected = [&](size_t at) -> std::string {
    if (at < 8) return "magic";
    if (at < 12) return "version";
    if (at < 20) return "";  // count / pool length: the layout moves, any rejection will do
    if (at < l.entries_end) return "entry table";
    if (at < l.aggregates_start) return "path pool";  // pool and its padding
    if (at < l.aggregates_end) return "aggregates";
    if (at < t) return "extension";
    if (at >= t + kTrMagic && at < t + kTrMagic + 4) return "magic";
    return "trailer checksum";
  };
  size_t tried = 0;
  for (size_t at = 0; at < bytes.size(); ++at) {
    for (int mask : {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff}) {
      CAPTURE(at, mask);
      std::string b = bytes;
      b[at] = static_cast<char>(b[at] ^ mask);
      CheckRejected(FromBytes(std::move(b), "flipped-index"), "flipped-index", expected(at));
      ++tried;
    }
  }
  CHECK(tried == 9 * bytes.size());
}

TEST_CASE("foreign and structurally broken files are rejected for what is wrong", "[format]") {
  const Model small = SmallModel();
  const std::string good = Encode(Entries(small), kSmallRoot, 7, 5);
  REQUIRE(FromBytes(good, "good").ok());
  const Layout l = LayoutOf(good);
  const size_t t = l.size - kTrailer;

  SECTION("wrong magic") {
    for (const char* magic : {"DSKTRKMX", "dskTRKMM", "\0\0\0\0\0\0\0\0", "DTKT\0\0\0\0"}) {
      std::string b = good;
      std::memcpy(b.data(), magic, 8);
      Reseal(b);
      CheckStructural(b, "magic");
    }
    CheckStructural(std::string(200, '\0'), "magic");
    CheckStructural(std::string(200, 'x'), "magic");
  }
  SECTION("versions other than 2") {
    for (uint32_t v : {1u, 3u, 0u, 0xffffffffu}) {
      CAPTURE(v);
      CheckStructural(Encode(Entries(small), kSmallRoot, 7, 5, v), "version");
    }
  }
  SECTION("counts and pool lengths larger than the file") {
    using Patch = std::pair<size_t, uint32_t>;
    for (auto [field, value] :
         std::initializer_list<Patch>{{12, 0xffffffffu},
                                      {16, 0xffffffffu},
                                      {12, 0x10000000u},
                                      {16, 0x10000000u},
                                      {12, static_cast<uint32_t>(l.count + 1)}}) {
      CAPTURE(field, value);
      std::string b = good;
      Set32(b, field, value);
      Reseal(b);
      CheckStructural(b, "truncated");
    }
    // One more entry or 8 more pool bytes, in a file that is long enough for them: the
    // sections then disagree with the trailer.
    const std::string roomy = Encode(Entries(small), std::string(300, 'r'), 7, 5);
    // (A pool one byte longer that still ends before the same 8-byte boundary is a valid
    // file: the extra byte is an unused pool byte; so the deltas here move the sections.)
    for (auto [field, delta] : std::initializer_list<Patch>{{12, 1}, {16, 8}, {16, 9}}) {
      CAPTURE(field, delta);
      std::string b = roomy;
      Set32(b, field, Get32(b, field) + delta);
      Reseal(b);
      CheckStructural(b, "");
    }
  }
  SECTION("trailer offsets that disagree with the header or the file") {
    struct Patch {
      size_t field;
      uint64_t value;
      const char* why;
    };
    for (const Patch& p : {Patch{kTrAggOffset, l.aggregates_start + 8, "aggregates offset"},
                           Patch{kTrAggOffset, 0, "aggregates offset"},
                           Patch{kTrExtOffset, l.aggregates_end + 1, "out of bounds"},
                           Patch{kTrExtOffset, UINT64_MAX, "out of bounds"},
                           Patch{kTrExtLength, l.ext_end - l.aggregates_end + 1, "out of bounds"},
                           Patch{kTrExtLength, l.ext_end - l.aggregates_end - 1, "out of bounds"},
                           Patch{kTrExtLength, UINT64_MAX, "out of bounds"}}) {
      CAPTURE(p.field, p.value);
      std::string b = good;
      Set64(b, t + p.field, p.value);
      Reseal(b);
      CheckStructural(b, p.why);
    }
    std::string b = good;
    Set32(b, t + kTrRecordSize, 24);
    Reseal(b);
    CheckStructural(b, "record size");
  }
  SECTION("unsorted entry table") {
    CheckStructural(Encode({{"", {}}, {"b", {}}, {"a", {}}}), "sorted");
    CheckStructural(Encode({{"", {}}, {"a/b", {}}, {"a", {}}}), "sorted");
    // memcmp order: bytes >= 0x80 sort after ASCII.
    CheckStructural(Encode({{"", {}}, {"\xff", {}}, {"a", {}}}), "sorted");
    CheckStructural(Encode({{"", {}}, {"a\xff", {}}, {"a/b", {}}}), "sorted");
    // The same file with the table swapped back is fine.
    REQUIRE(FromBytes(Encode({{"", {}}, {"a", {}}, {"\xff", {}}}), "ok").ok());
    // Patching a valid file: swap two entries of the table.
    std::string b = good;
    const size_t e1 = 20 + 16 * 1, e2 = 20 + 16 * 2;
    std::string tmp = b.substr(e1, 16);
    b.replace(e1, 16, b.substr(e2, 16));
    b.replace(e2, 16, tmp);
    Reseal(b);
    CheckStructural(b, "sorted");
  }
  SECTION("duplicate paths") {
    CheckStructural(Encode({{"", {}}, {"a", {}}, {"a", {}}}), "sorted");
    CheckStructural(Encode({{"", {}}, {"a", {}}, {"a/b", {}}, {"a/b", {}}, {"c", {}}}), "sorted");
    // Two entries sharing pool bytes for the same path.
    CheckStructural(EncodeRaw({{0, 0, {}}, {0, 1, {}}, {0, 1, {}}}, "a", "", 1, 0), "sorted");
  }
  SECTION("the root missing or not first") {
    CheckStructural(Encode({{"a", {}}, {"b", {}}}), "root");
    CheckStructural(Encode({{"a", {}}, {"", {}}}), "root");
    CheckStructural(Encode({}), "root");
    CheckStructural(Encode({}, kSmallRoot), "root");
    CheckStructural(Encode({{"", {}}, {"", {}}}), "sorted");
  }
  SECTION("entries pointing outside the pool") {
    const uint32_t pool = static_cast<uint32_t>(l.pool_len);
    using Span = std::pair<uint32_t, uint32_t>;
    for (auto [off, len] : std::initializer_list<Span>{{pool + 1, 0},
                                                       {pool, 1},
                                                       {pool - 1, 2},
                                                       {0, pool + 1},
                                                       {0xffffffffu, 1},
                                                       {1, 0xffffffffu},
                                                       {0xfffffff0u, 0x20}}) {
      CAPTURE(off, len);
      std::string b = good;
      const size_t e = 20 + 16 * 3;
      Set32(b, e, off);
      Set32(b, e + 4, len);
      Reseal(b);
      CheckStructural(b, "pool");
    }
  }
  SECTION("malformed paths") {
    for (const std::string& p : {std::string("/a"), std::string("a/"), std::string("a//b"),
                                 std::string("."), std::string(".."), std::string("a/./b"),
                                 std::string("a/../b"), std::string("a\0b", 3), std::string("/")}) {
      CAPTURE(Printable(p));
      CheckStructural(Encode({{"", {}}, {p, {}}}), "malformed");
    }
  }
  SECTION("extension records: unknown tags skipped, broken records rejected") {
    Model m;
    m[""] = Totals{1, 1, 1};
    m["x"] = Totals{2, 2, 2};
    std::vector<RawEntry> raw{{0, 0, {1, 1, 1}}, {0, 1, {2, 2, 2}}};
    const std::string known = ExtRecord(1, "/the/root");
    auto ok = FromBytes(
        EncodeRaw(raw, "x", ExtRecord(99, "future") + known + ExtRecord(7, ""), 4, 3), "ext");
    REQUIRE(ok.ok());
    CHECK((*ok)->source_root() == "/the/root");
    CHECK((*ok)->Lookup("x") == Totals{2, 2, 2});
    CheckStructural(EncodeRaw(raw, "x", known.substr(0, 4), 1, 0), "extension");
    CheckStructural(EncodeRaw(raw, "x", known + "abc", 1, 0), "extension");
    CheckStructural(EncodeRaw(raw, "x", known.substr(0, known.size() - 1), 1, 0), "extension");
    std::string huge = known;
    Set32(huge, 4, 0xffffffffu);
    CheckStructural(EncodeRaw(raw, "x", huge, 1, 0), "extension");
  }
}

TEST_CASE("reader errors name the file", "[format]") {
  TempDir dir;
  const std::string file = dir / "some dir index";
  WriteBytes(file, "");
  CheckRejected(IndexReader::Open(TestEnv(), file), file, "truncated");
  WriteBytes(file, std::string(4096, 'Z'));
  CheckRejected(IndexReader::Open(TestEnv(), file), file, "magic");
  std::string b = Encode(Entries(SmallModel()), kSmallRoot);
  b[30] ^= 1;
  WriteBytes(file, b);
  CheckRejected(IndexReader::Open(TestEnv(), file), file, "checksum");
  auto missing = IndexReader::Open(TestEnv(), dir / "absent");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains(dir / "absent"));
}

TEST_CASE("the builder refuses entries it cannot write", "[format]") {
  StringFile file;
  SECTION("out of order, sticky") {
    IndexBuilder b(file, 4, 2);
    REQUIRE(b.Add("", {}).ok());
    REQUIRE(b.Add("b", {}).ok());
    Status s = b.Add("a", {});
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("order") && Catch::Contains("mem-index"));
    CHECK_FALSE(b.Add("c", {}).ok());
    CHECK_FALSE(b.Finish(IndexMeta{}).ok());
  }
  SECTION("memcmp order: a byte >= 0x80 sorts after '/'") {
    IndexBuilder b(file, 3, 5);
    REQUIRE(b.Add("", {}).ok());
    REQUIRE(b.Add("a\xff", {}).ok());
    CHECK_FALSE(b.Add("a/b", {}).ok());
  }
  SECTION("duplicates") {
    IndexBuilder b(file, 3, 2);
    REQUIRE(b.Add("", {}).ok());
    REQUIRE(b.Add("a", {}).ok());
    CHECK_FALSE(b.Add("a", {}).ok());
  }
  SECTION("the root must come first") {
    IndexBuilder b(file, 2, 1);
    CHECK_FALSE(b.Add("a", {}).ok());
    IndexBuilder b2(file, 2, 0);
    REQUIRE(b2.Add("", {}).ok());
    CHECK_FALSE(b2.Add("", {}).ok());
  }
  SECTION("more entries than announced") {
    IndexBuilder b(file, 2, 2);
    REQUIRE(b.Add("", {}).ok());
    REQUIRE(b.Add("a", {}).ok());
    Status s = b.Add("b", {});
    CHECK_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("announced"));
  }
  SECTION("fewer entries than announced") {
    IndexBuilder b(file, 3, 2);
    REQUIRE(b.Add("", {}).ok());
    REQUIRE(b.Add("a", {}).ok());
    Status s = b.Finish(IndexMeta{});
    CHECK_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("announced"));
  }
  SECTION("pool longer or shorter than announced") {
    IndexBuilder b(file, 2, 0);
    REQUIRE(b.Add("", {}).ok());
    CHECK_THAT(b.Add("a", {}).message(), Catch::Contains("pool"));
    StringFile file2;
    IndexBuilder b2(file2, 2, 5);
    REQUIRE(b2.Add("", {}).ok());
    REQUIRE(b2.Add("a", {}).ok());
    CHECK_FALSE(b2.Finish(IndexMeta{}).ok());
  }
  SECTION("an index without the root entry") {
    // Regression: Finish used to accept zero entries and write a file every reader rejects.
    IndexBuilder b(file, 0, 0);
    Status s = b.Finish(IndexMeta{});
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("root"));
  }
  SECTION("malformed paths") {
    // Regression: Add used to accept paths the reader rejects ("a/", "a//b", ...), so
    // WriteIndex could install an index that no reader opens.
    for (const std::string& p : {std::string("/a"), std::string("a/"), std::string("a//b"),
                                 std::string("."), std::string(".."), std::string("a/./b"),
                                 std::string("a/../b"), std::string("a\0b", 3), std::string("/")}) {
      CAPTURE(Printable(p));
      StringFile f;
      IndexBuilder b(f, 2, p.size());
      REQUIRE(b.Add("", {}).ok());
      Status s = b.Add(p, {});
      CHECK(s.code() == Status::Code::kInvalidArgument);
      CHECK_THAT(s.message(), Catch::Contains("malformed"));
    }
  }
  SECTION("what the builder accepts, the reader reads") {
    IndexBuilder b(file, 3, 4);
    REQUIRE(b.Add("", Totals{1, 2, 3}).ok());
    REQUIRE(b.Add("a", Totals{4, 5, 6}).ok());
    REQUIRE(b.Add("a/b", Totals{7, 8, 9}).ok());
    REQUIRE(b.Finish(IndexMeta{9, 8, "/r", ""}).ok());
    auto r = FromBytes(file.bytes, "built");
    REQUIRE(r.ok());
    CHECK((*r)->Lookup("a/b") == Totals{7, 8, 9});
    CHECK(file.bytes ==
          Encode({{"", {1, 2, 3}}, {"a", {4, 5, 6}}, {"a/b", {7, 8, 9}}}, "/r", 9, 8));
  }
}

TEST_CASE("WriteIndex leaves no file behind when the source is bad", "[format]") {
  TempDir dir;
  const std::string file = dir / "index";
  Model old;
  old[""] = Totals{1, 1, 1};
  old["kept"] = Totals{2, 2, 2};
  REQUIRE(WriteModel(TestEnv(), file, old, IndexMeta{1, 0, "", ""}).ok());

  SECTION("unsorted source") {
    Status s = WriteIndex(TestEnv(), file, IndexMeta{2, 0, "", ""}, [](const EntryEmitter& e) {
      DTKFS_RETURN_IF_ERROR(e("", {}));
      DTKFS_RETURN_IF_ERROR(e("b", {}));
      return e("a", {});
    });
    CHECK_FALSE(s.ok());
  }
  SECTION("an empty source") {
    Status s = WriteIndex(TestEnv(), file, IndexMeta{2, 0, "", ""},
                          [](const EntryEmitter&) { return Status::Ok(); });
    CHECK_FALSE(s.ok());
  }
  SECTION("a source with a malformed path") {
    Status s = WriteIndex(TestEnv(), file, IndexMeta{2, 0, "", ""}, [](const EntryEmitter& e) {
      DTKFS_RETURN_IF_ERROR(e("", {}));
      return e("a/", {});
    });
    CHECK_FALSE(s.ok());
  }
  SECTION("a source that yields more the second time") {
    int pass = 0;
    Status s = WriteIndex(TestEnv(), file, IndexMeta{2, 0, "", ""}, [&](const EntryEmitter& e) {
      DTKFS_RETURN_IF_ERROR(e("", {}));
      if (++pass == 2) DTKFS_RETURN_IF_ERROR(e("extra", {}));
      return Status::Ok();
    });
    CHECK_FALSE(s.ok());
  }
  SECTION("a failing write") {
    Model big = RandomTree(5, 5000);  // several flushes, so several write steps
    for (int step = 0;; ++step) {
      dtkfs::testing::FaultEnv env(TestEnv());
      env.fail_at(step, ENOSPC);
      Status s = WriteModel(env, file, big, IndexMeta{2, 0, "", ""});
      if (s.ok()) break;
      CAPTURE(step);
      // The old index or, when only the directory sync failed, the new one; never neither.
      auto r = IndexReader::Open(TestEnv(), file);
      REQUIRE(r.ok());
      const uint64_t gen = (*r)->generation();
      CHECK((gen == 1 || (gen == 2 && env.log()[step].rfind("syncdir", 0) == 0)));
      REQUIRE(step < 100);
    }
  }
  CHECK_FALSE(boost::filesystem::exists(file + ".tmp"));
  auto r = IndexReader::Open(TestEnv(), file);
  REQUIRE(r.ok());
  if ((*r)->generation() == 1) {
    CHECK((*r)->Lookup("kept") == Totals{2, 2, 2});
  } else {
    // Only the failing-write section replaces the old index: its last, successful write.
    CHECK((*r)->generation() == 2);
    CHECK((*r)->size() > 5000);
  }
}

TEST_CASE("big indexes (checked on two threads) report the first fault in file order", "[format]") {
  // Enough entries for the reader's parallel check; names generated so they sort as listed.
  const size_t n = 3 * IndexReader::kParallelValidateMin / 2;
  std::vector<std::pair<std::string, Totals>> entries{{"", Totals{1, 2, 3}}};
  for (size_t i = 1; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "d%07zu/x", i);
    entries.push_back({name, Totals{i, i, 0}});
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return MemLess(a.first, b.first); });
  const std::string good = Encode(entries, "/big");
  auto ok = FromBytes(good, "big-index");
  REQUIRE(ok.ok());
  REQUIRE(ok.value()->size() == n);
  for (size_t i : {size_t{1}, n / 3, n / 2 - 1, n / 2, n / 2 + 1, n - 1})
    REQUIRE(ok.value()->Lookup(entries[i].first) == std::optional<Totals>(entries[i].second));

  // Swap two neighbours at a position: the first unsorted entry is reported, whichever half
  // (or the boundary between the halves) it is in.
  auto swapped = [&](std::vector<size_t> at) {
    auto e = entries;
    for (size_t i : at) std::swap(e[i], e[i + 1]);
    return Encode(e, "/big");
  };
  for (size_t i : {size_t{5}, n / 2 - 2, n / 2 - 1, n / 2, n - 2}) {
    CAPTURE(i);
    CheckStructural(swapped({i}), fmt::format("not strictly sorted at entry {}", i + 1));
  }
  CheckStructural(swapped({n - 10, 20}), "not strictly sorted at entry 21");
  // A malformed path in the upper half, and one in each half.
  auto with_path = [&](std::vector<std::pair<size_t, std::string>> patches) {
    auto e = entries;
    for (auto& [i, p] : patches) e[i].first = p;
    return Encode(e, "/big");
  };
  const std::string upper = entries[n - 5].first;
  CheckStructural(with_path({{n - 5, upper + "/."}}),
                  fmt::format("entry {} has a malformed", n - 5));
  CheckStructural(with_path({{n - 5, upper + "/."}, {7, entries[7].first + "//y"}}),
                  "entry 7 has a malformed");
  // An entry pointing outside the pool just before the split does not crash the other half.
  {
    std::vector<RawEntry> raw;
    std::string pool;
    for (const auto& [p, t] : entries) {
      raw.push_back(
          RawEntry{static_cast<uint32_t>(pool.size()), static_cast<uint32_t>(p.size()), t});
      pool += p;
    }
    raw[n / 2 - 1].offset = static_cast<uint32_t>(pool.size() + 100);
    CheckStructural(EncodeRaw(raw, pool, "", 1, 0),
                    fmt::format("entry {} points outside the path pool", n / 2 - 1));
  }
}
