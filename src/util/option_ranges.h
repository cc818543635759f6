// The valid range of every numeric option, in one place. The long flags (src/cli/main.cc,
// through src/cli/args.h) and the -o mount options (src/fs/daemon.cc) both parse with
// ParseNumber, so NaN, inf, negative and absurd values are refused the same way, with the
// valid range in the message (README "Options", docs/design.md).
//
// The maxima keep every value far from overflowing what it is converted to (a wait in
// std::chrono ticks, a libfuse timeout, a thread count). Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace dtkfs {

struct NumberRange {
  double min;
  double max;
  bool integral;          // whole numbers only
  std::string_view unit;  // shown after the range: "0 to 604800 seconds"
};

namespace ranges {
// Seconds between timer compactions; 0: no timer (compactions on size, request, unmount).
inline constexpr NumberRange kCompactInterval{0, 604800, false, "seconds (0: no timer)"};
inline constexpr NumberRange kEntryTimeout{0, 86400, false, "seconds"};
inline constexpr NumberRange kAttrTimeout{0, 86400, false, "seconds"};
// Active overlay entries that trigger a compaction.
inline constexpr NumberRange kCompactThreshold{1, 1e9, true, "entries"};
inline constexpr NumberRange kThreads{1, 256, true, "threads"};
// -o fd_budget: inode descriptors the daemon keeps open (InodeTable::SetFdBudget).
inline constexpr NumberRange kFdBudget{4, 1e7, true, "descriptors"};
// dtkfs top -n and --depth (0: any depth).
inline constexpr NumberRange kTopCount{1, 1e9, true, "directories"};
inline constexpr NumberRange kTopDepth{0, 1e6, true, "levels (0: any depth)"};
// dtkfs export --format prometheus --depth (0: PATH alone) and --top.
inline constexpr NumberRange kExportDepth{0, 1e6, true, "levels (0: PATH alone)"};
inline constexpr NumberRange kExportTop{1, 1e9, true, "directories"};
}  // namespace ranges

// Parses text ("60", "0.5", "1e3") as a finite number within range; otherwise an
// InvalidArgument whose message quotes the text and gives the valid range.
Result<double> ParseNumber(std::string_view text, const NumberRange& range);

}  // namespace dtkfs
