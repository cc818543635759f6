// The Prometheus export (`dtkfs export --format prometheus`): the text exposition format as
// node_exporter's textfile collector reads it: gauges with a dtkfs_ prefix, HELP and TYPE
// lines, no timestamps (docs/export.md).
//
// A directory is labelled with its path. Label values must be UTF-8 and a path is any bytes,
// so a path is first made readable text by one reversible rule (PathLabelText), then escaped
// as the format asks (`\` -> `\\`, `"` -> `\"`, newline -> `\n`). Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/text_sink.h"
#include "dtkfs/totals.h"

namespace dtkfs::cli {

// path as valid UTF-8 text, reversibly: a byte that is not part of well-formed UTF-8, a
// control byte other than newline, and a backslash followed by `x` are written `\xHH` (two
// upper-case hex digits); everything else is itself. Reading `\xHH` back as byte HH and any
// other character as itself gives the bytes back, so two paths never share a label.
std::string PathLabelText(std::string_view path);
// A label value between its quotes: PathLabelText, then the format's escapes.
std::string PrometheusLabelValue(std::string_view path);

struct PrometheusExport {
  std::string root;  // the exported path, as shown in the labels
  // Directories to write, root first; paths as shown.
  std::vector<std::pair<std::string, Totals>> dirs;
  double export_time = 0;             // Unix time of this export
  std::optional<double> totals_time;  // Unix time the totals were exact for, if known
};

void WritePrometheus(const PrometheusExport& e, TextSink& out);

}  // namespace dtkfs::cli
