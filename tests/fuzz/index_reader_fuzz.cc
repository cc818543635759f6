// libFuzzer target: IndexReader must reject or accept any bytes without crashing or reading
// out of bounds, and an accepted index must answer every lookup it advertises. The same bytes
// also go to the link table's own check (an index's checksums keep most mutations from
// reaching it), and an accepted table must find every record it lists.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "index/index_reader.h"
#include "index/link_table.h"

namespace {

void ExerciseLinks(const dtkfs::LinkTableView& links) {
  for (size_t i = 0; i < links.size(); ++i) {
    const dtkfs::LinkRecord r = links.at(i);
    auto found = links.Find(r.key);
    if (!found || !(*found == r)) __builtin_trap();
    (void)links.RecordsBelow(r.paths.front());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  if (dtkfs::LinkTableView::Check(raw).empty()) ExerciseLinks(dtkfs::LinkTableView(raw));
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
  ExerciseLinks(r.links());
  return 0;
}
