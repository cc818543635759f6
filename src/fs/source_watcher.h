// SourceWatcher: keeps the totals exact when the source changes beside the mount
// (DESIGN-BRIEF section 9, docs/design.md "Changes beside the mount").
//
// Every trigger ends in one step, ReconcileDir: under the namespace lock, list the directory
// on the source and make the store and the inode table agree with it
// (Accounting::Reconcile), then tell the kernel what it caches is stale (KernelCache).
// The triggers:
//   - events (watch/events.h): a thread drains them as they come; changes are coalesced
//     per directory before they are applied;
//   - query time (Sync): a size getxattr drains once more and applies everything read, so
//     its answer includes every change whose syscall returned before it;
//   - verification (RequestVerify): every directory, in the background at low CPU and I/O
//     priority: after a mount from an index (changes made while unmounted), after the event
//     queue overflowed, and on demand (`dtkfs verify`).
// A file with several names in several directories: when one directory's own bytes change,
// the other directories holding names of its multi-name files (known from listings and the
// index's link table) are reconciled too.
//
// Thread-safety: public methods are safe from any thread. Locks: apply_mu_ (one applier at
// a time: the drain thread, a Sync, the verifier) is taken before the namespace lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/accounting.h"
#include "fs/kernel_cache.h"
#include "fs/link_tracker.h"
#include "fs/mount_options.h"
#include "watch/events.h"

namespace dtkfs::fs {

class Filesystem;

// The event source for mode: fanotify when allowed (kAuto falls back to inotify, logging
// why), inotify, or none. Opened before the index is loaded or scanned, so changes made
// meanwhile are queued.
Result<std::unique_ptr<watch::EventSource>> OpenEventSource(WatchMode mode,
                                                            const std::string& root);

class SourceWatcher final : public Accounting::LinkFollower, public Accounting::EntriesListener {
 public:
  // source may be null (watching off): verification still works.
  SourceWatcher(Filesystem& fs, std::unique_ptr<watch::EventSource> source);
  ~SourceWatcher() override;
  SourceWatcher(const SourceWatcher&) = delete;
  SourceWatcher& operator=(const SourceWatcher&) = delete;

  // inotify: watches every directory the store knows (before the mount is announced, so a
  // change made right after `dtkfs mount` returns is seen). No threads: the daemon forks
  // after it.
  void WatchTree();
  // Starts the threads.
  void Start(KernelCache* cache);
  // Stops them (before the session goes).
  void Stop();
  // After Stop: when files gained names beside the mount that no verification has looked
  // for yet, runs one here, so the index written at exit lists every name.
  void VerifyBeforeExit();

  // Applies every event queued now. Called before answering a size query.
  void Sync();
  // A file changed through the mount has names the inode table does not know: the
  // directories listings saw them in are reconciled (before the next size answer).
  void FollowLinks(dev_t dev, ino_t ino) override;
  // Accounting::EntriesListener: the mount changed dir's entries.
  void EntriesChanged(const std::string& dir) override;
  void DirMoved(const std::string& from, const std::string& to, bool exchange) override;
  void Unknown(const std::string& dir) override;
  // A lookup met a file the inode table did not know: the size the store counts for it, when
  // the watcher knows it (a directory whose names it remembers), else nullopt. From now on
  // the inode table accounts for that name.
  std::optional<uint64_t> CountedFor(const std::string& dir, const std::string& name, dev_t dev,
                                     ino_t ino);
  // Starts a verification of every directory (one runs at a time; a request while one runs
  // starts another after it).
  void RequestVerify(const std::string& why);

  struct Report {
    std::string watch;          // "fanotify", "inotify (...)", "off"
    uint64_t unwatched = 0;     // directories the source could not watch
    uint64_t events = 0;        // events read
    uint64_t corrected = 0;     // directories an event's reconcile changed
    uint64_t overflows = 0;     // event queue overflows (each starts a verification)
    bool verifying = false;     // a verification is running
    uint64_t verify_runs = 0;   // finished verifications
    uint64_t verify_done = 0;   // directories verified by the running (or last) one
    uint64_t verify_total = 0;  // directories it started with
    uint64_t verify_corrected = 0;
    double verify_seconds = 0;
    // A file gained names beside the mount that no verification has looked for yet: the
    // index's link table may miss them.
    bool links_incomplete = false;
  };
  Report GetReport() const;

