#include "fs/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/algorithm/string.hpp>
#include <boost/filesystem.hpp>
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cli/index_tasks.h"
#include "env/env.h"
#include "env/map_guard.h"
#include "fs/filesystem.h"
#include "index/index_files.h"
#include "index/index_location.h"
#include "index/index_reader.h"
#include "store/compactor.h"
#include "store/size_store.h"
#include "util/log.h"
#include "util/fd_limit.h"
#include "util/option_ranges.h"

namespace dtkfs::fs {

namespace {

bool IsSameOrBelow(const std::string& p, const std::string& dir) {
  if (dir == "/") return true;
  return p == dir ||
         (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/');
}

Status CheckMountpoint(const std::string& mnt, const std::string& source) {
  struct stat st, parent;
  if (::stat(mnt.c_str(), &st) != 0) {
    if (errno == ENOTCONN)
      return Status::InvalidArgument(fmt::format(
          "{}: a dead FUSE mount is still there; run `fusermount3 -u {}` first", mnt, mnt));
    return Status::FromErrno(errno, "mount point", mnt);
  }
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(mnt + ": mount point is not a directory");
  if (::stat((mnt + "/..").c_str(), &parent) == 0 && parent.st_dev != st.st_dev && mnt != "/")
    return Status::InvalidArgument(fmt::format("{}: something is already mounted there", mnt));
  if (IsSameOrBelow(mnt, source))
    return Status::InvalidArgument(
        fmt::format("mount point {} is inside the source {}", mnt, source));
  if (IsSameOrBelow(source, mnt))
    return Status::InvalidArgument(
        fmt::format("source {} is inside the mount point {}", source, mnt));
  return Status::Ok();
}

// Splits -o values into dtkfs's own options and the rest (for libfuse).
struct ParsedOptions {
  Options fs;
  std::string index;
  std::optional<double> compact_interval;
  // FUSE worker threads. Few on purpose: the kernel hands each request to the reader that
  // has waited longest, so every extra idle reader is one more cold thread in the rotation
  // (docs/design.md, "Worker threads"). One per core, at least two.
  unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  std::vector<std::string> fuse;
};
Result<ParsedOptions> ParseOptions(const std::vector<std::string>& raw) {
  ParsedOptions out;
  bool allow_other = false, default_permissions = false;
  for (const auto& group : raw) {
    std::vector<std::string> parts;
    boost::split(parts, group, boost::is_any_of(","));
    for (const auto& o : parts) {
      if (o.empty() || o == "defaults" || o == "auto" || o == "noauto" || o == "nofail" ||
          o == "_netdev" || o == "user" || o == "users")
        continue;
      auto eq = o.find('=');
      std::string key = o.substr(0, eq);
      std::string val = eq == std::string::npos ? "" : o.substr(eq + 1);
      // Every numeric option is range-checked by the one parser (util/option_ranges.h).
      auto number = [&](const NumberRange& range) -> Result<double> {
        auto d = ParseNumber(val, range);
        if (!d.ok())
          return Status::InvalidArgument(
              fmt::format("-o {}: bad value: {}", key, d.status().message()));
        return d;
      };
      if (key == "index") {
        if (val.empty())
          return Status::InvalidArgument(
              "-o index: an empty path names no file; leave it out for the default location");
        out.index = val;
      } else if (key == "compact_interval") {
        auto d = number(ranges::kCompactInterval);
        if (!d.ok()) return d.status();
        out.compact_interval = *d;
      } else if (key == "compact_threshold") {
        auto d = number(ranges::kCompactThreshold);
        if (!d.ok()) return d.status();
        out.fs.compact_threshold = static_cast<size_t>(*d);
      } else if (key == "threads") {
        auto d = number(ranges::kThreads);
        if (!d.ok()) return d.status();
        out.threads = static_cast<unsigned>(*d);
      } else if (key == "list_totals") {
        out.fs.list_totals = true;
      } else if (key == "entry_timeout") {
        auto d = number(ranges::kEntryTimeout);
        if (!d.ok()) return d.status();
        out.fs.entry_timeout = *d;
      } else if (key == "attr_timeout") {
        auto d = number(ranges::kAttrTimeout);
        if (!d.ok()) return d.status();
        out.fs.attr_timeout = *d;
      } else {
        if (key == "allow_other") allow_other = true;
        if (key == "default_permissions") default_permissions = true;
        out.fuse.push_back(o);
      }
    }
  }
  // Shared mounts check permissions in the kernel, against the source's modes.
  if (allow_other && !default_permissions) out.fuse.push_back("default_permissions");
  return out;
}

// Why the last daemon left INDEX.dirty (its first line), or nullopt if there is none.
Result<std::optional<std::string>> ReadDirtyMarker(Env& env, const std::string& index) {
  auto text = env.ReadFileToString(DirtyMarkerPath(index), 4096);
  if (text.status().code() == Status::Code::kNotFound) return std::optional<std::string>();
  if (!text.ok()) return text.status();
  return std::optional<std::string>(text->substr(0, text->find('\n')));
}

// Loads the index, or explains why not and builds it with a scan.
Result<std::shared_ptr<const IndexReader>> LoadOrScan(Env& env, const cli::IndexTarget& target) {
  std::string why;
  auto dirty = ReadDirtyMarker(env, target.index);
  if (!dirty.ok()) return dirty.status();
  if (*dirty) {
    why = (*dirty)->rfind("suspect: ", 0) == 0
              ? fmt::format(
                    "the last daemon met changes it could not apply ({}), so the index "
                    "may be off",
                    (*dirty)->substr(9))
              : "the last daemon did not shut down cleanly, so the index may be stale";
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
  auto report = cli::BuildIndex(env, target);
  if (!report.ok()) return report.status();
  for (const auto& e : report->scan.errors) log::Warning("{}", e.ToString(target.source));
  log::Info("indexed {} directories in {:.2f} s", report->scan.dirs.size(), report->seconds);
  return IndexReader::Open(env, target.index);
}

// A small marker file, created afresh through the Env (remove, O_EXCL, no symlink followed)
// and made durable.
Status WriteMarker(Env& env, const std::string& path, std::string_view text) {
  auto file = env.NewWritableFile(path, 0600);
  if (!file.ok()) return file.status();
  Status s = (*file)->WriteAt(0, text);
  if (s.ok()) s = (*file)->Sync();
  Status c = (*file)->Close();
  return s.ok() ? c : s;
}

// INDEX.last-exit's content: text, then spaces up to kExitStatusSize - 1, then a newline.
std::string ExitStatusText(std::string text) {
  if (text.size() > kExitStatusSize - 1) text.resize(kExitStatusSize - 1);
  text.resize(kExitStatusSize - 1, ' ');
  return text + "\n";
}

// Overwrites INDEX.last-exit in place: the blocks were allocated at mount time, so this needs
// no free space and the result reaches `dtkfs umount` even when the disk is full.
Status WriteExitStatus(Env& env, const std::string& index, const std::string& text) {
  auto file = env.ReopenWritableFile(ExitStatusPath(index));
  if (!file.ok()) return file.status();
  Status s = (*file)->WriteAt(0, ExitStatusText(text));
  if (s.ok()) s = (*file)->Sync();
  Status c = (*file)->Close();
  return s.ok() ? c : s;
}

// Compacts on a timer (only when dirty) and when woken (overlay over its threshold).
class CompactionThread {
 public:
  // interval: seconds between timer compactions, 0 (or anything not positive) for none.
  CompactionThread(SizeStore& store, Compactor& compactor, double interval)
      : store_(store), compactor_(compactor), period_(Period(interval)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~CompactionThread() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Wake() {
    {
      std::lock_guard lock(mu_);
      woken_ = true;
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (period_.count() > 0)
        cv_.wait_for(lock, period_, [&] { return stop_ || woken_; });
      else
        cv_.wait(lock, [&] { return stop_ || woken_; });
      if (stop_) break;
      woken_ = false;
      lock.unlock();
      if (store_.dirty()) {
        Status s = compactor_.CompactNow();
        if (!s.ok()) log::Error("{} (will retry)", s.message());
      }
      lock.lock();
    }
  }

  // Whole milliseconds, at most the option's maximum: a double duration that is huge or not
  // finite overflows when wait_for converts it to clock ticks, and the wait returns at once,
  // spinning a core. The options are range-checked already; this keeps the wait safe anyway.
  static std::chrono::milliseconds Period(double seconds) {
    if (!(seconds > 0)) return std::chrono::milliseconds(0);  // also NaN
    seconds = std::min(seconds, ranges::kCompactInterval.max);
    return std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000)));
  }

  SizeStore& store_;
  Compactor& compactor_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;  // guards stop_, woken_
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace

int RunMount(MountArgs args) {
  Env& env = Env::Default();
  auto fail = [](const Status& s) {
    log::Error("{}", s.message());
    return 2;
  };
  auto parsed = ParseOptions(args.options);
  if (!parsed.ok()) return fail(parsed.status());
  if (args.index.empty()) args.index = parsed->index;
  if (parsed->compact_interval) args.compact_interval = *parsed->compact_interval;

  auto source = CanonicalDirectory(args.source);
  if (!source.ok()) return fail(source.status().WithContext("source"));
  auto mnt = CanonicalDirectory(args.mountpoint);
  if (!mnt.ok()) {
    if (mnt.status().errno_value() == ENOTCONN)
      return fail(Status::InvalidArgument(fmt::format(
          "{}: a dead FUSE mount is still there; run `fusermount3 -u {}` first",
          args.mountpoint, args.mountpoint)));
    return fail(mnt.status().WithContext("mount point"));
  }
  if (Status s = CheckMountpoint(*mnt, *source); !s.ok()) return fail(s);
  // One daemon per source, whatever index it uses: two daemons on one source would serve two
  // views that drift apart. Taken before anything is created.
  auto source_lock = LockSource(env, *source);
  if (!source_lock.ok()) {
    if (source_lock.status().code() == Status::Code::kBusy)
      return fail(Status::Busy(fmt::format(
          "cannot mount {}: the source is already mounted (served by another dtkfs daemon); "
          "one daemon per source",
          *source)));
    // Some filesystems (NFS) cannot flock a directory opened read-only; that must not make
    // their sources unmountable.
    log::Warning("cannot lock the source ({}); a second daemon on it would not be detected",
                 source_lock.status().message());
  }
  auto target = cli::LocateIndex(env, *source, args.index, *mnt);
  if (!target.ok()) return fail(target.status());
  auto lock = LockIndex(env, target->index);
  if (!lock.ok()) {
    // Only a real lock conflict means "in use"; anything else (a read-only directory, EACCES,
    // a planted file) says what failed.
    const bool busy = lock.status().code() == Status::Code::kBusy;
    return fail(lock.status().WithContext(fmt::format(
        "cannot mount {}: {}", *source, busy ? "its index is in use" : "cannot lock its index")));
  }

  RaiseFdLimit();
  ::umask(0);  // the kernel already applied the caller's umask
  auto base = LoadOrScan(env, *target);
  if (!base.ok()) return fail(base.status());
  // Created now at its full size, overwritten in place at exit (see WriteExitStatus).
  if (Status s = WriteMarker(env, ExitStatusPath(target->index), ExitStatusText("running\n"));
      !s.ok())
    return fail(s);
  // From here on the overlay may hold changes the index lacks; a crash leaves this marker,
  // and the next mount rescans instead of trusting a stale index.
  if (Status s = WriteMarker(env, DirtyMarkerPath(target->index), "mounted\n"); !s.ok())
    return fail(s);
  if (Status s = env.SyncDir(boost::filesystem::path(target->index).parent_path().string());
      !s.ok())
    return fail(s);

  int root_fd = ::open(source->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return fail(Status::FromErrno(errno, "open", *source));
  SizeStore store(std::move(base).value());
  Compactor compactor(store, env, target->index, *source);
  Options options = parsed->fs;
  options.index_path = target->index;
  Filesystem filesystem(root_fd, *source, store, compactor, options);
  compactor.SetFreezer([&filesystem] { return filesystem.FreezeForCompaction(); });

  std::vector<std::string> fuse_argv_store = {"dtkfs", "-o", "fsname=dtkfs:" + *source,
                                              "-o", "subtype=dtkfs"};
  for (const auto& o : parsed->fuse) {
    fuse_argv_store.push_back("-o");
    fuse_argv_store.push_back(o);
  }
  std::vector<char*> fuse_argv;
  for (auto& a : fuse_argv_store) fuse_argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), fuse_argv.data());
  fuse_session* se = fuse_session_new(&fargs, &Operations(), sizeof(fuse_lowlevel_ops),
                                      &filesystem);
  if (se == nullptr) {
    env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
    WriteExitStatus(env, target->index, "error: libfuse refused the mount options\n")
        .PermitUnchecked();
    return fail(Status::InvalidArgument("libfuse refused the mount options"));
  }
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mnt->c_str()) != 0) {
    fuse_session_destroy(se);
    env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
    WriteExitStatus(env, target->index, "error: the mount failed\n").PermitUnchecked();
    return fail(Status::InvalidArgument(fmt::format("mount {} failed (see above)", *mnt)));
  }
  log::Info("mounted {} on {} (index {}, generation {})", *source, *mnt, target->index,
            store.GetStats().generation);
  if (!args.foreground) {
    log::UseSyslog();
    fuse_daemonize(0);  // the caller's process exits here, with the mount ready
    RearmMapGuards();   // the index's truncation guard now answers to this process
  }

