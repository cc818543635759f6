#include "cli/export_ncdu.h"

#include <fmt/format.h>

#include <unordered_map>

#include "util/path.h"

namespace dtkfs::cli {

NcduTree BuildNcduTree(std::string root_name, std::string_view root_rel, const Totals& root_totals,
                       const std::vector<std::pair<std::string, Totals>>& below) {
  NcduTree tree;
  tree.dirs.reserve(below.size() + 1);
  tree.dirs.push_back(NcduDir{std::move(root_name), root_totals, {}, {}});
  std::unordered_map<std::string_view, size_t> index_of;
  index_of.reserve(below.size() + 1);
  index_of.emplace(root_rel, 0);
  for (const auto& [rel, totals] : below) {
    index_of.emplace(rel, tree.dirs.size());
    tree.dirs.push_back(NcduDir{std::string(path::Basename(rel)), totals, {}, {}});
  }
  for (size_t i = 0; i < below.size(); ++i) {
    auto parent = index_of.find(path::Parent(below[i].first));
    if (parent != index_of.end()) tree.dirs[parent->second].children.push_back(i + 1);
  }
  for (NcduDir& dir : tree.dirs) {
    Totals children;
    for (size_t c : dir.children) {
      children.bytes += tree.dirs[c].totals.bytes;
      children.files += tree.dirs[c].totals.files;
    }
    const bool fits = children.bytes <= dir.totals.bytes && children.files <= dir.totals.files;
    if (!fits) ++tree.inconsistent;
    dir.own.bytes = children.bytes <= dir.totals.bytes ? dir.totals.bytes - children.bytes : 0;
    dir.own.files = children.files <= dir.totals.files ? dir.totals.files - children.files : 0;
  }
  return tree;
}

std::string NcduString(std::string_view name) {
  std::string out = "\"";
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        // ncdu reads a \u escape as the UTF-8 encoding of that code point, so a byte of 0x80
        // and above is written as itself: that is the only way it reads back as the same byte.
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04x}", c);
        else
          out += ch;
    }
  }
  out += '"';
  return out;
}

namespace {

// The info object of a directory: no size of its own; its totals as dtkfs_* keys.
std::string DirectoryInfo(const NcduDir& dir) {
  return fmt::format(R"({{"name":{},"dtkfs_total_bytes":{},"dtkfs_total_files":{},)"
                     R"("dtkfs_total_dirs":{}}})",
                     NcduString(dir.name), dir.totals.bytes, dir.totals.files, dir.totals.dirs);
}

// The entry standing for a directory's own files (none when it has none).
std::string OwnFilesInfo(const NcduDir& dir) {
  return fmt::format(R"({{"name":{},"asize":{},"dsize":{},"dtkfs_files":{}}})",
                     NcduString(kOwnFilesName), dir.own.bytes, dir.own.bytes, dir.own.files);
}

}  // namespace

void WriteNcdu(const NcduTree& tree, const NcduMetadata& meta, TextSink& out) {
  out.Append(fmt::format(R"([1,2,{{"progname":"dtkfs","progver":{},"timestamp":{})",
                         NcduString(meta.progver), meta.timestamp));
  if (!meta.source.empty())
    out.Append(fmt::format(R"(,"dtkfs_source":{})", NcduString(meta.source)));
  if (meta.totals_time)
    out.Append(fmt::format(R"(,"dtkfs_totals_timestamp":{:.3f})", *meta.totals_time));
  out.Append("}");
  // Depth first without recursion: a directory chain may be deeper than the stack allows.
  // Each frame is a directory and the next of its children to write.
  std::vector<std::pair<size_t, size_t>> stack;
  auto open = [&](size_t d) {
    out.Append(",\n[");
    out.Append(DirectoryInfo(tree.dirs[d]));
    if (tree.dirs[d].own.files > 0 || tree.dirs[d].own.bytes > 0) {
      out.Append(",\n");
      out.Append(OwnFilesInfo(tree.dirs[d]));
    }
    stack.emplace_back(d, 0);
  };
  open(0);
  while (!stack.empty()) {
    const size_t d = stack.back().first;
    size_t& next = stack.back().second;
    if (next < tree.dirs[d].children.size()) {
      const size_t child = tree.dirs[d].children[next++];
      open(child);  // invalidates next
    } else {
      out.Append("]");
      stack.pop_back();
    }
  }
  out.Append("]\n");
}

}  // namespace dtkfs::cli
