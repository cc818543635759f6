// Every directory's totals as a map, from a size store, an index file or a scan: what the
// store, compaction, recovery and power-loss tests compare.
#pragma once

#include <map>
#include <string>

#include "dtkfs/totals.h"
#include "index/index_reader.h"
#include "scan/scanner.h"
#include "store/size_store.h"

namespace dtkfs::testing {

using View = std::map<std::string, Totals>;

// Everything a store shows: the root and every entry below it.
inline View LiveView(const SizeStore& store) {
  View v;
  if (auto root = store.Lookup("")) v[""] = *root;
  for (auto& [p, t] : store.ListBelow("", 0)) v[p] = t;
  return v;
}

inline View ReaderView(const IndexReader& r) {
  View v;
  for (size_t i = 0; i < r.size(); ++i) v[std::string(r.path_at(i))] = r.totals_at(i);
  return v;
}

inline View ScanView(const ScanResult& scan) { return View(scan.dirs.begin(), scan.dirs.end()); }

}  // namespace dtkfs::testing
