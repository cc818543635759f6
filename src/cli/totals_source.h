// TotalsSource: where `dtkfs du`, `top` and `export` read totals from. Offline it is an index
// file (IndexTotalsSource); on a mounted path, the live xattrs (added with the mount), or,
// for an export, the index its daemon just compacted (cli/live_index.h, also an
// IndexTotalsSource). Resolve() picks the right one for a user's path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dtkfs/totals.h"
#include "env/env.h"
#include "index/index_reader.h"

namespace dtkfs::cli {

class TotalsSource {
 public:
  virtual ~TotalsSource() = default;
  // Totals of the directory at rel (relative to the source root).
  virtual std::optional<Totals> Lookup(const std::string& rel) const = 0;
  // Directories strictly below rel, up to max_depth levels (0 = any depth).
  virtual std::vector<std::pair<std::string, Totals>> ListBelow(const std::string& rel,
                                                                size_t max_depth) const = 0;
  // Unix time the totals were exact for: now on a live mount; for an index, its file's last
  // write (the scan or compaction that wrote it), or the compaction request it was read
  // after. nullopt if that cannot be read.
  virtual std::optional<double> TotalsTime() const = 0;
  // The index read, when the totals come from one (nullptr for a live listing).
  virtual const IndexReader* index_reader() const { return nullptr; }
};

class IndexTotalsSource final : public TotalsSource {
 public:
  // exact_at: when the totals were exact, if known better than the file's mtime (a live
  // export: the compaction request).
  explicit IndexTotalsSource(std::shared_ptr<const IndexReader> reader,
                             std::optional<double> exact_at = std::nullopt)
      : reader_(std::move(reader)), exact_at_(exact_at) {}
  std::optional<Totals> Lookup(const std::string& rel) const override;
  std::vector<std::pair<std::string, Totals>> ListBelow(const std::string& rel,
                                                        size_t max_depth) const override;
  std::optional<double> TotalsTime() const override;
  const IndexReader* index_reader() const override { return reader_.get(); }

 private:
  std::shared_ptr<const IndexReader> reader_;
  std::optional<double> exact_at_;
};

// A user's path resolved to a source of totals.
struct Target {
  std::shared_ptr<const TotalsSource> source;
  std::string relative;    // path below the source root ("" = the root)
  std::string mount_root;  // the dtkfs mount point when source reads a live mount, else ""
  bool is_directory = true;
  uint64_t own_size = 0;  // for a non-directory: its lstat size
};

// index_path empty: find the index of the source containing path (or the mount it is on).
Result<Target> Resolve(Env& env, const std::string& path, const std::string& index_path);
// Resolve for commands that take a directory only (top, export): "PATH: not a directory"
// otherwise.
Result<Target> ResolveDirectory(Env& env, const std::string& path, const std::string& index_path);

}  // namespace dtkfs::cli
