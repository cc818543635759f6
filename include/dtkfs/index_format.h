// The on-disk index format (docs/format.md). Shared by the builder, the reader, the fuzz
// target and tools.
//
// DO NOT CHANGE the values or layouts below: they are on disk. A new field means a new
// version or a new section, never a new meaning for old bytes.
//
//   offset 0   header (20 bytes, the seed layout):
//                magic "DSKTRKMM" | version u32 | entry count u32 | path-pool length u32
//   offset 20  entry table: count x 16 bytes: path offset u32 | path length u32 | bytes u64
//              sorted by path bytes (memcmp), strictly increasing, first entry the root ""
//   then       path pool: pool-length bytes, paths packed without terminators
//   then       zero padding to a multiple of 8
//   then       aggregates (version 2): count x 16 bytes: files u64 | dirs u64
//   then       extension section (version 2): records of tag u32 | length u32 | bytes;
//              readers skip tags they do not know
//   last       trailer (80 bytes, version 2), see Trailer below
//
// All integers little-endian. Paths are relative to the source root, one entry per directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dtkfs::format {

inline constexpr std::string_view kMagic{"DSKTRKMM", 8};
inline constexpr uint32_t kSeedVersion = 1;  // header + entries + pool only
inline constexpr uint32_t kVersion = 2;      // what dtkfs writes and reads
inline constexpr size_t kHeaderSize = 20;
inline constexpr size_t kEntrySize = 16;
inline constexpr size_t kAggregateRecordSize = 16;
inline constexpr size_t kTrailerSize = 80;
inline constexpr uint32_t kTrailerMagic = 0x544b5444;  // "DTKT" read as little-endian u32
inline constexpr size_t kMaxPathLength = 1u << 20;     // far above PATH_MAX chains; sanity bound

// Trailer field offsets, relative to the trailer's first byte.
namespace trailer {
inline constexpr size_t kAggregatesOffset = 0;    // u64: file offset of the aggregates section
inline constexpr size_t kExtOffset = 8;           // u64: file offset of the extension section
inline constexpr size_t kExtLength = 16;          // u64: its length in bytes
inline constexpr size_t kIndexGeneration = 24;    // u64: bumped by every install
inline constexpr size_t kJournalGeneration = 32;  // u64: journal generation this index covers
inline constexpr size_t kCrcHeadEntries = 40;     // u32: CRC32C of header + entry table
inline constexpr size_t kCrcPool = 44;            // u32: CRC32C of path pool + padding
inline constexpr size_t kCrcAggregates = 48;      // u32: CRC32C of the aggregates section
inline constexpr size_t kCrcExt = 52;             // u32: CRC32C of the extension section
inline constexpr size_t kAggregateRecord = 56;    // u32: bytes per aggregate record (16)
inline constexpr size_t kFlags = 60;              // u32: 0
inline constexpr size_t kReserved = 64;           // u64: 0
inline constexpr size_t kMagicField = 72;         // u32: kTrailerMagic
inline constexpr size_t kCrcTrailer = 76;         // u32: CRC32C of trailer bytes [0, 76)
}  // namespace trailer

// Extension record tags.
inline constexpr uint32_t kExtSourceRoot = 1;  // the canonical source path, raw bytes
inline constexpr uint32_t kExtLinkTable = 2;   // the multi-link table (src/index/link_table.h)

// The multi-link table (extension record kExtLinkTable; src/index/link_table.h says what it
// means):
//   count u64
//   count x 32-byte records, strictly increasing by (dev, ino):
//     dev u64 | ino u64 | size u64 | first-name offset u32 | name count u32
//   names: (length u32 | path bytes) each; a record's names are contiguous from its offset.
namespace link_table {
inline constexpr size_t kCountSize = 8;
inline constexpr size_t kRecordSize = 32;
inline constexpr size_t kDev = 0;         // u64: st_dev XOR the source root's st_dev
inline constexpr size_t kIno = 8;         // u64
inline constexpr size_t kSize = 16;       // u64: st_size counted for each name
inline constexpr size_t kFirstName = 24;  // u32: offset of the first name in the names area
inline constexpr size_t kNameCount = 28;  // u32
inline constexpr size_t kNameLength = 4;  // u32 before each name's bytes
}  // namespace link_table

inline size_t AlignUp8(size_t n) { return (n + 7) & ~static_cast<size_t>(7); }

// Little-endian loads and stores; the only byte-order code in the project.
inline uint32_t LoadU32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
         static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
}
inline uint64_t LoadU64(const char* p) {
  return static_cast<uint64_t>(LoadU32(p)) | static_cast<uint64_t>(LoadU32(p + 4)) << 32;
}
inline void StoreU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline void StoreU64(char* p, uint64_t v) {
  StoreU32(p, static_cast<uint32_t>(v));
  StoreU32(p + 4, static_cast<uint32_t>(v >> 32));
}

}  // namespace dtkfs::format
