#include "fs/session.h"

#include <signal.h>

#include "env/map_guard.h"
#include "fs/mount_options.h"
#include "fs/tmpfile.h"

namespace dtkfs::fs {

namespace {

// argv for fuse_session_new: dtkfs's own names for the mount, then libfuse's options.
std::vector<std::string> SessionArgs(const std::string& source,
                                     const std::vector<std::string>& libfuse_args) {
  // The source path is a name, never options: its commas are escaped (a source named
  // "x,allow_other" must not add allow_other).
  std::vector<std::string> store = {"dtkfs", "-o", MountOption("fsname", "dtkfs:" + source), "-o",
                                    "subtype=dtkfs"};
  store.insert(store.end(), libfuse_args.begin(), libfuse_args.end());
  return store;
}

fuse_session* NewSession(std::vector<std::string> store, void* userdata) {
  std::vector<char*> argv;
  for (auto& a : store) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  return fuse_session_new(&args, &Operations(), sizeof(fuse_lowlevel_ops), userdata);
}

}  // namespace

Status Session::CheckOptions(const std::vector<std::string>& libfuse_args) {
  fuse_session* se = NewSession(SessionArgs("check", libfuse_args), nullptr);
  if (se == nullptr) return Status::InvalidArgument("libfuse refused the mount options");
  fuse_session_destroy(se);
  return Status::Ok();
}

Result<std::unique_ptr<Session>> Session::Mount(Filesystem& fs, const std::string& source,
                                                const std::string& mountpoint,
                                                const std::vector<std::string>& libfuse_args) {
  fuse_session* se = NewSession(SessionArgs(source, libfuse_args), &fs);
  if (se == nullptr) return Status::InvalidArgument("libfuse refused the mount options");
  std::unique_ptr<Session> session(new Session(se));
  if (fuse_set_signal_handlers(se) != 0)
    return Status::InvalidArgument("libfuse could not set its signal handlers");
  session->handlers_ = true;
  if (fuse_session_mount(se, mountpoint.c_str()) != 0)
    return Status::InvalidArgument(fmt::format("mount {} failed (see above)", mountpoint));
  // Requests are read by dtkfs's hooks, which answer O_TMPFILE's (fs/tmpfile.h).
  if (fuse_session_custom_io(se, &RequestIo(), fuse_session_fd(se)) != 0)
    return Status::InvalidArgument("libfuse refused dtkfs's request reader");
  return session;
}

Session::~Session() {
  if (handlers_) fuse_remove_signal_handlers(se_);
  fuse_session_destroy(se_);
}

void Session::Daemonize() {
  fuse_daemonize(0);
  RearmMapGuards();  // the index's truncation guard now answers to this process
}

int Session::Serve(unsigned threads) {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 1);
  // All workers stay (idle == max): libfuse otherwise starts and ends threads as the load
  // changes.
  fuse_loop_cfg_set_max_threads(config, threads);
  fuse_loop_cfg_set_idle_threads(config, threads);
  int rc = fuse_session_loop_mt(se_, config);
  fuse_loop_cfg_destroy(config);
  // Unmounted (fusermount3 -u, dtkfs umount), or a signal: libfuse then returns the signal
  // number, which is a normal way to stop.
  if (rc == SIGTERM || rc == SIGINT || rc == SIGHUP) rc = 0;
  return rc;
}

void Session::Unmount() { fuse_session_unmount(se_); }

}  // namespace dtkfs::fs
