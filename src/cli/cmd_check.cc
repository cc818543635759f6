// dtkfs check SRC [--index PATH] [--repair]: walk the source, compare with the index, list
// the directories whose totals differ and the hard links the index does not know as they
// are; --repair installs a fresh index. An unreadable index is an error (exit 2) unless
// --repair rebuilds it.
#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "cli/output.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "index/index_reader.h"

namespace dtkfs::cli {
namespace {

std::string Describe(const Totals& t) {
  return fmt::format("bytes={} files={} dirs={}", t.bytes, t.files, t.dirs);
}

std::string Shown(const std::string& root, const std::string& rel) {
  return rel.empty() ? root : root + "/" + rel;
}

std::string Describe(const LinkRecord& r) {
  return fmt::format("{} names, size {}", r.paths.size(), r.size);
}

// Prints the multi-link records that differ between the index and the walk (both sorted by
// key); returns how many.
size_t CompareLinks(const std::string& root, const LinkTableView& index,
                    const std::vector<LinkRecord>& walk) {
  size_t findings = 0, i = 0, j = 0;
  auto report = [&](const LinkRecord& shown, const std::string& what) {
    fmt::print("links\t{}\t{}\n", Shown(root, shown.paths.front()), what);
    ++findings;
  };
  while (i < index.size() || j < walk.size()) {
    if (j == walk.size() || (i < index.size() && index.key_at(i) < walk[j].key)) {
      report(index.at(i++), "(index lists hard links the source does not have)");
    } else if (i == index.size() || walk[j].key < index.key_at(i)) {
      report(walk[j], fmt::format("(not in the index's link table; walk: {})", Describe(walk[j])));
      ++j;
    } else {
      LinkRecord r = index.at(i++);
      std::sort(r.paths.begin(), r.paths.end());
      if (!(r == walk[j]))
        report(walk[j], fmt::format("index: {}; walk: {}", Describe(r), Describe(walk[j])));
      ++j;
    }
  }
  return findings;
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
  size_t findings = 0;
  auto reader = IndexReader::Open(env, target->index);
  if (!reader.ok()) {
    // Nothing to compare with: that is an error, not a list of differing entries.
    PrintError(
        fmt::format("index {} is unreadable: {}{}", target->index, reader.status().message(),
                    args.repair ? "; rebuilding it" : " (dtkfs check --repair rebuilds it)"));
    if (!args.repair) return kExitError;
    ++findings;
  }

  ScanOptions options;
  auto scan = ScanTree(target->source, "", options);
  if (!scan.ok()) {
    PrintError(scan.status().message());
    return kExitError;
  }
  for (const auto& e : scan->errors) PrintError(e.ToString(target->source));

  if (reader.ok()) {
    // Both sides are sorted by path: one merge finds every difference.
    const IndexReader& idx = **reader;
    size_t i = 0, j = 0;
    const auto& walk = scan->dirs;
    while (i < idx.size() || j < walk.size()) {
      int cmp = i == idx.size() ? 1 : j == walk.size() ? -1 : idx.path_at(i).compare(walk[j].first);
      if (cmp < 0) {
        fmt::print("gone\t{}\t(index has it, the source does not)\n",
                   Shown(target->source, std::string(idx.path_at(i))));
        ++findings;
        ++i;
      } else if (cmp > 0) {
        fmt::print("new\t{}\t(not in the index; walk: {})\n", Shown(target->source, walk[j].first),
                   Describe(walk[j].second));
        ++findings;
        ++j;
      } else {
        Totals t = idx.totals_at(i);
        if (!(t == walk[j].second)) {
          fmt::print("differs\t{}\tindex: {}; walk: {}\n", Shown(target->source, walk[j].first),
                     Describe(t), Describe(walk[j].second));
          ++findings;
        }
        ++i;
        ++j;
      }
    }
    findings += CompareLinks(target->source, idx.links(), scan->links);
  }

  if (findings > 0 && args.repair) {
    Status s = InstallScan(env, *target, *scan, reader.ok() ? (*reader)->generation() + 1 : 1);
    if (!s.ok()) {
      PrintError(s.message());
      return kExitError;
    }
    fmt::print(stderr, "dtkfs: repaired: {} written ({} directories)\n", target->index,
               scan->dirs.size());
  }
  if (findings == 0 && scan->errors.empty()) {
    fmt::print(stderr, "dtkfs: {}: index matches the source ({} directories)\n", target->source,
               scan->dirs.size());
    return kExitOk;
  }
  if (findings > 0)
    fmt::print(stderr, "dtkfs: {} entries differ{}\n", findings,
               args.repair ? " (repaired)" : "; dtkfs check --repair fixes the index");
  return kExitFindings;
}

}  // namespace dtkfs::cli
