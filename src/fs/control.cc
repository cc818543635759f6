#include "fs/control.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

#include "fs/credentials.h"
#include "fs/filesystem.h"
#include "fs/source_watcher.h"
#include "util/log.h"

namespace dtkfs::fs {

bool IsControlName(std::string_view name) {
  return name == kControlStatus || name == kControlCompact || name == kControlVerify;
}

static std::string TimeString(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return "never";
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  struct tm tm;
  ::localtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
  return buf;
}

std::string EscapeStatusValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string UnescapeStatusValue(std::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      out.push_back(value[i + 1] == 'n' ? '\n' : value[i + 1]);
      ++i;
    } else {
      out.push_back(value[i]);
    }
  }
  return out;
}

// "exact", unless the watcher could not watch some directories: changes beside the mount in
// them are not seen until a verification.
static std::string ExactOrUnwatched(Filesystem& fs) {
  SourceWatcher* w = fs.watcher();
  const uint64_t unwatched = w != nullptr ? w->GetReport().unwatched : 0;
  if (unwatched == 0) return "exact";
  return fmt::format(
      "exact for changes through the mount; {} directories are not watched, so changes beside "
      "the mount in them wait for `dtkfs verify`",
      unwatched);
}

// The watcher's lines of the status (docs/control.md).
static std::string WatcherStatus(Filesystem& fs) {
  SourceWatcher* w = fs.watcher();
  if (w == nullptr) return "watch: off\nverify: off\n";
  const SourceWatcher::Report r = w->GetReport();
  std::string verify = r.verifying ? fmt::format("running {}/{}", r.verify_done, r.verify_total)
                       : r.verify_runs == 0
                           ? std::string("never")
                           : fmt::format("done {} directories in {:.1f} s, {} corrected",
                                         r.verify_done, r.verify_seconds, r.verify_corrected);
  return fmt::format(
      "watch: {}\nevents: {}\nevent_overflows: {}\nout_of_band_corrected: {}\nverify: {}\n"
      "verify_runs: {}\nverify_corrected: {}\n",
      EscapeStatusValue(r.watch), r.events, r.overflows, r.corrected, verify, r.verify_runs,
      r.verify_corrected);
}

static std::string JournalStatus(Filesystem& fs) {
  std::string journal = "off (a crash means a rescan)";
  if (const Journal* j = fs.journal()) {
    const Journal::Stats s = j->GetStats();
    journal = fmt::format("generation {}, {} records, {} syncs, {} directories this generation",
                          s.generation, s.records, s.syncs, s.marked);
    if (!s.broken.empty())
      journal += fmt::format("; broken ({}), a crash now means a rescan", s.broken);
  }
  const std::string& recovery = fs.recovery_summary();
  return fmt::format("journal: {}\nrecovery: {}\n", EscapeStatusValue(journal),
                     EscapeStatusValue(recovery.empty() ? "none" : recovery));
}

int ControlGet(Filesystem& fs, std::string_view name, std::string* value) {
  if (name == kControlVerify) return ENODATA;
  if (name == kControlCompact) {
    auto r = fs.compactor().GetReport();
    *value = r.runs == 0 ? "never" : r.last_status.ToString();
    return 0;
  }
  auto stats = fs.store().GetStats();
  auto report = fs.compactor().GetReport();
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - fs.started()).count();
  const auto suspect = fs.SuspectReason();
  *value = fmt::format(
      "pid: {}\nsource: {}\nindex: {}\nentries: {}\noverlay: {}\nfrozen_levels: {}\n"
      "rename_levels: {}\n"
      "generation: {}\n"
      "compactions: {}\nlast_compaction: {}\nlast_result: {}\nuptime_seconds: {:.0f}\n"
      "totals: {}\n",
      ::getpid(), EscapeStatusValue(fs.source_root()), EscapeStatusValue(fs.options().index_path),
      stats.base_entries, stats.active_entries + stats.frozen_entries, stats.frozen_levels,
      stats.rename_levels, stats.generation, report.runs, TimeString(report.last_time),
      EscapeStatusValue(report.runs == 0 ? "none" : report.last_status.ToString()), uptime,
      !fs.options().track_sizes ? std::string("off (track_sizes=off)")
      : suspect ? EscapeStatusValue(fmt::format("suspect ({}; the next mount rescans)", *suspect))
                : ExactOrUnwatched(fs));
  *value += WatcherStatus(fs);
  *value += JournalStatus(fs);
  const InodeTable::FdStats fds = fs.table().GetFdStats();
  *value += fmt::format(
      "inodes: {}\ndescriptors: {}\ndescriptor_budget: {}\ndescriptors_evicted: {}\n"
      "descriptors_reopened: {}\ndescriptors_stale: {}\nreopen_by: {}\n",
      fs.table().GetCensus().known, fds.open, fs.table().fd_budget(), fds.evicted, fds.reopened,
      fds.stale, fds.handles ? "handle" : "name");
  return 0;
}

int ControlSet(Filesystem& fs, std::string_view name, std::string_view) {
  AsDaemon as_daemon;  // the index and the files beside it are the daemon's
  if (name == kControlVerify) {
    SourceWatcher* w = fs.watcher();
    if (w == nullptr) return ENOTSUP;
    w->RequestVerify("requested");
    return 0;
  }
  if (name != kControlCompact) return EPERM;
  // Nothing counted: a compaction would write an empty index over the source's.
  if (!fs.options().track_sizes) return ENOTSUP;
  Status s = fs.compactor().CompactNow();
  if (!s.ok()) {
    log::Error("{}", s.message());
    return s.errno_value() != 0 ? s.errno_value() : EIO;
  }
  return 0;
}

}  // namespace dtkfs::fs
