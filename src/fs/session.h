// Session: one mount's life in libfuse: the session over the Filesystem's operations, the
// kernel mount, the signal handlers (SIGTERM, SIGINT, SIGHUP end the loop), daemonizing, the
// worker loop, and the unmount. daemon.cc decides what happens around it.
//
// Thread-safety: one thread drives a Session; Serve runs the workers itself.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "util/status.h"

namespace dtkfs::fs {

class Session {
 public:
  // Creates the session and mounts it at mountpoint (the mount table shows dtkfs:SOURCE,
  // type fuse.dtkfs). libfuse_args: libfuse's options ("-o" "a,b" pairs).
  static Result<std::unique_ptr<Session>> Mount(Filesystem& fs, const std::string& source,
                                                const std::string& mountpoint,
                                                const std::vector<std::string>& libfuse_args);
  // Whether libfuse accepts these options, without mounting: checked before the scan, so a
  // typo is refused before anything is built or written.
  static Status CheckOptions(const std::vector<std::string>& libfuse_args);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The calling process exits here, with the mount ready; the daemon continues.
  void Daemonize();
  // Serves requests on `threads` workers, all kept, until the mount goes away or a signal
  // arrives. Returns 0 for either normal end, else libfuse's error.
  int Serve(unsigned threads);
  // libfuse's session, for kernel cache notifications (KernelCache).
  fuse_session* raw() const { return se_; }
  // Unmounts (if still mounted): no worker serves the mount any more, so nothing may hang.
  void Unmount();

 private:
  explicit Session(fuse_session* se) : se_(se) {}
  fuse_session* se_;
  bool handlers_ = false;
};

}  // namespace dtkfs::fs
