// dtkfs check SRC [--index PATH] [--repair] [--json]: walk the source, compare with the index, list
// the directories whose totals differ and the hard links the index does not know as they
// are; --repair installs a fresh index. An unreadable index is an error (exit 2) unless
// --repair rebuilds it.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "cli/commands.h"
#include "cli/output.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "index/index_reader.h"

namespace dtkfs::cli {
namespace {

// One difference between the index and the walk. kind: new, gone, differs, links, or
// unreadable_index (--repair only; otherwise that is an error).
struct Finding {
  std::string kind;
  std::string path;                   // as shown: the source path joined with the relative one
  std::optional<Totals> index, walk;  // directories
  std::optional<LinkRecord> index_links, walk_links;  // hard links
  std::string message;                                // unreadable_index
};

std::string Describe(const Totals& t) {
  return fmt::format("bytes={} files={} dirs={}", t.bytes, t.files, t.dirs);
}

std::string Shown(const std::string& root, const std::string& rel) {
  return rel.empty() ? root : root + "/" + rel;
}

std::string Describe(const LinkRecord& r) {
  return fmt::format("{} names, size {}", r.paths.size(), r.size);
}

// The line `dtkfs check` prints for f.
std::string TextLine(const Finding& f) {
  if (f.kind == "gone") return fmt::format("gone\t{}\t(index has it, the source does not)", f.path);
  if (f.kind == "new")
    return fmt::format("new\t{}\t(not in the index; walk: {})", f.path, Describe(*f.walk));
  if (f.kind == "differs")
    return fmt::format("differs\t{}\tindex: {}; walk: {}", f.path, Describe(*f.index),
                       Describe(*f.walk));
  if (!f.walk_links)
    return fmt::format("links\t{}\t(index lists hard links the source does not have)", f.path);
  if (!f.index_links)
    return fmt::format("links\t{}\t(not in the index's link table; walk: {})", f.path,
                       Describe(*f.walk_links));
  return fmt::format("links\t{}\tindex: {}; walk: {}", f.path, Describe(*f.index_links),
                     Describe(*f.walk_links));
}

std::string JsonTotals(const std::optional<Totals>& t) {
  if (!t) return "null";
  return fmt::format(R"({{"bytes":{},"files":{},"dirs":{}}})", t->bytes, t->files, t->dirs);
}

std::string JsonLinks(const std::optional<LinkRecord>& r) {
  if (!r) return "null";
  return fmt::format(R"({{"names":{},"size":{}}})", r->paths.size(), r->size);
}

std::string JsonFinding(const Finding& f) {
  std::string out = fmt::format(R"({{"kind":{},"path":{})", JsonString(f.kind), JsonString(f.path));
  if (f.kind == "links")
    out +=
        fmt::format(R"(,"index":{},"walk":{})", JsonLinks(f.index_links), JsonLinks(f.walk_links));
  else if (f.kind == "unreadable_index")
    out += fmt::format(R"(,"message":{})", JsonString(f.message));
  else
    out += fmt::format(R"(,"index":{},"walk":{})", JsonTotals(f.index), JsonTotals(f.walk));
  return out + "}";
}

// The multi-link records that differ between the index and the walk (both sorted by key).
void CompareLinks(const std::string& root, const LinkTableView& index,
                  const std::vector<LinkRecord>& walk, std::vector<Finding>* findings) {
  size_t i = 0, j = 0;
  auto report = [&](const LinkRecord& shown, std::optional<LinkRecord> in_index,
                    std::optional<LinkRecord> in_walk) {
    findings->push_back(Finding{"links", Shown(root, shown.paths.front()), std::nullopt,
                                std::nullopt, std::move(in_index), std::move(in_walk), ""});
  };
  while (i < index.size() || j < walk.size()) {
    if (j == walk.size() || (i < index.size() && index.key_at(i) < walk[j].key)) {
      LinkRecord r = index.at(i++);
      report(r, r, std::nullopt);
    } else if (i == index.size() || walk[j].key < index.key_at(i)) {
      report(walk[j], std::nullopt, walk[j]);
      ++j;
    } else {
      LinkRecord r = index.at(i++);
      std::sort(r.paths.begin(), r.paths.end());
      if (!(r == walk[j])) report(walk[j], r, walk[j]);
      ++j;
    }
  }
}

}  // namespace

int RunCheck(const CheckArgs& args) {
  Env& env = Env::Default();
  auto target = LocateIndex(env, args.source, args.index, "");
  if (!target.ok()) {
    PrintError(target.status().message());
    return kExitError;
  }
  auto lock = LockIndex(env, target->index);
  if (!lock.ok()) {
    const bool busy = lock.status().code() == Status::Code::kBusy;
    PrintError(lock.status().message() +
               (busy ? " (unmount it, or check while it is not mounted)" : ""));
    return kExitError;
  }
  std::vector<Finding> findings;
  auto reader = IndexReader::Open(env, target->index);
  if (!reader.ok()) {
    // Nothing to compare with: that is an error, not a list of differing entries.
    PrintError(
        fmt::format("index {} is unreadable: {}{}", target->index, reader.status().message(),
                    args.repair ? "; rebuilding it" : " (dtkfs check --repair rebuilds it)"));
    if (!args.repair) return kExitError;
    findings.push_back(Finding{"unreadable_index", target->index, std::nullopt, std::nullopt,
                               std::nullopt, std::nullopt, reader.status().message()});
  }

  ScanOptions options;
  auto scan = ScanTree(target->source, "", options);
  if (!scan.ok()) {
    PrintError(scan.status().message());
    return kExitError;
  }
  std::vector<std::string> errors;
  for (const auto& e : scan->errors) {
    errors.push_back(e.ToString(target->source));
    PrintError(errors.back());
  }

  if (reader.ok()) {
    // Both sides are sorted by path: one merge finds every difference.
    const IndexReader& idx = **reader;
    size_t i = 0, j = 0;
    const auto& walk = scan->dirs;
    auto add = [&](std::string kind, const std::string& rel, std::optional<Totals> in_index,
                   std::optional<Totals> in_walk) {
      findings.push_back(Finding{std::move(kind), Shown(target->source, rel), in_index, in_walk,
                                 std::nullopt, std::nullopt, ""});
    };
    while (i < idx.size() || j < walk.size()) {
      int cmp = i == idx.size() ? 1 : j == walk.size() ? -1 : idx.path_at(i).compare(walk[j].first);
      if (cmp < 0) {
        add("gone", std::string(idx.path_at(i)), idx.totals_at(i), std::nullopt);
        ++i;
      } else if (cmp > 0) {
        add("new", walk[j].first, std::nullopt, walk[j].second);
        ++j;
      } else {
        Totals t = idx.totals_at(i);
        if (!(t == walk[j].second)) add("differs", walk[j].first, t, walk[j].second);
        ++i;
        ++j;
      }
    }
    CompareLinks(target->source, idx.links(), scan->links, &findings);
  }

  bool repaired = false;
  if (!findings.empty() && args.repair) {
    Status s = InstallScan(env, *target, *scan, reader.ok() ? (*reader)->generation() + 1 : 1);
    if (!s.ok()) {
      PrintError(s.message());
      return kExitError;
    }
    repaired = true;
    fmt::print(stderr, "dtkfs: repaired: {} written ({} directories)\n", target->index,
               scan->dirs.size());
  }
  if (args.json) {
    std::string out =
        fmt::format(R"({{"source":{},"index":{},"directories":{},"findings":[)",
                    JsonString(target->source), JsonString(target->index), scan->dirs.size());
    for (size_t k = 0; k < findings.size(); ++k) out += (k ? "," : "") + JsonFinding(findings[k]);
    out += R"(],"errors":[)";
    for (size_t k = 0; k < errors.size(); ++k) out += (k ? "," : "") + JsonString(errors[k]);
    out += fmt::format(R"(],"repaired":{}}})", repaired);
    fmt::print("{}\n", out);
  } else {
    for (const Finding& f : findings)
      if (f.kind != "unreadable_index") fmt::print("{}\n", TextLine(f));
  }
  if (findings.empty() && scan->errors.empty()) {
    fmt::print(stderr, "dtkfs: {}: index matches the source ({} directories)\n", target->source,
               scan->dirs.size());
    return kExitOk;
  }
  if (!findings.empty())
    fmt::print(stderr, "dtkfs: {} entries differ{}\n", findings.size(),
               args.repair ? " (repaired)" : "; dtkfs check --repair fixes the index");
  return kExitFindings;
}

}  // namespace dtkfs::cli
