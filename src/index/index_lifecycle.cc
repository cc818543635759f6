#include "index/index_lifecycle.h"

#include <fmt/format.h>

#include <chrono>
#include <sstream>

#include "env/install_file.h"
#include "index/index_builder.h"
#include "index/index_files.h"
#include "index/index_location.h"
#include "util/log.h"
#include "util/path.h"

namespace dtkfs {

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

Result<BuildReport> BuildIndex(Env& env, const IndexTarget& target, const ScanOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto scan = ScanTree(target.source, "", options);
  if (!scan.ok()) return scan.status();

  uint64_t generation = 1;
  if (env.FileExists(target.index)) {
    auto old = IndexReader::Open(env, target.index);
    if (old.ok()) generation = (*old)->generation() + 1;
  }
  DTKFS_RETURN_IF_ERROR(InstallScan(env, target, *scan, generation));
  // The scan is exact: what a journal says of older indexes is not needed.
  if (Status s = RemoveJournals(env, target.index); !s.ok())
    log::Warning("cannot remove old journal files: {}", s.message());
  BuildReport report;
  report.scan = std::move(scan).value();
  report.generation = generation;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

Result<std::shared_ptr<const IndexReader>> LoadOrScan(Env& env, const IndexTarget& target,
                                                      const ScanOptions& options, bool* scanned) {
  if (scanned != nullptr) *scanned = false;
  std::string why;
  auto dirty = ReadDirtyMarker(env, target.index);
  if (!dirty.ok()) return dirty.status();
  if (*dirty) {
    why = (*dirty)->rfind("suspect: ", 0) == 0
              ? fmt::format(
                    "the last daemon met changes it could not apply ({}), so the index "
                    "may be off",
                    (*dirty)->substr(9))
          : (*dirty)->rfind(kUntrackedMarker, 0) == 0
              ? "the last daemon was mounted with track_sizes=off and counted nothing"
          : (*dirty)->rfind("links: ", 0) == 0
              ? "the last daemon saw hard links made beside it whose other names it had not "
                "found, so the index's link table may miss them"
              : "the last daemon did not shut down cleanly, so the index may be stale";
  } else if (auto broken = ReadJournalBroken(env, target.index); !broken.ok()) {
    return broken.status();
  } else if (*broken) {
    why = fmt::format(
        "the last daemon did not shut down cleanly and its journal could not be written ({})",
        **broken);
  } else if (!env.FileExists(target.index)) {
    why = "no index yet";
  } else {
    auto reader = IndexReader::Open(env, target.index);
    if (reader.ok() && (*reader)->source_root() == target.source) return reader;
    why = reader.ok() ? fmt::format("index {} describes {}, not {}", target.index,
                                    (*reader)->source_root(), target.source)
                      : reader.status().message();
  }
  log::Info("{}: scanning {}", why, target.source);
  if (scanned != nullptr) *scanned = true;
  auto report = BuildIndex(env, target, options);
  if (!report.ok()) return report.status();
  for (const auto& e : report->scan.errors) log::Warning("{}", e.ToString(target.source));
  log::Info("indexed {} directories in {:.2f} s", report->scan.dirs.size(), report->seconds);
  return IndexReader::Open(env, target.index);
}

Status WriteMarker(Env& env, const std::string& path, std::string_view text) {
  return InstallFile(env, path, 0600, [&](WritableFile& f) { return f.WriteAt(0, text); });
}

namespace {

// INDEX.last-exit's content: text, then spaces up to kExitStatusSize - 1, then a newline.
std::string ExitStatusText(std::string text) {
  if (text.size() > kExitStatusSize - 1) text.resize(kExitStatusSize - 1);
  text.resize(kExitStatusSize - 1, ' ');
  return text + "\n";
}

// Overwrites the start of an existing file in place and syncs it.
Status Overwrite(Env& env, const std::string& path, const std::string& text) {
  auto file = env.ReopenWritableFile(path);
  if (!file.ok()) return file.status();
  Status s = (*file)->WriteAt(0, text);
  if (s.ok()) s = (*file)->Sync();
  Status c = (*file)->Close();
  return s.ok() ? c : s;
}

}  // namespace

Status StartExitStatus(Env& env, const std::string& index) {
  return WriteMarker(env, ExitStatusPath(index), ExitStatusText("running\n"));
}

Status WriteExitStatus(Env& env, const std::string& index, const std::string& text) {
  return Overwrite(env, ExitStatusPath(index), ExitStatusText(text));
}

Result<std::optional<std::string>> ReadDirtyMarker(Env& env, const std::string& index) {
  auto text = env.ReadFileToString(DirtyMarkerPath(index), 4096);
  if (text.status().code() == Status::Code::kNotFound) return std::optional<std::string>();
  if (!text.ok()) return text.status();
  return std::optional<std::string>(text->substr(0, text->find('\n')));
}

Status RemoveJournals(Env& env, const std::string& index) {
  const std::string dir(path::Parent(index).empty() ? "." : path::Parent(index));
  auto names = env.ListDirectory(dir);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names)
    if (JournalGeneration(path::Basename(index), name))
      DTKFS_RETURN_IF_ERROR(env.Remove(path::Join(dir, name)));
  return Status::Ok();
}

Result<std::optional<std::string>> ReadJournalBroken(Env& env, const std::string& index) {
  auto text = env.ReadFileToString(ExitStatusPath(index), kExitStatusSize);
  if (text.status().code() == Status::Code::kNotFound) return std::optional<std::string>();
  // Unreadable (a link or file planted there): whether the journal held is unknown.
  if (!text.ok()) return std::optional<std::string>(text.status().message());
  // A line "journal: why", written while running or after a failed final compaction.
  constexpr std::string_view kJournal = "journal: ";
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(kJournal, 0) == 0)
      return std::optional<std::string>(line.substr(kJournal.size()));
  return std::optional<std::string>();
}

Status MarkSuspect(Env& env, const std::string& index, const std::string& why) {
  const std::string text = "suspect: " + why + "\n";
  // In place when it is there (no new blocks on a full disk); a daemon with a journal has
  // none, and installs one.
  if (!env.FileExists(DirtyMarkerPath(index)))
    return WriteMarker(env, DirtyMarkerPath(index), text);
  return Overwrite(env, DirtyMarkerPath(index), text);
}

}  // namespace dtkfs
