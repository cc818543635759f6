// dtkfs top [--index PATH] [-n N] [--depth D] PATH: the N largest directories below PATH.
#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/totals_source.h"
#include "util/path.h"

namespace dtkfs::cli {

int RunTop(const TopArgs& args) {
  Env& env = Env::Default();
  auto target = ResolveDirectory(env, args.path, args.index);
  if (!target.ok()) {
    PrintError(target.status().message());
    return kExitError;
  }
  auto below = target->source->ListBelow(target->relative, args.depth);
  const size_t n = std::min(args.count, below.size());
  std::partial_sort(below.begin(), below.begin() + static_cast<long>(n), below.end(),
                    [](const auto& a, const auto& b) {
                      return a.second.bytes != b.second.bytes ? a.second.bytes > b.second.bytes
                                                              : a.first < b.first;
                    });
  below.resize(n);
  // Show paths as the user named them: PATH/sub/dir.
  std::string prefix = args.path;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  const size_t strip = target->relative.empty() ? 0 : target->relative.size() + 1;
  if (args.json) fmt::print("[");
  for (size_t i = 0; i < below.size(); ++i) {
    std::string shown = prefix + "/" + below[i].first.substr(strip);
    if (args.json)
      fmt::print("{}{}", i ? "," : "", JsonRecord(shown, below[i].second));
    else
      fmt::print("{}\n", DuLine(below[i].second.bytes, shown, args.human));
  }
  if (args.json) fmt::print("]\n");
  return kExitOk;
}

}  // namespace dtkfs::cli
