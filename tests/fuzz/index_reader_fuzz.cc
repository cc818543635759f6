// libFuzzer target: IndexReader must reject or accept any bytes without crashing or reading
// out of bounds, and an accepted index must answer every lookup it advertises.
#include <cstddef>
#include <cstdint>
#include <string>

#include "index/index_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = dtkfs::MakeMemoryFile(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  auto reader = dtkfs::IndexReader::FromFile(file);
  if (!reader.ok()) return 0;
  const auto& r = **reader;
  for (size_t i = 0; i < r.size(); ++i) {
    auto p = r.path_at(i);
    auto found = r.Find(p);
    if (!found || *found != i) __builtin_trap();
    auto [lo, hi] = r.SubtreeRange(p);
    if (lo > hi || hi > r.size()) __builtin_trap();
    (void)r.totals_at(i);
  }
  (void)r.Lookup("a/b");
  return 0;
}
