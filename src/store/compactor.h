// Compactor: merges the size store's overlays into a new index file and publishes it
// (DESIGN-BRIEF section 5): clone, merge, save, then publish.
//
//   1. freeze   (SizeStore::Freeze: the active overlay becomes frozen, microseconds; with it
//                the multi-link table of that moment, see SetFreezer: the mount's freezer
//                also walks its inode table under its namespace lock)
//   2. syncfs on the source, so file data the new index counts cannot be lost to a power cut
//   3. merge base + frozen levels (overlays and rename maps) into PATH.tmp, fsync, rename
//      over PATH, fsync the directory
//   4. open and verify the new file, then publish it (SizeStore::Publish)
//
// On any failure nothing changes meaning: the frozen levels stay readable, the old index
// stays on disk, the error is returned (and kept for status), and a later run retries.
// A run never reports success for work it did not do.
//
// Thread-safety: CompactNow may be called from any thread. At most one compaction runs at a
// time; calls that arrive while one runs coalesce into a single further run, and each call
// returns the result of a run that started after the call began.
// Lock order: mu_ is never held while calling into the store or the Env.
//
// What asks for runs besides callers of CompactNow: CompactionThread
// (compaction_thread.h), on a timer and when the overlay grows past a threshold.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "env/env.h"
#include "store/size_store.h"

namespace dtkfs {

class Compactor {
 public:
  // source_root: the directory whose filesystem is synced before install (empty: skip, for
  // tests that have no source).
  Compactor(SizeStore& store, Env& env, std::string index_path, std::string source_root);

  Status CompactNow();

  // What one run writes: the store's levels and the multi-link table (EncodeLinkTable bytes),
  // captured at the same moment.
  struct Frozen {
    SizeStore::Snapshot snap;
    std::string link_table;
    // The journal generation the freeze ended (store/journal.h): the new index covers it.
    // nullopt: no journal; the index keeps its base's.
    std::optional<uint64_t> journal_generation;
    // Journal files of generations the base does not cover exist: the index must be written
    // (and the journal retired) even when no total changed.
    bool journal_pending = false;
  };
  // What freezes a run's input. The default is SizeStore::Freeze with the base's link table
  // carried forward unchanged; the mount (fs::Filesystem) also captures its live link table
  // under its namespace lock.
  class Freezer {
   public:
    virtual ~Freezer() = default;
    virtual Frozen FreezeForCompaction() = 0;
    // The index holding frozen is durable and served: the journal generations it covers
    // may go.
    virtual void Published(const Frozen& frozen) {}
  };
  // Call before the first run; freezer must outlive the compactor's runs.
  void SetFreezer(Freezer* freezer) { freezer_ = freezer; }

  struct Report {
    uint64_t runs = 0;        // finished runs, successful or not
    uint64_t generation = 0;  // generation of the index on disk after the last success
    std::chrono::system_clock::time_point last_time{};  // when the last run finished
    Status last_status;                                 // its result
    uint64_t last_entries = 0;   // entries written by the last successful run
    double last_seconds = 0;     // its duration
    uint64_t failing_since = 0;  // the run that began the current failures (0: not failing)
  };
  Report GetReport() const;

 private:
  Status RunOnce(uint64_t* entries);

  SizeStore& store_;
  Env& env_;
  const std::string index_path_;
  const std::string source_root_;
  Freezer* freezer_ = nullptr;

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable done_cv_;
  bool running_ = false;
  uint64_t started_ = 0;   // runs started
  uint64_t finished_ = 0;  // runs finished
  Report report_;
};

}  // namespace dtkfs
