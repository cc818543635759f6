#include "cli/export_prometheus.h"

#include <fmt/format.h>

#include "cli/output.h"

namespace dtkfs::cli {

std::string PathLabelText(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (size_t i = 0; i < path.size();) {
    const auto c = static_cast<unsigned char>(path[i]);
    const size_t len = Utf8SequenceLength(path, i);
    const bool backslash_x = c == '\\' && i + 1 < path.size() && path[i + 1] == 'x';
    if (len == 0 || (c < 0x20 && c != '\n') || c == 0x7f || backslash_x) {
      out += fmt::format("\\x{:02X}", c);
      ++i;
    } else {
      out.append(path.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string PrometheusLabelValue(std::string_view path) {
  std::string out;
  for (char c : PathLabelText(path)) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

struct DirectoryMetric {
  std::string_view name, help;
  uint64_t Totals::*field;
};

// Names and meanings: do not change, dashboards and alerts use them (docs/export.md).
constexpr DirectoryMetric kDirectoryMetrics[] = {
    {"dtkfs_directory_bytes",
     "Apparent size (lstat st_size) of every non-directory below the directory, at any depth; "
     "each name of a hard-linked file counts (user.total_bytes).",
     &Totals::bytes},
    {"dtkfs_directory_files",
     "Non-directories below the directory, at any depth (user.total_files).", &Totals::files},
    {"dtkfs_directory_dirs", "Directories strictly below the directory (user.total_dirs).",
     &Totals::dirs},
};

void Header(TextSink& out, std::string_view name, std::string_view help) {
  out.Append(fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name));
}

}  // namespace

void WritePrometheus(const PrometheusExport& e, TextSink& out) {
  for (const DirectoryMetric& m : kDirectoryMetrics) {
    Header(out, m.name, m.help);
    for (const auto& [path, totals] : e.dirs)
      out.Append(fmt::format("{}{{path=\"{}\"}} {}\n", m.name, PrometheusLabelValue(path),
                             totals.*m.field));
  }
  const std::string root = PrometheusLabelValue(e.root);
  Header(out, "dtkfs_export_timestamp_seconds", "Unix time this export was written.");
  out.Append(
      fmt::format("dtkfs_export_timestamp_seconds{{root=\"{}\"}} {:.3f}\n", root, e.export_time));
  if (e.totals_time) {
    Header(out, "dtkfs_totals_timestamp_seconds",
           "Unix time the totals were exact for: on a live mount the compaction the export "
           "asked for (or the export's time when it listed the mount), offline the index "
           "file's last write.");
    out.Append(fmt::format("dtkfs_totals_timestamp_seconds{{root=\"{}\"}} {:.3f}\n", root,
                           *e.totals_time));
  }
}

}  // namespace dtkfs::cli
