// Recovery after a crash (DESIGN-BRIEF section 6): the journal's marked directories are
// reconciled (store/reconcile.h) against the source, and nothing else is read. The caller
// then compacts (the new index covers the journal's generations) and retires the journal.
//
// Why this is exact: a change through the mount marks every directory whose direct entries
// it changes before its system call, unless that directory was made in the same generation
// (then an ancestor's mark leads recovery to it, and the directory is new to the index, so
// it is scanned whole) or already marked in it. A directory put where the index may hold
// another one is marked "replaced" and scanned whole. Every directory the index knows and
// that changed since the index was written is therefore reconciled, and everything new is
// scanned. docs/design.md ("Crash safety") has the full argument.
//
// Thread-safety: runs before the mount serves, on a store nobody else uses yet.
#pragma once

#include <cstdint>
#include <string>

#include "store/journal.h"
#include "store/size_store.h"
#include "util/status.h"

namespace dtkfs {

struct RecoveryReport {
  uint64_t first_generation = 0, last_generation = 0;  // journal generations read
  size_t records = 0;
  size_t reconciled = 0;  // directories listed and made to agree with the source
  size_t rescanned = 0;   // directories scanned whole (new, or replaced)
  size_t removed = 0;     // directories gone from the source, dropped
  size_t changed = 0;     // reconciled directories whose entries had changed
  bool torn = false;      // a journal ended in a torn record (ignored)
  // A file with several names was found whose names the index's link table does not all
  // hold (a hard link made since): the caller must rebuild the table (a scan).
  bool links_unknown = false;
  double seconds = 0;
  std::string Summary() const;
};

// root: the source's canonical path.
Result<RecoveryReport> RecoverFromJournal(SizeStore& store, const std::string& root,
                                          const JournalSet& journals);

}  // namespace dtkfs
