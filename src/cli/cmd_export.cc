// dtkfs export --format ncdu|prometheus [--index FILE] [--output FILE] [--depth N] [--top N]
// PATH: the totals of PATH and the directories below it, from the live xattrs of a mount or
// from an index, in a format another tool reads (docs/export.md). No walk of the files.
#include <fmt/format.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <chrono>

#include "cli/commands.h"
#include "cli/export_ncdu.h"
#include "cli/export_prometheus.h"
#include "cli/output.h"
#include "cli/text_sink.h"
#include "cli/totals_source.h"
#include "env/install_file.h"

#ifndef DTKFS_VERSION
#define DTKFS_VERSION "unknown"
#endif

namespace dtkfs::cli {
namespace {

// PATH as the export shows it: absolute (ncdu's root name is an absolute path; a scraper has
// no working directory), without resolving symlinks, no trailing slash.
std::string ShownRoot(const std::string& p) {
  std::string shown = boost::filesystem::absolute(p).lexically_normal().string();
  while (shown.size() > 1 && (shown.back() == '/' || shown.back() == '.')) {
    if (shown.back() == '.' && shown[shown.size() - 2] != '/') break;
    shown.pop_back();
  }
  return shown;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What is written, given where to.
using Body = std::function<void(TextSink&)>;

// Writes body to standard output, or installs it at output whole (a temporary file beside it,
// renamed over it; removed on any failure, so no partial file is ever seen there).
Status Emit(const std::string& output, const Body& body) {
  if (output.empty()) {
    TextSink sink(StdoutWriter());
    body(sink);
    return sink.Finish();
  }
  // 0666 less the umask, like a shell redirection: node_exporter runs as another user.
  return InstallFile(Env::Default(), output, 0666, [&](WritableFile& file) {
    TextSink sink(FileWriter(file));
    body(sink);
    return sink.Finish();
  });
}

}  // namespace

int RunExport(const ExportArgs& args) {
  const bool ncdu = args.format == "ncdu";
  if (!ncdu && args.format != "prometheus") {
    PrintError(args.format.empty()
                   ? "export: --format is required (ncdu or prometheus)"
                   : fmt::format("export: --format '{}' is not ncdu or prometheus", args.format));
    return kExitError;
  }
  if (ncdu && (args.depth != ExportArgs::kNotGiven || args.top != ExportArgs::kNotGiven)) {
    PrintError(
        "export: --depth and --top bound the series of --format prometheus; an ncdu export is "
        "always the whole tree");
    return kExitError;
  }
  Env& env = Env::Default();
  auto target = Resolve(env, args.path, args.index);
  if (!target.ok()) {
    PrintError(target.status().message());
    return kExitError;
  }
  if (!target->is_directory) {
    PrintError(fmt::format("{}: not a directory", args.path));
    return kExitError;
  }
  const TotalsSource& source = *target->source;
  const std::optional<Totals> root = source.Lookup(target->relative);
  if (!root) {
    PrintError(fmt::format(
        "{}: not in the index (created after the last scan? run dtkfs scan or dtkfs check "
        "--repair)",
        args.path));
    return kExitError;
  }
  const std::string shown = ShownRoot(args.path);
  const double now = Now();

  if (ncdu) {
    const NcduTree tree =
        BuildNcduTree(shown, target->relative, *root, source.ListBelow(target->relative, 0));
    Status s = Emit(args.output, [&](TextSink& out) {
      WriteNcdu(tree, DTKFS_VERSION, static_cast<uint64_t>(now), out);
    });
    if (!s.ok()) {
      PrintError(fmt::format("export: {}", s.message()));
      return kExitError;
    }
    if (tree.inconsistent > 0) {
      PrintError(fmt::format(
          "export: {} directories changed while they were read (their subdirectories add up to "
          "more than their totals); run the export again",
          tree.inconsistent));
      return kExitFindings;
    }
    return kExitOk;
  }

  const size_t depth = args.depth == ExportArgs::kNotGiven ? ExportArgs::kDefaultDepth : args.depth;
  const size_t top = args.top == ExportArgs::kNotGiven ? ExportArgs::kDefaultTop : args.top;
  PrometheusExport e;
  e.root = shown;
  e.export_time = now;
  e.totals_time = source.TotalsTime();
  e.dirs.emplace_back(shown, *root);
  if (depth > 0) {
    auto below = source.ListBelow(target->relative, depth);
    // The largest first (ties by path, so the choice is stable), then back in path order.
    const auto larger = [](const auto& a, const auto& b) {
      return a.second.bytes != b.second.bytes ? a.second.bytes > b.second.bytes : a.first < b.first;
    };
    const size_t n = std::min(top, below.size());
    std::partial_sort(below.begin(), below.begin() + static_cast<long>(n), below.end(), larger);
    below.resize(n);
    std::sort(below.begin(), below.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    const size_t strip = target->relative.empty() ? 0 : target->relative.size() + 1;
    for (auto& [rel, totals] : below)
      e.dirs.emplace_back(shown + (shown == "/" ? "" : "/") + rel.substr(strip), totals);
  }
  Status s = Emit(args.output, [&](TextSink& out) { WritePrometheus(e, out); });
  if (!s.ok()) {
    PrintError(fmt::format("export: {}", s.message()));
    return kExitError;
  }
  return kExitOk;
}

}  // namespace dtkfs::cli
