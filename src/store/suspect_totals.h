// SuspectTotals: remembers the first change the size store could not apply ("not in the size
// store", "would go negative": the source changed beside the mount), so the daemon can say
// its totals are off (status), keep INDEX.dirty at unmount, and have the next mount rescan.
//
// Thread-safety: Record and Reason may be called from any thread. The flag makes the common
// case (nothing recorded) one atomic load; mu_ is a leaf lock (nothing is taken under it).
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "util/status.h"

namespace dtkfs {

class SuspectTotals {
 public:
  // Keeps s's message if it is the first failure; ignores ok statuses and later failures.
  void Record(const Status& s) {
    if (s.ok() || suspect_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mu_);
    if (suspect_.load(std::memory_order_relaxed)) return;
    reason_ = s.message();
    suspect_.store(true, std::memory_order_release);
  }
  // The first failure's message, or nullopt while every change applied.
  std::optional<std::string> Reason() const {
    if (!suspect_.load(std::memory_order_acquire)) return std::nullopt;
    std::lock_guard lock(mu_);
    return reason_;
  }

 private:
  std::atomic<bool> suspect_{false};  // set once, after reason_ is written
  mutable std::mutex mu_;             // guards reason_
  std::string reason_;
};

}  // namespace dtkfs
