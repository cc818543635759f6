// The multi-link table (DESIGN-BRIEF section 7): every non-directory inode that has two or
// more names inside the source tree, with those names and the size the index counts for each
// of them. A size change through one name must reach the directories of all the others, and
// an unlink must take off what was counted; after a restart the daemon learns both from here
// when it first meets such an inode.
//
// On disk it is extension record kExtLinkTable of the index; its layout sits with the rest of
// the on-disk format in include/dtkfs/index_format.h (format::link_table) and docs/format.md.
// dev is st_dev XOR the source root's st_dev: 0 for files on the root's filesystem, so the
// table survives the device being numbered differently after a reboot.
// LinkTableView checks all of it once (Check) and then reads the bytes in place.
//
// Thread-safety: plain values and an immutable view.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtkfs {

struct LinkKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  friend auto operator<=>(const LinkKey&, const LinkKey&) = default;
};

struct LinkRecord {
  LinkKey key;
  uint64_t size = 0;               // st_size the index counts for each name
  std::vector<std::string> paths;  // the names, relative to the source root
  friend bool operator==(const LinkRecord&, const LinkRecord&) = default;
};

// The record bytes of a table ("" when there are no records: the index then has no
// link-table record). records must be sorted by key with no key twice.
std::string EncodeLinkTable(const std::vector<LinkRecord>& records);

// Groups (key, size, path) sightings from a scan into records of keys seen at two or more
// paths, sorted by key. Sightings may come in any order.
struct LinkSighting {
  LinkKey key;
  uint64_t size = 0;
  std::string path;
};
std::vector<LinkRecord> GroupLinkSightings(std::vector<LinkSighting> sightings);

class LinkTableView {
 public:
  LinkTableView() = default;
  // What is wrong with bytes as a table ("" when nothing): bounds, order, path syntax.
  static std::string Check(std::string_view bytes);
  // bytes must have passed Check and outlive the view.
  explicit LinkTableView(std::string_view bytes);

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  LinkRecord at(size_t i) const;
  LinkKey key_at(size_t i) const;
  std::optional<LinkRecord> Find(LinkKey key) const;
  bool Contains(LinkKey key) const;
  // The records with a name strictly below dir (which is not the root), in key order.
  // A linear pass over the names (no decoding), for directory renames.
  std::vector<size_t> RecordsBelow(std::string_view dir) const;
  std::string_view bytes() const { return bytes_; }

 private:
  size_t LowerBound(LinkKey key) const;

  std::string_view bytes_;
  const char* records_ = nullptr;
  const char* names_ = nullptr;
  size_t names_len_ = 0;
  size_t count_ = 0;
};

}  // namespace dtkfs
