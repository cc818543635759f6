// Totals: the three numbers dtkfs keeps for every directory (DESIGN-BRIEF section 2).
//
// bytes: sum of lstat st_size of every non-directory entry below the directory, at any depth;
// files: how many such entries; dirs: how many directories strictly below it.
// Shared by the core, the FUSE layer, the CLI and the tests. Plain values.
#pragma once

#include <cstdint>

namespace dtkfs {

struct Totals {
  uint64_t bytes = 0;
  uint64_t files = 0;
  uint64_t dirs = 0;
  friend bool operator==(const Totals&, const Totals&) = default;
};

// A signed change to Totals (a write grows bytes, an unlink removes a file, ...).
struct Delta {
  int64_t bytes = 0;
  int64_t files = 0;
  int64_t dirs = 0;
  bool empty() const { return bytes == 0 && files == 0 && dirs == 0; }
  Delta operator-() const { return Delta{-bytes, -files, -dirs}; }
  friend bool operator==(const Delta&, const Delta&) = default;
};

// The Totals a directory's subtree contributes to its parent: its own totals plus itself.
inline Delta SubtreeContribution(const Totals& t) {
  return Delta{static_cast<int64_t>(t.bytes), static_cast<int64_t>(t.files),
               static_cast<int64_t>(t.dirs) + 1};
}

inline Totals Apply(Totals t, const Delta& d) {
  t.bytes = static_cast<uint64_t>(static_cast<int64_t>(t.bytes) + d.bytes);
  t.files = static_cast<uint64_t>(static_cast<int64_t>(t.files) + d.files);
  t.dirs = static_cast<uint64_t>(static_cast<int64_t>(t.dirs) + d.dirs);
  return t;
}

}  // namespace dtkfs
