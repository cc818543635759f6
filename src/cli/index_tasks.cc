#include "cli/index_tasks.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>

#include "index/index_builder.h"
#include "index/index_location.h"
#include "index/index_reader.h"

namespace dtkfs::cli {

Result<IndexTarget> LocateIndex(Env& env, const std::string& source, const std::string& index,
                                const std::string& canonical_mountpoint) {
  auto canonical = CanonicalDirectory(source);
  if (!canonical.ok()) return canonical.status();
  std::string wanted = index;
  if (wanted.empty()) {
    auto def = DefaultIndexPath(*canonical);
    if (!def.ok()) return def.status();
    wanted = *def;
  }
  auto prepared = PrepareIndexPath(env, *canonical, canonical_mountpoint, wanted);
  if (!prepared.ok()) return prepared.status();
  return IndexTarget{*canonical, *prepared};
}

Status InstallScan(Env& env, const IndexTarget& target, const ScanResult& scan,
                   uint64_t generation) {
  IndexMeta meta;
  meta.source_root = target.source;
  meta.generation = generation;
  meta.link_table = EncodeLinkTable(scan.links);
  return WriteIndex(env, target.index, meta, [&](const EntryEmitter& emit) {
    for (const auto& [p, t] : scan.dirs) DTKFS_RETURN_IF_ERROR(emit(p, t));
    return Status::Ok();
  });
}

Result<BuildReport> BuildIndex(Env& env, const IndexTarget& target) {
  const auto t0 = std::chrono::steady_clock::now();
  ScanOptions options;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty) options.on_progress = TerminalProgress();
  auto scan = ScanTree(target.source, "", options);
  if (tty) fmt::print(stderr, "\n");
  if (!scan.ok()) return scan.status();

  uint64_t generation = 1;
  if (env.FileExists(target.index)) {
    auto old = IndexReader::Open(env, target.index);
    if (old.ok()) generation = (*old)->generation() + 1;
  }
  DTKFS_RETURN_IF_ERROR(InstallScan(env, target, *scan, generation));
  BuildReport report;
  report.scan = std::move(scan).value();
  report.generation = generation;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace dtkfs::cli
