#include "store/compaction_thread.h"

#include <algorithm>
#include <cstdint>

#include "util/log.h"

namespace dtkfs {
namespace {

// Whole milliseconds, from one second to max_seconds: a double duration that is huge or not
// finite overflows when wait_for converts it to clock ticks, and the wait returns at once,
// spinning a core; a tiny one (1e-320) would compact every millisecond.
std::chrono::milliseconds Period(double seconds, double max_seconds) {
  if (!(seconds > 0)) return std::chrono::milliseconds(0);  // also NaN
  seconds = std::clamp(seconds, 1.0, max_seconds);
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

CompactionThread::CompactionThread(SizeStore& store, Compactor& compactor, double interval,
                                   double max_interval)
    : store_(store), compactor_(compactor), period_(Period(interval, max_interval)) {
  thread_ = std::thread([this] { Run(); });
}

CompactionThread::~CompactionThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CompactionThread::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void CompactionThread::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (backoff_.count() > 0)
      cv_.wait_for(lock, backoff_, [&] { return stop_; });  // a retry after a failure
    else if (period_.count() > 0)
      cv_.wait_for(lock, period_, [&] { return stop_ || woken_; });
    else
      cv_.wait(lock, [&] { return stop_ || woken_; });
    if (stop_) break;
    woken_ = false;
    lock.unlock();
    bool failed = false;
    if (store_.dirty()) failed = !compactor_.CompactNow().ok();  // the Compactor logs
    lock.lock();
    backoff_ = !failed ? std::chrono::milliseconds(0)
                       : std::min<std::chrono::milliseconds>(
                             std::max<std::chrono::milliseconds>(backoff_ * 2,
                                                                 std::chrono::milliseconds(1000)),
                             std::chrono::milliseconds(60000));
  }
}

}  // namespace dtkfs
