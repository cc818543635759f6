// dtkfs du [--index PATH] [-h] [--json] PATH...: recursive sizes without a walk.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/totals_source.h"

namespace dtkfs::cli {

int RunDu(const DuArgs& args) {
  Env& env = Env::Default();
  int rc = kExitOk;
  std::vector<std::string> records;
  for (const auto& p : args.paths) {
    auto target = Resolve(env, p, args.index);
    if (!target.ok()) {
      PrintError(target.status().message());
      rc = kExitError;
      continue;
    }
    Totals t;
    if (target->is_directory) {
      auto found = target->source->Lookup(target->relative);
      if (!found) {
        PrintError(
            fmt::format("{}: not in the index (created after the last scan? run dtkfs "
                        "scan or dtkfs check --repair)",
                        p));
        rc = kExitError;
        continue;
      }
      t = *found;
    } else {
      t = Totals{target->own_size, 1, 0};
    }
    if (args.json)
      records.push_back(JsonRecord(p, t));
    else
      fmt::print("{}\n", DuLine(t.bytes, p, args.human));
  }
  if (args.json) {
    fmt::print("[");
    for (size_t i = 0; i < records.size(); ++i) fmt::print("{}{}", i ? "," : "", records[i]);
    fmt::print("]\n");
  }
  return rc;
}

}  // namespace dtkfs::cli
