// LinkTracker: the mount's half of the multi-link table (src/index/link_table.h,
// docs/design.md "Hard links").
//
// The index lists every file with two or more names in the tree, with those names and the
// size counted for each. The first time a lookup meets such a file, the tracker takes all its
// names and that size from the table (checking each name still leads to the file), so a
// write through one name reaches every directory that counts it, and an unlink takes off
// what was counted. From then on the inode table is the truth for that file ("claimed"), and
// a file with two or more known names is pinned in it. Before a directory is renamed, the
// records below it are claimed the same way (their paths would go stale). At a compaction
// freeze the tracker writes the table of that moment: the unclaimed records of the index plus
// the pinned files.
//
// Thread-safety: claims are guarded by the inode table's mu() (the ...Locked methods expect
// it held; OnPinned and OnLinksChanged are called with it held). Capture expects the
// namespace lock held exclusively.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "fs/inode_table.h"
#include "index/link_table.h"
#include "store/size_store.h"

namespace dtkfs::fs {

class LinkTracker : public InodeTable::LinkListener {
 public:
  LinkTracker(InodeTable& table, SizeStore& store);

  // A file's names and counted size from the index's link table, each name checked against
  // the source, its directory resolved to an inode (held: one temporary reference each).
  struct TableLinks {
    uint64_t size = 0;
    std::vector<Link> links;
    std::vector<Inode*> held;
  };
  // The index's record of a file the inode table has not met and nobody has claimed.
  std::optional<LinkRecord> UnclaimedRecord(dev_t dev, ino_t ino);
  // Fills found with the record's names that still lead to its file, their directories
  // resolved (held). A name that vanished (ENOENT, ENOTDIR, ELOOP, another inode) is left
  // out; any other failure is returned as an errno, and the caller releases found.
  int ResolveRecord(const LinkRecord& record, TableLinks* found);
  // Gives back found's held references. Caller holds the table's mu().
  void ReleaseLocked(TableLinks& found);
  // For inode, just found or created by the table for a file with a record: when it is new,
  // claims it and takes the record's names and size. Releases found. Caller holds mu().
  void ClaimLocked(Inode& inode, bool created, TableLinks& found);
  // Before the directory name in parent is renamed: the files below it that the link table
  // lists and the inode table has not met are taken into the inode table, so their names
  // follow the rename. Caller holds the namespace lock exclusively. Linear in the link
  // table's size. Returns 0, or the errno of a failure to look (the rename must then fail).
  int AdoptLinksBelow(Inode& parent, const std::string& name);
  // Takes record's file into the inode table with every name that still leads to it and
  // the size the store counts for each (a file changed beside the mount: reconciling one of
  // its directories then reaches all of them). Caller holds the namespace lock exclusively.
  // Returns 0 or the errno of a failure to look.
  int Adopt(const LinkRecord& record);

  // The compaction freeze's link table, in two steps: Capture under the namespace lock
  // (exclusive, so no link changes in flight), Encode after it (decodes the carried records
  // of the immutable index without holding up the mount).
  struct Captured {
    std::vector<LinkRecord> records;  // pinned files, and files seen beside the mount
    std::vector<size_t> carried;      // the index's unclaimed records, by position
  };
  // Files with several names that listings of the source found (the source watcher): their
  // names (paths) and the size the store counts at each, and how many names they had.
  struct Observed {
    std::map<std::string, uint64_t> names;
    nlink_t nlink = 0;
  };
  using ObservedLinks = std::map<std::pair<dev_t, ino_t>, Observed>;
  // Given to the next Capture, which checks each name against the source and writes them
  // in place of the index's records (names made or removed beside the mount).
  void NoteObserved(ObservedLinks observed);
  // Paths of observed names below from are below to now (exchange: and the other way).
  static void MovePaths(ObservedLinks& links, const std::string& from, const std::string& to,
                        bool exchange);
  void MoveObserved(const std::string& from, const std::string& to, bool exchange) {
    std::lock_guard lock(observed_mu_);
    MovePaths(observed_, from, to, exchange);
  }
  Captured Capture(const IndexReader* base);
  static std::string Encode(Captured captured, const IndexReader* base);

  // InodeTable::LinkListener
  void OnPinned(const Inode& file) override;
  void OnLinksChanged() override;

 private:
  struct FileKey {
    dev_t dev;
    ino_t ino;
    bool operator==(const FileKey&) const = default;
  };
  struct FileKeyHash {
    size_t operator()(const FileKey& k) const {
      return std::hash<uint64_t>()(k.ino ^ (uint64_t(k.dev) << 40));
    }
  };
  // Link-table keys hold st_dev XOR the root's st_dev (docs/format.md).
  LinkKey TableKey(dev_t dev, ino_t ino) const;
  FileKey KeyOf(const LinkKey& k) const;

  InodeTable& table_;
  SizeStore& store_;
  std::mutex observed_mu_;  // a leaf: guards observed_
  ObservedLinks observed_;
  // Files whose link-table record the inode table has taken over. Guarded by table_.mu().
  std::unordered_set<FileKey, FileKeyHash> claimed_;
};

}  // namespace dtkfs::fs
