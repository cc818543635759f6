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
#include <fstream>
#include <mutex>
#include <thread>

#include "cli/index_tasks.h"
#include "env/env.h"
#include "env/map_guard.h"
#include "fs/filesystem.h"
#include "index/index_location.h"
#include "index/index_reader.h"
#include "store/compactor.h"
#include "store/size_store.h"
#include "util/log.h"
#include "util/fd_limit.h"

namespace dtkfs::fs {

std::string DirtyMarkerPath(const std::string& index) { return index + ".dirty"; }
std::string ExitStatusPath(const std::string& index) { return index + ".last-exit"; }

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
      try {
        if (key == "index") {
          out.index = val;
        } else if (key == "compact_interval") {
          out.compact_interval = std::stod(val);
        } else if (key == "compact_threshold") {
          out.fs.compact_threshold = std::stoul(val);
        } else if (key == "threads") {
          const unsigned long n = std::stoul(val);
          if (n < 1 || n > 256) throw std::out_of_range("threads");
          out.threads = static_cast<unsigned>(n);
        } else if (key == "list_totals") {
          out.fs.list_totals = true;
        } else if (key == "entry_timeout") {
          out.fs.entry_timeout = std::stod(val);
        } else if (key == "attr_timeout") {
          out.fs.attr_timeout = std::stod(val);
        } else {
          if (key == "allow_other") allow_other = true;
          if (key == "default_permissions") default_permissions = true;
          out.fuse.push_back(o);
        }
      } catch (const std::exception&) {
        return Status::InvalidArgument(fmt::format("-o {}: bad value '{}'", key, val));
      }
    }
  }
  // Shared mounts check permissions in the kernel, against the source's modes.
  if (allow_other && !default_permissions) out.fuse.push_back("default_permissions");
  return out;
}

// Loads the index, or explains why not and builds it with a scan.
Result<std::shared_ptr<const IndexReader>> LoadOrScan(Env& env, const cli::IndexTarget& target) {
  std::string why;
  if (env.FileExists(DirtyMarkerPath(target.index))) {
    why = "the last daemon did not shut down cleanly, so the index may be stale";
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

Status WriteSmallFile(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "create", path);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  return ok ? Status::Ok() : Status::FromErrno(err, "write", path);
}

// Compacts on a timer (only when dirty) and when woken (overlay over its threshold).
class CompactionThread {
 public:
  CompactionThread(SizeStore& store, Compactor& compactor, double interval)
      : store_(store), compactor_(compactor), interval_(interval) {
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
      if (interval_ > 0)
        cv_.wait_for(lock, std::chrono::duration<double>(interval_),
                     [&] { return stop_ || woken_; });
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

  SizeStore& store_;
  Compactor& compactor_;
  const double interval_;
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
  auto target = cli::LocateIndex(env, *source, args.index);
  if (!target.ok()) return fail(target.status());
  auto lock = LockIndex(env, target->index);
  if (!lock.ok())
    return fail(lock.status().WithContext(
        fmt::format("cannot mount {}: its index is in use", *source)));

  RaiseFdLimit();
  ::umask(0);  // the kernel already applied the caller's umask
  auto base = LoadOrScan(env, *target);
  if (!base.ok()) return fail(base.status());
  env.Remove(ExitStatusPath(target->index)).PermitUnchecked();
  // From here on the overlay may hold changes the index lacks; a crash leaves this marker,
  // and the next mount rescans instead of trusting a stale index.
  if (Status s = WriteSmallFile(DirtyMarkerPath(target->index), "mounted\n"); !s.ok())
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
    return fail(Status::InvalidArgument("libfuse refused the mount options"));
  }
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mnt->c_str()) != 0) {
    fuse_session_destroy(se);
    env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
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
  if (final_status.ok()) {
    env.Remove(DirtyMarkerPath(target->index)).PermitUnchecked();
    WriteSmallFile(ExitStatusPath(target->index), "ok\n").PermitUnchecked();
    log::Info("unmounted {}; index {} is up to date (generation {})", *mnt, target->index,
              compactor.GetReport().generation);
  } else {
    WriteSmallFile(ExitStatusPath(target->index), "error: " + final_status.message() + "\n")
        .PermitUnchecked();
    log::Error("final compaction failed: {}; the next mount rescans", final_status.message());
  }
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return final_status.ok() && rc == 0 ? 0 : 2;
}

}  // namespace dtkfs::fs
