#include "store/compactor.h"

#include <algorithm>

#include "index/index_builder.h"
#include "index/index_reader.h"
#include "util/kill_point.h"
#include "util/log.h"

namespace dtkfs {

Compactor::Compactor(SizeStore& store, Env& env, std::string index_path, std::string source_root)
    : store_(store),
      env_(env),
      index_path_(std::move(index_path)),
      source_root_(std::move(source_root)) {}

Status Compactor::CompactNow() {
  std::unique_lock lock(mu_);
  // The first run to start after this call began covers every change made before it.
  const uint64_t target = started_ + 1;
  while (finished_ < target) {
    if (running_) {
      done_cv_.wait(lock);
      continue;
    }
    running_ = true;
    const uint64_t run = ++started_;
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t entries = 0;
    Status s = RunOnce(&entries);
    const auto t1 = std::chrono::steady_clock::now();
    lock.lock();
    running_ = false;
    finished_ = run;
    report_.runs++;
    report_.last_time = std::chrono::system_clock::now();
    report_.last_status = s;
    // Logged once per episode of failures (a full disk fails every retry the same way).
    if (!s.ok() && report_.failing_since == 0) {
      report_.failing_since = report_.runs;
      log::Error(
          "compaction failed: {}; the totals stay exact in memory, the journal is kept, "
          "and it is retried with backoff",
          s.message());
    } else if (s.ok() && report_.failing_since != 0) {
      log::Info("compaction works again after {} failed runs",
                report_.runs - report_.failing_since);
      report_.failing_since = 0;
    }
    if (s.ok()) {
      report_.last_entries = entries;
      report_.last_seconds = std::chrono::duration<double>(t1 - t0).count();
    }
    done_cv_.notify_all();
  }
  return report_.last_status;
}

Status Compactor::RunOnce(uint64_t* entries) {
  Frozen frozen;
  if (freezer_) {
    frozen = freezer_->FreezeForCompaction();
  } else {
    frozen.snap = store_.Freeze();
    if (frozen.snap.base) frozen.link_table = std::string(frozen.snap.base->links().bytes());
  }
  const SizeStore::Snapshot& snap = frozen.snap;
  DTKFS_KILL_POINT("compact.after-freeze");
  {
    std::lock_guard lock(mu_);
    report_.generation = snap.base ? snap.base->generation() : 0;
  }
  // Nothing changed, and the index file is still what is mapped and still there (renamed or
  // deleted by hand, it is written again even with no change).
  const uint64_t base_journal = snap.base ? snap.base->journal_generation() : 0;
  const bool journal_behind = frozen.journal_pending && frozen.journal_generation &&
                              *frozen.journal_generation > base_journal;
  if (snap.frozen.empty() && !snap.links_changed && snap.base && !snap.base->mapping_detached() &&
      env_.FileExists(index_path_) && !journal_behind) {
    return Status::Ok();
  }
  if (!source_root_.empty()) DTKFS_RETURN_IF_ERROR(env_.SyncFilesystem(source_root_));

  const Levels levels = snap.levels();
  IndexMeta meta;
  meta.generation = (snap.base ? snap.base->generation() : 0) + 1;
  meta.journal_generation = std::max(base_journal, frozen.journal_generation.value_or(0));
  if (snap.base) meta.source_root = std::string(snap.base->source_root());
  meta.link_table = std::move(frozen.link_table);
  DTKFS_KILL_POINT("compact.before-tmp");
  kill_point::Scope steps("compact");
  Status s = WriteIndex(env_, index_path_, meta, [&](const EntryEmitter& emit) {
    Status st;
    MergedRange(levels, std::string_view(), std::nullopt, [&](std::string_view p, const Totals& t) {
      st = emit(p, t);
      return st.ok();
    });
    return st;
  });
  if (!s.ok()) return s.WithContext("compact");
  auto reader = IndexReader::Open(env_, index_path_);
  if (!reader.ok()) return reader.status().WithContext("compact: reopen new index");
  *entries = (*reader)->size();
  {
    std::lock_guard lock(mu_);
    report_.generation = (*reader)->generation();
  }
  store_.Publish(std::move(reader).value(), snap);
  DTKFS_KILL_POINT("compact.after-publish");
  if (freezer_) freezer_->Published(frozen);
  return Status::Ok();
}

Compactor::Report Compactor::GetReport() const {
  std::lock_guard lock(mu_);
  return report_;
}

}  // namespace dtkfs
