// dtkfs scan SRC [--index PATH]: build or rebuild the index of SRC.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"

namespace dtkfs::cli {

int RunScan(const ScanArgs& args) {
  Env& env = Env::Default();
  auto target = LocateIndex(env, args.source, args.index, "");
  if (!target.ok()) {
    PrintError(target.status().message());
    return kExitError;
  }
  auto lock = LockIndex(env, target->index);
  if (!lock.ok()) {
    PrintError(lock.status().message());
    return kExitError;
  }
  ScanOptions options;
  options.on_progress = TerminalProgress();
  auto report = BuildIndex(env, *target, options);
  if (!report.ok()) {
    PrintError(report.status().message());
    return kExitError;
  }
  for (const auto& e : report->scan.errors) PrintError(e.ToString(target->source));
  fmt::print(stderr, "dtkfs: indexed {} directories ({} entries) of {} in {:.3f} s -> {}\n",
             report->scan.dirs.size(), report->scan.entries, target->source, report->seconds,
             target->index);
  if (!report->scan.errors.empty()) {
    fmt::print(stderr, "dtkfs: {} unreadable paths counted as what could be read\n",
               report->scan.errors.size());
    return kExitFindings;
  }
  return kExitOk;
}

}  // namespace dtkfs::cli
