// Journal: the write-intent journal of directories (DESIGN-BRIEF section 6; docs/design.md
// "Crash safety: the write-intent journal"). It says where to look after a crash, never what
// the numbers were: the source stays the truth, and recovery reconciles (store/recovery.h)
// only the directories marked here.
//
//   MarkDirty(D)    before the first change in this generation to D's direct entries, a
//                   record "D is dirty" is durable (written and fsynced, group-committed with
//                   the marks of other threads). Later changes in D in the same generation
//                   cost a hash look-up. Directories are known by (dev, ino), so a directory
//                   renamed after its mark stays marked (its new path is a new subtree to
//                   recovery, found through its new parent's mark).
//   Cover(D)        D was made in this generation: its parent's mark covers it, recovery
//                   scans it whole, and changes inside it need no mark.
//   MarkReplaced(P) before a directory appears at path P where the persisted state may hold
//                   another one (mkdir or rename onto a path the index or a frozen overlay
//                   knows, an exchange): recovery scans P whole instead of trusting it.
//   Advance()       at the compaction freeze: the generation ends and the next begins (each
//                   generation has its own file, INDEX.journal.GEN, made at its first mark).
//   Retire(G)       once an index covering generation G is durable (its journal_generation
//                   is G, and the compaction synced the source first): files of G and
//                   older go. The index's journal_generation, not the removal, is what makes
//                   them obsolete, so a crash before or during the removal costs nothing.
//
// File format (little-endian): a 32-byte header: "DTKJRNL1", generation u64, 8 bytes of
// zeros, CRC32C of the first 24 bytes u32, 4 bytes of zeros; then records: payload length
// u32, CRC32C of type byte and payload u32, type u8, payload (a store path). A record that
// is short or fails its CRC ends the file: a torn tail, from a batch whose fsync never
// returned, so no operation it marked has run.
//
// A write that fails (ENOSPC, EIO) leaves the journal unable to say where to look. The
// generation is then "broken": INDEX.last-exit, which has its blocks already, is overwritten
// in place to say so (the next mount after a crash rescans everything), and marks are not
// written again until a compaction has covered that generation. Only if even that overwrite
// fails does MarkDirty return the error, and the operation fails rather than risk a crash
// losing it.
//
// Thread-safety: every method is safe from any thread. Advance must not run while a mark
// is being made (the mount calls it with every changing operation held off: Filesystem's
// freeze). Lock: mu_, never held across I/O except by Advance's wait; path callbacks run
// without it.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "env/env.h"
#include "util/status.h"

namespace dtkfs {

struct DirKey {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const DirKey&) const = default;
};

struct JournalRecord {
  enum class Type : uint8_t { kDirty = 1, kReplaced = 2 };
  Type type = Type::kDirty;
  std::string path;  // store path ("" is the root)
};

// The records of one generation's file, up to its first bad record.
struct JournalFile {
  uint64_t generation = 0;
  std::string path;
  std::vector<JournalRecord> records;
  bool torn = false;  // a bad record ended it (a batch whose fsync never returned)
};

// "DTKJRNL1" header + records, as Journal writes them (tests and the fuzz target use these).
std::string EncodeJournalHeader(uint64_t generation);
std::string EncodeJournalRecord(const JournalRecord& record);
// Parses a whole file's bytes. A bad header: no records (the file never held a durable one).
JournalFile DecodeJournal(std::string_view bytes);

// The journal files beside index: those of generations after covered (to recover) and
// the others (obsolete, to remove).
struct JournalSet {
  std::vector<JournalFile> pending;  // generation > covered, oldest first
  std::vector<std::string> obsolete;
  uint64_t last_generation = 0;  // the newest generation found (0: none)
  size_t records() const;
};
Result<JournalSet> ReadJournals(Env& env, const std::string& index, uint64_t covered);

