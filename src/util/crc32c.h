// CRC32C (Castagnoli), the index file's checksum. Uses SSE4.2 when the CPU has it (about
// 10 GB/s here), else a table. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dtkfs::crc32c {

// Continues a CRC: Extend(Extend(0, a), b) == Value(a + b).
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

}  // namespace dtkfs::crc32c