  int rc = 0;
  {
    CompactionThread compaction(store, compactor, args.compact_interval);
    filesystem.SetCompactionWaker([&compaction] { compaction.Wake(); });
    fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 1);
    // All workers stay (idle == max): libfuse otherwise starts and ends threads as the load
    // changes.
    fuse_loop_cfg_set_max_threads(config, parsed->threads);
    fuse_loop_cfg_set_idle_threads(config, parsed->threads);
    rc = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    filesystem.SetCompactionWaker(nullptr);
  }
  // Unmounted (fusermount3 -u, dtkfs umount), or a signal: libfuse then returns the signal
  // number, which is a normal way to stop. Unmount first (no worker serves the mount any
  // more, so nothing may hang on it), then make everything durable.
  if (rc == SIGTERM || rc == SIGINT || rc == SIGHUP) rc = 0;
  fuse_session_unmount(se);
  Status final_status = compactor.CompactNow();
  // Changes the store could not apply leave numbers the daemon knows are off: the index is
  // written anyway (it is the best there is), but INDEX.dirty stays, saying why, so the next
  // mount rescans.
  const std::optional<std::string> suspect = filesystem.SuspectReason();
  std::string exit_text;
  if (final_status.ok()) {
    exit_text = "ok\n";
    if (!suspect) {
      env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
      log::Info("unmounted {}; index {} is up to date (generation {})", *mnt, target->index,
                compactor.GetReport().generation);
    }
  } else {
    exit_text = "error: " + final_status.message() + "\n";
    log::Error("final compaction failed: {}; the next mount rescans", final_status.message());
  }
  if (suspect) {
    // In place: INDEX.dirty's block is already there ("mounted\n" is shorter than this).
    auto marker = env.ReopenWritableFile(DirtyMarkerPath(target->index));
    if (marker.ok()) {
      (*marker)->WriteAt(0, "suspect: " + *suspect + "\n").PermitUnchecked();
      (*marker)->Sync().PermitUnchecked();
      (*marker)->Close().PermitUnchecked();
    }
    exit_text += fmt::format("warning: totals suspect ({}); {} kept, the next mount rescans\n",
                             *suspect, DirtyMarkerPath(target->index));
    log::Warning("totals suspect ({}); the next mount rescans", *suspect);
  }
  if (Status s = WriteExitStatus(env, target->index, exit_text); !s.ok())
    log::Error("{}: `dtkfs umount` will not know the result", s.message());
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return final_status.ok() && rc == 0 ? 0 : 2;
}

}  // namespace dtkfs::fs