class Journal {
 public:
  // first_generation: the generation the first marks go to (after every file found).
  Journal(Env& env, std::string index, uint64_t first_generation);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // path: dir's store path, asked only when a record must be written (nullopt: dir is no
  // longer in the tree; nothing is marked).
  Status MarkDirty(DirKey dir, const std::function<std::optional<std::string>()>& path);
  // The same for a directory known only by its path (changes found beside the mount).
  Status MarkDirtyPath(const std::string& path);
  void Cover(DirKey dir);
  Status MarkReplaced(const std::string& path);

  // Runs every file operation of the journal through wrap (the mount: as the daemon, whoever's
  // request writes the batch). Set before the first mark.
  using IoWrapper = std::function<Status(const std::function<Status()>&)>;
  void SetIoWrapper(IoWrapper wrap) { wrap_ = std::move(wrap); }

  uint64_t generation() const;
  // True when a journal file of a generation after covered may exist (written by this
  // journal, or found at startup: NoteExisting).
  bool HasFilesAfter(uint64_t covered) const;
  // Files up to generation exist from before this daemon (recovery).
  void NoteExisting(uint64_t generation);
  // Ends the current generation (returned) and begins the next.
  uint64_t Advance();
  void Retire(uint64_t generation);

  struct Stats {
    uint64_t generation = 0;  // the current one
    uint64_t records = 0;     // written since the daemon started
    uint64_t syncs = 0;       // fsyncs of journal files (group commits)
    uint64_t marked = 0;      // directories marked or covered in this generation
    std::string broken;       // why the journal cannot be trusted now ("" when it can)
  };
  Stats GetStats() const;

 private:
  struct KeyHash {
    size_t operator()(const DirKey& k) const {
      return std::hash<uint64_t>()(static_cast<uint64_t>(k.ino) * 0x9E3779B97F4A7C15ull ^
                                   static_cast<uint64_t>(k.dev));
    }
  };
  // Queues record under mu_ and waits until it is durable (or the journal broke).
  // key, if given, remembers record's sequence number under it.
  Status AppendLocked(std::unique_lock<std::mutex>& lock, std::string record, uint64_t* key);
  Status WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq);
  // Writes batch to the current generation's file (creating it first); no lock held.
  Status WriteBatch(uint64_t generation, const std::string& batch);
  void RetireFiles(uint64_t generation);  // Retire's body, inside Io
  // After a failed write: poisons INDEX.last-exit; returns its own failure, if any.
  Status Break(const Status& why);

  Status Io(const std::function<Status()>& f) const { return wrap_ ? wrap_(f) : f(); }

  Env& env_;
  const std::string index_;
  IoWrapper wrap_;
  // Serialises what INDEX.last-exit says about the journal (Break, and Retire clearing it).
  // Taken before mu_, never while holding it.
  std::mutex poison_mu_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  uint64_t generation_;
  // Directories marked or covered in this generation: the sequence number of their record
  // (0: none needed).
  std::unordered_map<DirKey, uint64_t, KeyHash> marked_;
  std::unordered_map<std::string, uint64_t> marked_paths_;  // MarkDirtyPath's
  std::string queue_;                                       // encoded records not yet written
  uint64_t queued_seq_ = 0;                                 // the last record queued
  uint64_t durable_seq_ = 0;  // every record up to it is durable (or the journal broke)
  bool writing_ = false;      // a thread is writing a batch
  // The file of the generation being written (owned by the writing thread while writing_).
  std::unique_ptr<WritableFile> file_;
  uint64_t file_generation_ = 0;
  uint64_t file_offset_ = 0;
  uint64_t broken_generation_ = 0;  // the newest broken generation (0: none)
  std::string broken_;              // its reason, until a compaction covers it
  Status poison_failure_;           // Break's failure: marks fail while it holds
  uint64_t records_ = 0, syncs_ = 0;
  uint64_t newest_file_ = 0;  // the newest generation with a file made or found
};

}  // namespace dtkfs
