// CRC32C against an independent implementation (Boost.CRC's generic one), so a bug in the
// SSE4.2 path or the table cannot hide behind tests written from the same understanding.
#include "util/crc32c.h"

#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <random>
#include <string>

using namespace dtkfs;

namespace {
uint32_t BoostCrc32c(const char* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  return crc.checksum();
}
}  // namespace

TEST_CASE("crc32c: the standard check value and Boost.CRC agree", "[crc32c]") {
  CHECK(crc32c::Value("123456789", 9) == 0xE3069283u);  // the catalogue's check value
  CHECK(crc32c::Value("", 0) == 0u);
  std::mt19937_64 rng(20261125);
  std::string buf(70000, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  // Every alignment and the lengths around the 8-byte steps and the SSE4.2 blocks.
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t len : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 4095, 4096, 65536}) {
      INFO("offset " << offset << " length " << len);
      REQUIRE(crc32c::Value(buf.data() + offset, len) == BoostCrc32c(buf.data() + offset, len));
    }
  }
  // Extend continues a CRC exactly where it stopped.
  const uint32_t whole = crc32c::Value(buf.data(), 10000);
  CHECK(crc32c::Extend(crc32c::Value(buf.data(), 3333), buf.data() + 3333, 6667) == whole);
}
