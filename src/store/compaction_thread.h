// CompactionThread: the compactions nobody asks for by name. It runs Compactor::CompactNow
// on a timer (only when the store has changes) and when woken (the active overlay passed its
// threshold: Accounting wakes it through the CompactionWaker interface). After a failure
// (ENOSPC, EIO) it retries with backoff: 1 s, doubling up to a minute, whatever the timer
// says; the Compactor logs once per episode.
//
// Thread-safety: Wake may be called from any thread; the destructor stops and joins the
// thread (a run in progress finishes first). Lock: mu_ guards stop_ and woken_; it is never
// held while compacting.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "store/compactor.h"
#include "store/size_store.h"

namespace dtkfs {

// What asks for a compaction soon (implemented by CompactionThread).
class CompactionWaker {
 public:
  virtual ~CompactionWaker() = default;
  virtual void Wake() = 0;
};

class CompactionThread final : public CompactionWaker {
 public:
  // interval: seconds between timer compactions, 0 (or anything not positive) for none;
  // at least 1 s and at most max_interval (a range-checked option; the cap keeps the wait from
  // overflowing).
  CompactionThread(SizeStore& store, Compactor& compactor, double interval, double max_interval);
  ~CompactionThread() override;
  CompactionThread(const CompactionThread&) = delete;
  CompactionThread& operator=(const CompactionThread&) = delete;

  void Wake() override;

 private:
  void Run();

  SizeStore& store_;
  Compactor& compactor_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;  // guards stop_, woken_
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::chrono::milliseconds backoff_{0};  // 0: the last run succeeded
  std::thread thread_;
};

}  // namespace dtkfs
