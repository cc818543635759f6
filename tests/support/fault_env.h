// FaultEnv: wraps an Env and fails on request, so tests can prove that a failed save at
// any step leaves memory and disk as they were (seed 003), and that a crash between any two
// steps leaves a loadable index.
//
// Every mutating call (create, reopen, write, sync, close, rename, remove, syncdir, syncfs)
// is a numbered step. fail_at(n, err) makes step n fail with err; crash_at(n) makes step n and
// every later one fail, like a process that died there (nothing it did after that happens,
// not even cleanup).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "env/env.h"
#include "support/env_wrappers.h"

namespace dtkfs::testing {

class FaultEnv final : public ForwardingEnv {
 public:
  explicit FaultEnv(Env& base = Env::Default()) : ForwardingEnv(base) {}

  void fail_at(int step, int err) {
    fail_step_ = step;
    fail_errno_ = err;
    crash_ = false;
  }
  void crash_at(int step) {
    fail_step_ = step;
    fail_errno_ = EIO;
    crash_ = true;
  }
  void clear() { fail_step_ = -1; }
  int steps() const { return step_; }
  void reset_steps() { step_ = 0; }
  // The names of the steps taken so far ("create x.tmp", "sync x.tmp", ...).
  const std::vector<std::string>& log() const { return log_; }

  Status Step(const std::string& what);  // counts one step; returns the injected failure

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override;
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Status SyncFilesystem(const std::string& path) override;

 private:
  int step_ = 0;
  int fail_step_ = -1;
  int fail_errno_ = 0;
  bool crash_ = false;
  std::vector<std::string> log_;
};

}  // namespace dtkfs::testing
