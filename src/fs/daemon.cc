// The mount daemon, step by step (RunMount): read the options, check the paths, take the
// source's and the index's locks, load or build the index, leave the start markers, mount,
// serve (with the compaction thread), unmount, compact a last time, leave the exit markers.
// With -o track_sizes=off: no index read, no watcher, no compaction; the index is marked
// dirty for the next mount, which rescans.
#include "fs/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <memory>
#include <optional>

#include "env/env.h"
#include "fs/filesystem.h"
#include "fs/kernel_cache.h"
#include "fs/mount_options.h"
#include "fs/session.h"
#include "fs/source_watcher.h"
#include "index/index_files.h"
#include "index/index_lifecycle.h"
#include "index/index_location.h"
#include "index/index_reader.h"
#include "store/compaction_thread.h"
#include "store/compactor.h"
#include "store/journal.h"
#include "store/recovery.h"
#include "store/size_store.h"
#include "util/fd_limit.h"
#include "util/kill_point.h"
#include "util/log.h"
#include "util/option_ranges.h"
#include "util/path.h"

namespace dtkfs::fs {
namespace {

Status CheckMountpoint(const std::string& mnt, const std::string& source) {
  struct stat st, parent;
  if (::stat(mnt.c_str(), &st) != 0) {
    if (errno == ENOTCONN)
      return Status::InvalidArgument(fmt::format(
          "{}: a dead FUSE mount is still there; run `fusermount3 -u {}` first", mnt, mnt));
    return Status::FromErrno(errno, "mount point", mnt);
  }
  if (!S_ISDIR(st.st_mode))
    return Status::InvalidArgument(mnt + ": mount point is not a directory");
  if (::stat((mnt + "/..").c_str(), &parent) == 0 && parent.st_dev != st.st_dev && mnt != "/")
    return Status::InvalidArgument(fmt::format("{}: something is already mounted there", mnt));
  if (path::IsSameOrBelowAbsolute(mnt, source))
    return Status::InvalidArgument(
        fmt::format("mount point {} is inside the source {}", mnt, source));
  if (path::IsSameOrBelowAbsolute(source, mnt))
    return Status::InvalidArgument(
        fmt::format("source {} is inside the mount point {}", source, mnt));
  return Status::Ok();
}

// One daemon per source, whatever index it uses. Taken before anything is created.
Result<std::unique_ptr<FileLock>> LockTheSource(Env& env, const std::string& source) {
  auto lock = LockSource(env, source);
  if (lock.ok()) return lock;
  if (lock.status().code() == Status::Code::kBusy)
    return Status::Busy(fmt::format(
        "cannot mount {}: the source is already mounted (served by another dtkfs daemon); "
        "one daemon per source",
        source));
  // Some filesystems (NFS) cannot flock a directory opened read-only; that must not make
  // their sources unmountable.
  log::Warning("cannot lock the source ({}); a second daemon on it would not be detected",
               lock.status().message());
  return std::unique_ptr<FileLock>();
}

// One writer per index (daemon, scan or repair).
Result<std::unique_ptr<FileLock>> LockTheIndex(Env& env, const IndexTarget& target) {
  auto lock = LockIndex(env, target.index);
  if (lock.ok()) return lock;
  // Only a real lock conflict means "in use"; anything else (a read-only directory, EACCES,
  // a planted file) says what failed.
  const bool busy = lock.status().code() == Status::Code::kBusy;
  return lock.status().WithContext(
      fmt::format("cannot mount {}: {}", target.source,
                  busy ? "its index is in use" : "cannot lock its index"));
}

// Before serving: INDEX.last-exit says "running" (at its full size, so the exit result fits
// on a full disk, and the journal can say in place that it broke). Without a journal,
// INDEX.dirty says the overlay may hold changes the index lacks, so a crash makes the next
// mount rescan instead of trusting a stale index; with one, the journal says where to look.
// Not tracking, INDEX.dirty says so (the source changes uncounted).
Status WriteStartMarkers(Env& env, const std::string& index, bool tracking, bool journal) {
  DTKFS_RETURN_IF_ERROR(StartExitStatus(env, index));
  if (tracking && journal) return Status::Ok();
  return WriteMarker(env, DirtyMarkerPath(index),
                     tracking ? "mounted\n" : std::string(kUntrackedMarker) + "\n");
}

// After a crash: the journal's marked directories are reconciled into a store over base.
// When hard links were made that the index's link table does not hold, the link table
// cannot be rebuilt from the marked directories alone: the index is rebuilt by a scan
// instead (*rescanned), which also retires the journal.
Result<std::unique_ptr<SizeStore>> Recover(Env& env, const IndexTarget& target,
                                           std::shared_ptr<const IndexReader> base,
                                           const JournalSet& journals, const ScanOptions& options,
                                           std::string* summary, bool* rescanned) {
  auto store = std::make_unique<SizeStore>(std::move(base));
  auto report = RecoverFromJournal(*store, target.source, journals);
  if (!report.ok()) return report.status().WithContext("recovery");
  *summary = report->Summary();
  if (!report->links_unknown) {
    log::Info("{}", *summary);
    return store;
  }
  log::Info("{}; hard links made since the index was written need every name: scanning {}",
            *summary, target.source);
  auto built = BuildIndex(env, target, options);
  if (!built.ok()) return built.status();
  auto reader = IndexReader::Open(env, target.index);
  if (!reader.ok()) return reader.status();
  *summary += "; then rescanned (hard links)";
  *rescanned = true;
  return std::make_unique<SizeStore>(std::move(reader).value());
}

// After the final compaction: INDEX.dirty goes only when the index is exact; changes the
// store could not apply leave numbers the daemon knows are off, so the marker stays, saying
// why. INDEX.last-exit gets the result for `dtkfs umount`.
// journal_broken: why the journal could not be written ("" if it could); with a failed final
// compaction the next mount must then rescan, and the "journal:" line says so.
void WriteExitMarkers(Env& env, const std::string& index, const Status& final_status,
                      const std::optional<std::string>& suspect,
                      const std::string& journal_broken) {
  std::string exit_text;
  if (final_status.ok()) {
    exit_text = "ok\n";
    if (!suspect) env.Remove(DirtyMarkerPath(index)).PermitUnchecked();
  } else {
    exit_text = "error: " + final_status.message() + "\n";
    if (!journal_broken.empty()) exit_text += "journal: " + journal_broken + "\n";
    log::Error("final compaction failed: {}; the next mount {}", final_status.message(),
               journal_broken.empty() ? "recovers from the journal" : "rescans");
  }
  if (suspect) {
    MarkSuspect(env, index, *suspect).PermitUnchecked();
    exit_text += fmt::format("warning: totals suspect ({}); {} kept, the next mount rescans\n",
                             *suspect, DirtyMarkerPath(index));
    log::Warning("totals suspect ({}); the next mount rescans", *suspect);
  }
  if (Status s = WriteExitStatus(env, index, exit_text); !s.ok())
    log::Error("{}: `dtkfs umount` will not know the result", s.message());
}

}  // namespace

int RunMount(MountArgs args) {
  Env& env = Env::Default();
  auto fail = [](const Status& s) {
    log::Error("{}", s.message());
    return 2;
  };
  auto options = ParseMountOptions(args.options);
  if (!options.ok()) return fail(options.status());
  if (Status s = Session::CheckOptions(options->fuse); !s.ok()) return fail(s);

  auto source = CanonicalDirectory(args.source);
  if (!source.ok()) return fail(source.status().WithContext("source"));
  auto mnt = CanonicalDirectory(args.mountpoint);
  if (!mnt.ok()) {
    if (mnt.status().errno_value() == ENOTCONN)
      return fail(Status::InvalidArgument(
          fmt::format("{}: a dead FUSE mount is still there; run `fusermount3 -u {}` first",
                      args.mountpoint, args.mountpoint)));
    return fail(mnt.status().WithContext("mount point"));
  }
  if (Status s = CheckMountpoint(*mnt, *source); !s.ok()) return fail(s);
  // Held for the daemon's life: two daemons on one source would serve two views that drift.
  auto source_lock = LockTheSource(env, *source);
  if (!source_lock.ok()) return fail(source_lock.status());
  auto target = LocateIndex(env, *source, options->index, *mnt);
  if (!target.ok()) return fail(target.status());
  auto index_lock = LockTheIndex(env, *target);
  if (!index_lock.ok()) return fail(index_lock.status());

  RaiseFdLimit();
  // Worker threads set the caller's umask themselves (UseCallerUmask); nothing else the
  // daemon creates takes it from the process.
  ::umask(0);
  InitCredentials();  // as root: every request reaches the source as its caller
  const bool tracking = options->fs.track_sizes;
  // Watching starts before the index is read or built: changes made meanwhile are queued.
  auto events =
      tracking ? OpenEventSource(options->watch, *source)
               : Result<std::unique_ptr<watch::EventSource>>(std::unique_ptr<watch::EventSource>());
  if (!events.ok()) {
    if (options->watch != WatchMode::kAuto)
      return fail(events.status().WithContext("cannot watch the source"));
    log::Warning(
        "cannot watch the source ({}); changes beside the mount are found only by "
        "`dtkfs verify`",
        events.status().message());
    events = std::unique_ptr<watch::EventSource>();
  }
  ScanOptions scan_options;
  scan_options.on_progress = args.on_scan_progress;
  bool scanned = false;
  auto base = tracking ? LoadOrScan(env, *target, scan_options, &scanned)
                       : Result<std::shared_ptr<const IndexReader>>(nullptr);
  if (!base.ok()) return fail(base.status());
  // The journal files a crashed daemon left (none after a scan: it removes them; not read
  // when not tracking: the next tracked mount rescans).
  const uint64_t covered = tracking ? (*base)->journal_generation() : 0;
  auto journals =
      tracking ? ReadJournals(env, target->index, covered) : Result<JournalSet>(JournalSet());
  if (!journals.ok())
    return fail(journals.status().WithContext(fmt::format(
        "cannot read the journal beside {}; `dtkfs scan` rebuilds the index", target->index)));
  const bool journal_on = tracking && options->journal;
  if (Status s = WriteStartMarkers(env, target->index, tracking, journal_on); !s.ok())
    return fail(s);

  int root_fd = ::open(source->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return fail(Status::FromErrno(errno, "open", *source));
  std::unique_ptr<SizeStore> store_owner;
  std::string recovery;
  if (!journals->pending.empty()) {
    auto recovered = Recover(env, *target, std::move(base).value(), *journals, scan_options,
                             &recovery, &scanned);
    if (!recovered.ok()) return fail(recovered.status());
    store_owner = std::move(recovered).value();
  } else {
    store_owner = std::make_unique<SizeStore>(std::move(base).value());
    if (tracking)
      for (const std::string& file : journals->obsolete) env.Remove(file).PermitUnchecked();
  }
  SizeStore& store = *store_owner;
  Compactor compactor(store, env, target->index, *source);
  Options fs_options = options->fs;
  fs_options.index_path = target->index;
  // fanotify marks whole filesystems: every change to the source reaches the watcher.
  ChooseKernelCaching(*options, *events && !(*events)->WatchesDirectories(), &fs_options);
  Filesystem filesystem(root_fd, *source, store, compactor, fs_options);
  compactor.SetFreezer(&filesystem);
  std::optional<Journal> journal;
  if (journal_on) {
    journal.emplace(env, target->index, std::max(covered, journals->last_generation) + 1);
    journal->NoteExisting(journals->last_generation);
    filesystem.SetJournal(&*journal);
  }
  if (!recovery.empty()) {
    filesystem.SetRecoverySummary(recovery);
    // The recovered totals in a new index, which covers the journal and retires it.
    if (Status s = compactor.CompactNow(); !s.ok())
      log::Error("{}: the recovered totals are served; a later compaction writes them",
                 s.message());
    else if (!journal)
      RemoveJournals(env, target->index).PermitUnchecked();  // no journal to retire it
    DTKFS_KILL_POINT("recovery.after-compact");
  }
  SourceWatcher watcher(filesystem, std::move(events).value());
  if (tracking) watcher.WatchTree();

  auto session = Session::Mount(filesystem, *source, *mnt, options->fuse);
  if (!session.ok()) {
    if (tracking) env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
    WriteExitStatus(env, target->index, "error: " + session.status().message() + "\n")
        .PermitUnchecked();
    return fail(session.status());
  }
  if (tracking)
    log::Info("mounted {} on {} (index {}, generation {})", *source, *mnt, target->index,
              store.GetStats().generation);
  else
    log::Info("mounted {} on {} with track_sizes=off: nothing is counted; the next mount rescans",
              *source, *mnt);
  if (!args.foreground) {
    log::UseSyslog();
    (*session)->Daemonize();
  }

  int rc;
  if (!tracking) {
    rc = (*session)->Serve(options->threads);
    (*session)->Unmount();
    // INDEX.dirty stays (kUntrackedMarker): the source changed without being counted.
    if (Status s = WriteExitStatus(env, target->index, "ok\n"); !s.ok())
      log::Error("{}: `dtkfs umount` will not know the result", s.message());
    return rc == 0 ? 0 : 2;
  }
  bool links_incomplete = false;
  {
    CompactionThread compaction(store, compactor, options->compact_interval,
                                ranges::kCompactInterval.max);
    filesystem.accounting().SetCompactionWaker(&compaction);
    KernelCache kernel_cache((*session)->raw());
    watcher.Start(&kernel_cache);
    filesystem.SetWatcher(&watcher);
    filesystem.accounting().SetLinkFollower(&watcher);
    filesystem.accounting().SetEntriesListener(&watcher);
    if (!scanned && options->verify)
      watcher.RequestVerify("mounted from an index: changes made while unmounted");
    rc = (*session)->Serve(options->threads);
    filesystem.SetWatcher(nullptr);
    filesystem.accounting().SetLinkFollower(nullptr);
    filesystem.accounting().SetEntriesListener(nullptr);
    watcher.Stop();
    watcher.VerifyBeforeExit();
    filesystem.accounting().SetCompactionWaker(nullptr);
    links_incomplete = watcher.GetReport().links_incomplete;
  }
  (*session)->Unmount();
  Status final_status = compactor.CompactNow();
  const std::optional<std::string> suspect = filesystem.SuspectReason();
  if (final_status.ok() && !suspect)
    log::Info("unmounted {}; index {} is up to date (generation {})", *mnt, target->index,
              compactor.GetReport().generation);
  WriteExitMarkers(env, target->index, final_status, suspect,
                   journal ? journal->GetStats().broken : std::string());
  if (final_status.ok() && !suspect && links_incomplete) {
    // The totals are exact, but the next mount needs every name of every hard-linked file.
    log::Warning(
        "hard links made beside the mount were not all found before it ended; the "
        "next mount rescans");
    WriteMarker(env, DirtyMarkerPath(target->index), "links: hard links made beside the mount\n")
        .PermitUnchecked();
  }
  return final_status.ok() && rc == 0 ? 0 : 2;
}

}  // namespace dtkfs::fs