 private:
  struct Pending {
    std::set<std::string> names;
    std::set<std::string> new_dirs;  // directories made or moved at these names
    bool whole = false;              // reconcile even with no name (a follow-up, a verification)
  };
  void DrainLoop();
  void VerifyLoop();
  // One verification of every directory; false if stopped (stoppable) before the end.
  bool Verify(bool stoppable);
  // Reads what is queued and applies it. Caller holds apply_mu_.
  void DrainLocked();
  void ApplyLocked(std::map<std::string, Pending> dirs, bool* changed_any);
  // Applies the mount's directory moves to multi_'s paths. Caller holds apply_mu_.
  void ApplyMovesLocked();
  // Reconciles dir (its nearest ancestor the store knows, if it knows not dir). Returns
  // whether the store changed. Adds to follow: directories holding other names of
  // multi-name files whose bytes may have changed.
  // verifying: called by the verification (which looks everywhere itself).
  bool ReconcileDir(const std::string& dir, const Pending& pending,
                    std::map<std::string, Pending>* follow, bool verifying = false);
  // Watches dir and every directory below it the store knows (inotify); returns them.
  std::vector<std::string> WatchSubtree(const std::string& dir);
  // Applies names' changes in a directory whose names the watcher remembers, one stat per
  // name: true if it could (caller holds apply_mu_ and the namespace lock), false when a
  // full reconcile is needed.
  bool ApplyNames(const std::string& dir, const std::set<std::string>& names, bool* changed,
                  Accounting::KernelStale* stale);
  void PostStale(const Accounting::KernelStale& stale);
  bool IsRemembered(const std::string& dir);
  // Drops what is remembered of dir and the directories below it.
  void ForgetNamesBelow(const std::string& dir);
  // Remembers dir's names from its listing (a large directory that events reach).
  void RememberNames(const std::string& dir, const DirListing& listing);

  Filesystem& fs_;
  std::unique_ptr<watch::EventSource> source_;
  KernelCache* cache_ = nullptr;
  int root_fd_ = -1;
  std::set<std::string> aliases_;
  int wake_fd_ = -1;  // eventfd: wakes the drain thread (stop, FollowLinks)

  std::mutex apply_mu_;
  // Multi-name files seen in listings and scans: each name seen (its path) and the size it
  // was counted with there, and how many names the file had when last seen.
  LinkTracker::ObservedLinks multi_;

  // Large directories events reached: each name and what the store counts for it, so a
  // stream of events on single names costs a stat each, not a listing (an appending writer
  // in a 100k-entry directory). A name the inode table knows is marked not plain (the table
  // accounts for it); an entry change made through the mount drops the directory. Guarded
  // by names_mu_, a leaf lock.
  struct RememberedName {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t size = 0;
    bool plain = true;  // a non-directory with one name that the table does not know
  };
  struct RememberedDir {
    dev_t dev = 0;
    ino_t ino = 0;
    std::unordered_map<std::string, RememberedName> names;
    uint64_t used = 0;
  };
  std::mutex names_mu_;
  std::unordered_map<std::string, RememberedDir> remembered_;
  size_t remembered_names_ = 0;
  uint64_t use_clock_ = 0;
  std::atomic<bool> remembering_{false};

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool stop_ = false;
  bool verify_requested_ = false;
  std::set<std::pair<dev_t, ino_t>> follow_;  // FollowLinks requests not yet applied
  struct Move {
    std::string from, to;
    bool exchange;
  };
  std::vector<Move> moves_;        // DirMoved, for multi_ (applied under apply_mu_)
  std::set<std::string> unknown_;  // Unknown requests not yet applied
  Report report_;

  std::thread drain_thread_;
  std::thread verify_thread_;
};

}  // namespace dtkfs::fs
