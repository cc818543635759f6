// FaultEnv: wraps an Env and fails on request, so tests can prove that a failed save at
// any step leaves memory and disk as they were (seed 003), and that a crash between any two
// steps leaves a loadable index.
//
// Every mutating call (create, reopen, write, sync, close, rename, remove, syncdir, syncfs)
// is a numbered step. fail_at(n, err) makes step n fail with err; crash_at(n) makes step n and
// every later one fail, like a process that died there (nothing it did after that happens,
// not even cleanup). Thread-safe, as env.h promises for every Env (steps from several threads
// are numbered in the order they take the lock).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "env/env.h"
#include "support/env_wrappers.h"

namespace dtkfs::testing {

class FaultEnv final : public ForwardingEnv {
 public:
  explicit FaultEnv(Env& base = Env::Default()) : ForwardingEnv(base) {}

  void fail_at(int step, int err) {
    std::lock_guard l(mu_);
    fail_step_ = step;
    fail_errno_ = err;
    crash_ = false;
  }
  void crash_at(int step) {
    std::lock_guard l(mu_);
    fail_step_ = step;
    fail_errno_ = EIO;
    crash_ = true;
  }
  void clear() {
    std::lock_guard l(mu_);
    fail_step_ = -1;
  }
  int steps() const {
    std::lock_guard l(mu_);
    return step_;
  }
  void reset_steps() {
    std::lock_guard l(mu_);
    step_ = 0;
  }
  // The names of the steps taken so far ("create x.tmp", "sync x.tmp", ...).
  std::vector<std::string> log() const {
    std::lock_guard l(mu_);
    return log_;
  }

  Status Step(const std::string& what);  // counts one step; returns the injected failure

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override;
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Status SyncFilesystem(const std::string& path) override;

 private:
  mutable std::mutex mu_;  // guards the fields below
  int step_ = 0;
  int fail_step_ = -1;
  int fail_errno_ = 0;
  bool crash_ = false;
  std::vector<std::string> log_;
};

}  // namespace dtkfs::testing
